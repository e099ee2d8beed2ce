#!/usr/bin/env node
// The registry command: serve, purge-uploads, garbage-collect.
// The shebang raises V8's initial old-space limit: with the default (a few
// MiB) a busy upload stream triggers a full mark-compact every ~20 MiB, a
// third of the push time; 64 MiB removes them (docs/performance.md).
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { type Config, loadConfig } from '../lib/config/config.js';
import { ConfigError, warningText } from '../lib/config/schema.js';
import { effectiveYAML } from '../lib/config/effective.js';
import { tlsOptions } from '../lib/listen.js';
import { createLogger } from '../lib/log.js';
import { tuneHeap, tuneHeapForBatch } from '../lib/heap.js';
import { startTracing, tracingRequested } from '../lib/tracing/tracing.js';
import { createDriver } from '../drivers/factory.js';
import { parseDuration } from '../lib/config/duration.js';
import { type PurgeSummary, purgeUploads } from '../lib/storage/purgeUploads.js';
import { createRedis, waitReady } from '../lib/cache/redisClient.js';
import { GC_LOCK, UPLOAD_PURGE_LOCK, holdRedisLock, withRedisLock } from '../lib/cache/redisLock.js';
import { RedisDescriptorCache } from '../lib/cache/redisDescriptorCache.js';
import { GcJournal } from '../lib/cache/gcJournal.js';
import { NoopDescriptorCache } from '../lib/cache/descriptorCache.js';
import { Registry } from '../lib/storage/registry.js';
import { type GCSummary, garbageCollect } from '../lib/storage/garbageCollect.js';
import { expireProxyCache } from '../lib/proxy/proxyExpiry.js';
import { ProxyRegistry } from '../lib/proxy/proxyRegistry.js';
import { ProxyObserver } from '../lib/proxy/proxyObserver.js';
import { RegistryMetrics, writeTextfile } from '../lib/metrics/metrics.js';
import { deadLetterQueues } from '../lib/notifications/deadLetters.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('registry')
  .description('OCI Distribution / Docker Registry v2 server')
  .version(pkg.version, '-v, --version');

/** Loads the configuration, or says which key is wrong and exits 1. */
function configOrExit(file: string | undefined): Config {
  try {
    return loadConfig(file);
  } catch (e) {
    console.error(e instanceof ConfigError ? e.message : e);
    process.exit(1);
  }
}

/** Logs what the configuration accepted but does not act on (one line each). */
function logWarnings(config: Config, log: ReturnType<typeof createLogger>): void {
  for (const w of config.warnings) log.warn({ key: w.key }, warningText(w));
}

program.command('serve')
  .description('serve the registry API')
  .argument('[config]', 'configuration file (else REGISTRY_CONFIGURATION_PATH)')
  .action(async (file?: string) => {
    const config = configOrExit(file);
    const log = createLogger(config.log, process.stderr, tracingRequested());
    logWarnings(config, log);
    // Last resort: a fault no handler caught is logged and the process goes
    // on serving; no input may end it. Each such line is a bug to fix.
    process.on('uncaughtException', (e) => { log.error({ err: e }, 'uncaught exception (the registry keeps serving)'); });
    process.on('unhandledRejection', (e) => { log.error({ err: e }, 'unhandled rejection (the registry keeps serving)'); });
    const v8Options = tuneHeap();
    if (v8Options.length) log.debug({ v8Options }, 'V8 options set for uploads (docs/performance.md)');
    let running;
    let tracing;
    try {
      tracing = await startTracing(pkg.version);
      if (tracing) log.info('tracing on (OTEL_* environment variables)');
      // Loaded here, not at the top: the maintenance commands need none of
      // the HTTP stack, and loading it cost each of them ~0.4 s.
      const { startRegistry } = await import('../lib/server.js');
      running = await startRegistry(config, log, { version: pkg.version });
    } catch (e) {
      console.error(e instanceof ConfigError ? e.message : `registry: ${(e as Error).message}`);
      process.exit(1);
    }
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, 'draining in-flight requests');
      running.close().then(() => tracing?.shutdown()).catch(() => {}).then(() => { log.info('stopped'); process.exit(0); });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

const configCmd = program.command('config').description('configuration tools');
configCmd.command('check')
  .description('print the effective configuration (overrides applied, secrets masked) and every warning; exit 1 on an error, 2 on any warning')
  .argument('[config]', 'configuration file (else REGISTRY_CONFIGURATION_PATH)')
  .action(async (file?: string) => {
    let config: Config;
    try {
      config = loadConfig(file);
      // What serve would refuse at start, short of connecting anywhere.
      await createDriver(config.storage.driver, config.storage.params);
      if (config.http.tls) tlsOptions(config.http.tls);
      if (config.http.debug?.tls) tlsOptions({ ...config.http.debug.tls, clientauth: 'require-and-verify-client-cert', ciphers: 'DEFAULT' }, 'http.debug.tls');
      for (const [i, m] of config.middleware.storage.entries()) {
        if (m.name === 'cloudfront') {
          try { readFileSync(m.privatekey); } catch (e) { throw new ConfigError(`middleware.storage[${i}].options.privatekey`, `cannot read ${m.privatekey}: ${(e as Error).message}`); }
        }
      }
    } catch (e) {
      console.error(e instanceof ConfigError ? e.message : `configuration: ${(e as Error).message}`);
      process.exit(1);
    }
    process.stdout.write(effectiveYAML(config));
    for (const w of config.warnings) console.error(`warning: ${warningText(w)}`);
    if (config.warnings.length) {
      console.error(`${config.warnings.length} warning${config.warnings.length === 1 ? '' : 's'}: serve would start, but not everything in the configuration takes effect`);
      process.exit(2);
    }
    console.error('configuration OK: no warnings');
    process.exit(0);
  });

program.command('purge-uploads')
  .description('remove upload sessions that started and were last written longer ago than the age')
  .argument('[config]', 'configuration file (else REGISTRY_CONFIGURATION_PATH)')
  .option('--older-than <duration>', 'age, such as 168h or 30m (default: storage.maintenance.uploadpurging.age, 168h)')
  .option('--dry-run', 'report what would be removed, remove nothing')
  .option('--metrics-file <path>', 'write the run\'s metrics there, in node-exporter\'s textfile format (for cron jobs)')
  .action(async (file: string | undefined, opts: { olderThan?: string; dryRun?: boolean; metricsFile?: string }) => {
    const config = configOrExit(file);
    const olderThanMs = opts.olderThan === undefined ? config.storage.uploadPurging.ageMs : parseDuration(opts.olderThan);
    if (olderThanMs === null) {
      console.error(`registry purge-uploads: --older-than must be a duration such as 168h or 30m, got ${opts.olderThan}`);
      process.exit(2);
    }
    const log = createLogger({ ...config.log, level: 'warn' });
    logWarnings(config, log);
    const driver = await createDriver(config.storage.driver, config.storage.params, log);
    const tty = process.stderr.isTTY === true;
    let last = 0;
    const started = Date.now();
    let summary: PurgeSummary | undefined;
    const purge = async () => {
      summary = await purgeUploads(driver, { log }, {
        olderThanMs, dryRun: opts.dryRun === true,
        onProgress: (s) => {
          if (!tty || Date.now() - last < 100) return;
          last = Date.now();
          process.stderr.write(`\rscanned ${s.scanned} uploads, ${opts.dryRun ? 'would purge' : 'purged'} ${s.purged} (${formatBytes(s.bytes)})`);
        },
      });
    };
    if (config.redis) {
      // The serving nodes' lock: never purge alongside one of them.
      const redis = createRedis(config.redis);
      try {
        await waitReady(redis, 10_000);
        if (!(await withRedisLock(redis, UPLOAD_PURGE_LOCK, 5 * 60_000, purge))) {
          console.error(`registry purge-uploads: another registry node is purging uploads (Redis lock ${UPLOAD_PURGE_LOCK}); try again later`);
          process.exit(3);
        }
      } catch (e) {
        console.error(`registry purge-uploads: cannot take the purge lock in Redis: ${(e as Error).message}`);
        process.exit(1);
      } finally {
        redis.disconnect();
      }
    } else {
      await purge();
    }
    await recordRun(opts.metricsFile, 'purge-uploads', summary !== undefined && summary.errors === 0, started, { uploads: opts.dryRun ? 0 : summary?.purged ?? 0 }, opts.dryRun ? 0 : summary?.bytes ?? 0);
    if (!summary) process.exit(1);
    if (tty) process.stderr.write('\r\x1b[K');
    const verb = opts.dryRun ? 'would purge' : 'purged';
    console.log(`${verb} ${summary.purged} of ${summary.scanned} uploads (${formatBytes(summary.bytes)}), kept ${summary.kept}, errors ${summary.errors}, in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    process.exit(summary.errors ? 1 : 0);
  });

const notificationsCmd = program.command('notifications').description('notification queues: dead letters');

/** The endpoints' queues a command acts on (all, or the one --endpoint names); exits 2 if none. */
async function deadLetterTargets(file: string | undefined, endpoint: string | undefined, cmd: string) {
  const config = configOrExit(file);
  const log = createLogger({ ...config.log, level: 'warn' });
  const redis = config.redis ? createRedis(config.redis) : undefined;
  if (redis) await waitReady(redis, 10_000).catch((e) => { console.error(`registry notifications ${cmd}: redis: ${(e as Error).message}`); process.exit(1); });
  const queues = deadLetterQueues(config, log, redis).filter((q) => endpoint === undefined || q.endpoint === endpoint);
  if (queues.length === 0) {
    console.error(`registry notifications ${cmd}: ${endpoint ? `no enabled endpoint named ${endpoint}` : 'no notification endpoint is enabled'} in the configuration`);
    process.exit(2);
  }
  return { queues, done: () => redis?.disconnect() };
}

notificationsCmd.command('list-dead')
  .description('list the events an endpoint\'s queue gave up on (over its bounds, or older than maxage), oldest first')
  .argument('[config]', 'configuration file (else REGISTRY_CONFIGURATION_PATH)')
  .option('--endpoint <name>', 'only this endpoint')
  .option('--limit <n>', 'at most this many events per endpoint', '100')
  .option('--json', 'one JSON object per line: endpoint, reason, queuedAt, deadAt, event')
  .action(async (file: string | undefined, opts: { endpoint?: string; limit: string; json?: boolean }) => {
    const { queues, done } = await deadLetterTargets(file, opts.endpoint, 'list-dead');
    const limit = Math.max(0, Number(opts.limit) || 0);
    try {
      for (const q of queues) {
        const { total, events } = await q.queue.listDead(limit);
        if (!opts.json) console.log(`${q.endpoint}: ${total} dead-lettered event${total === 1 ? '' : 's'} (${q.queue.kind} queue)${total > events.length ? `, first ${events.length} shown` : ''}`);
        for (const d of events) {
          const e = JSON.parse(d.body) as { id?: string; action?: string; target?: { repository?: string; digest?: string; tag?: string } };
          if (opts.json) console.log(JSON.stringify({ endpoint: q.endpoint, reason: d.reason, queuedAt: new Date(d.at).toISOString(), deadAt: new Date(d.deadAt).toISOString(), event: e }));
          else console.log(`  ${new Date(d.deadAt).toISOString()} ${d.reason} ${e.id} ${e.action} ${e.target?.repository ?? ''}${e.target?.tag ? `:${e.target.tag}` : ''}${e.target?.digest ? `@${e.target.digest}` : ''}`);
        }
      }
    } catch (e) {
      console.error(`registry notifications list-dead: ${(e as Error).message}`);
      process.exit(1);
    } finally {
      done();
    }
    process.exit(0);
  });

notificationsCmd.command('replay')
  .description('queue every dead-lettered event again, at the end of its endpoint\'s queue (same event ids)')
  .argument('[config]', 'configuration file (else REGISTRY_CONFIGURATION_PATH)')
  .option('--endpoint <name>', 'only this endpoint')
  .action(async (file: string | undefined, opts: { endpoint?: string }) => {
    const { queues, done } = await deadLetterTargets(file, opts.endpoint, 'replay');
    try {
      for (const q of queues) {
        const n = await q.queue.replayDead();
        const left = (await q.queue.listDead(0)).total;
        console.log(`${q.endpoint}: ${n} event${n === 1 ? '' : 's'} queued again${q.queue.kind === 'disk' && n ? ' (the registry serving this directory queues them as its bounds leave room, starting within a second or when it next starts)' : ''}`
          + `${left ? `; ${left} still dead-lettered: the queue is at its bounds, run replay again once it has drained` : ''}`);
      }
    } catch (e) {
      console.error(`registry notifications replay: ${(e as Error).message}`);
      process.exit(1);
    } finally {
      done();
    }
    process.exit(0);
  });

program.command('garbage-collect')
  .description('delete blobs no manifest references (mark and sweep), and with --delete-untagged, manifests no tag needs')
  .argument('[config]', 'configuration file (else REGISTRY_CONFIGURATION_PATH)')
  .option('-d, --dry-run', 'report what would be deleted, delete nothing')
  .option('-m, --delete-untagged', 'also delete manifests that no tag, kept index or kept subject needs')
  .option('--grace <duration>', 'keep blobs and links younger than this (uploads in flight)', '1h')
  .option('--settle <duration>', 'with Redis: wait this long after taking the lock, for writes already past the gate', '10s')
  .option('--offline', 'without Redis: confirm that no registry serves writes on this storage (stopped or read-only)')
  .option('--metrics-file <path>', 'write the run\'s metrics there, in node-exporter\'s textfile format (for cron jobs)')
  .action(async (file: string | undefined, opts: { dryRun?: boolean; deleteUntagged?: boolean; grace: string; settle: string; offline?: boolean; metricsFile?: string }) => {
    tuneHeapForBatch();
    const config = configOrExit(file);
    const graceMs = parseDuration(opts.grace);
    const settleMs = parseDuration(opts.settle);
    if (graceMs === null || settleMs === null) {
      console.error('registry garbage-collect: --grace and --settle take durations such as 1h, 10m or 0s');
      process.exit(2);
    }
    const dryRun = opts.dryRun === true;
    if (!config.redis && !dryRun && !opts.offline) {
      console.error('registry garbage-collect: no redis in the configuration, so serving nodes cannot be told to hold writes.\n'
        + 'Stop the registry or set storage.maintenance.readonly.enabled, then run again with --offline (docs/maintenance.md).');
      process.exit(2);
    }
    const log = createLogger({ ...config.log, level: 'warn' });
    logWarnings(config, log);
    const driver = await createDriver(config.storage.driver, config.storage.params, log);
    const redis = config.redis ? createRedis(config.redis) : undefined;
    // Deletes must reach the nodes' shared descriptor cache.
    const cache = redis && config.storage.cache.blobdescriptor === 'redis' ? new RedisDescriptorCache(redis, log) : new NoopDescriptorCache();
    const registry = new Registry(driver, cache, { tagDigestIndex: config.storage.tagDigestIndex });
    const tty = process.stderr.isTTY === true;
    let last = 0;
    const started = Date.now();
    // Pull-through mode: expired and over-cap proxied content goes first, so
    // the mark below no longer keeps its blobs.
    const expire = async () => {
      if (!config.proxy) return;
      const proxy = new ProxyRegistry(config.proxy, log, new ProxyObserver());
      const s = await expireProxyCache(registry, proxy, { log }, { dryRun, emit: (line) => console.log(line) });
      console.log(`proxy cache: ${s.records} pull records; ${dryRun ? 'would expire' : 'expired'} ${s.manifestsExpired} manifests and ${s.blobsExpired} blobs, evicted ${s.blobsEvicted} blobs for proxy.maxsize; ${formatBytes(s.bytesKept)} kept`);
    };
    const run = async (guard?: () => Promise<void>, journal?: GcJournal) => {
      await expire();
      return garbageCollect(registry, { log }, {
        dryRun, deleteUntagged: opts.deleteUntagged === true, graceMs, guard, journal,
        emit: (line) => { if (!line.includes(': marking ')) console.log(line); },
        progress: (phase, n) => {
          if (!tty || Date.now() - last < 100) return;
          last = Date.now();
          process.stderr.write(`\r${phase === 'mark' ? `marking: ${n} repositories` : `sweeping: ${n} blobs`}\x1b[K`);
        },
      });
    };
    let summary: GCSummary;
    try {
      if (redis) {
        await waitReady(redis, 10_000);
        if (!dryRun && config.storage.cache.blobdescriptor === 'inmemory') {
          console.error('registry garbage-collect: warning: nodes with storage.cache.blobdescriptor: inmemory may keep deleted blobs in their caches until restarted; use redis');
        }
        const lock = await holdRedisLock(redis, GC_LOCK, 60_000);
        if (!lock) {
          console.error(`registry garbage-collect: another garbage collection is running (Redis lock ${GC_LOCK}); try again later`);
          process.exit(3);
        }
        // From here on the serving nodes journal what their writes reference
        // instead of waiting (lib/cache/gcJournal.ts).
        const journal = dryRun ? undefined : new GcJournal(redis);
        try {
          await journal?.begin();
          // Writes that passed the gate just before the journal began finish first.
          if (!dryRun && settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
          summary = await run(async () => {
            if (!(await lock.stillHeld())) throw new Error(`lost the Redis lock ${GC_LOCK}: stopped before deleting more`);
          }, journal);
        } finally {
          await journal?.end().catch(() => {});
          await lock.release();
        }
      } else {
        summary = await run();
      }
    } catch (e) {
      if (tty) process.stderr.write('\r\x1b[K');
      console.error(`registry garbage-collect: ${(e as Error).message}`);
      await recordRun(opts.metricsFile, 'garbage-collect', false, started, {}, 0);
      process.exit(1);
    } finally {
      redis?.disconnect();
    }
    const freed: Record<string, number> = dryRun ? {} : {
      blobs: summary.blobsDeleted.length, manifests: summary.manifestsDeleted.length, layer_links: summary.layerLinksDeleted,
      tag_folders: summary.tagFoldersDeleted, stray_files: summary.straysDeleted,
    };
    await recordRun(opts.metricsFile, 'garbage-collect', true, started, freed, dryRun ? 0 : summary.bytesFreed);
    if (tty) process.stderr.write('\r\x1b[K');
    const verb = dryRun ? 'would delete' : 'deleted';
    console.log(`\n${summary.repositories} repositories, ${summary.manifestsMarked} manifests and ${summary.blobsMarked} blobs marked `
      + `(${summary.manifestsRead} manifests read, the others known from earlier runs); `
      + `${verb} ${summary.manifestsDeleted.length} manifests, ${summary.blobsDeleted.length} blobs (${formatBytes(summary.bytesFreed)}), `
      + `${summary.layerLinksDeleted} layer links, ${summary.tagFoldersDeleted} empty tag folders, ${summary.straysDeleted} stray temp files`
      + (summary.straySweepPartial ? ' (of _tmp/ only: the next real run also lists every folder once for temp files older versions left beside their targets)' : '')
      + '; '
      + `kept ${summary.youngKept} unreferenced blobs younger than ${opts.grace}; `
      + (summary.rescued ? `kept ${summary.rescued} that writes referenced during the run; ` : '')
      + (summary.tagIndexEntriesWritten ? `wrote ${summary.tagIndexEntriesWritten} digest-index entries for tags from before the index; ` : '')
      + `${((Date.now() - started) / 1000).toFixed(1)}s`);
    process.exit(0);
  });

/** --metrics-file: the run as metrics, in the textfile collector's format. */
async function recordRun(file: string | undefined, task: 'garbage-collect' | 'purge-uploads', ok: boolean, started: number, deleted: Record<string, number>, bytes: number): Promise<void> {
  if (!file) return;
  const m = new RegistryMetrics(0, false);
  m.maintenance(task, ok, (Date.now() - started) / 1000, deleted, bytes);
  try {
    await writeTextfile(m, file);
  } catch (e) {
    console.error(`registry ${task}: cannot write --metrics-file ${file}: ${(e as Error).message}`);
  }
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

program.parseAsync(process.argv).catch((e) => {
  console.error(e);
  process.exit(1);
});
