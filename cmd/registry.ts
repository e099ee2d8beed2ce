#!/usr/bin/env -S node --initial-old-space-size=64
// The registry command: serve, purge-uploads.
// The shebang raises V8's initial old-space limit: with the default (a few
// MiB) a busy upload stream triggers a full mark-compact every ~20 MiB, a
// third of the push time; 64 MiB removes them (docs/performance.md).
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { type Config, loadConfig } from '../lib/config/config.js';
import { ConfigError } from '../lib/config/schema.js';
import { createLogger } from '../lib/log.js';
import { startRegistry } from '../lib/server.js';
import { createDriver } from '../drivers/factory.js';
import { parseDuration } from '../lib/config/duration.js';
import { type PurgeSummary, purgeUploads } from '../lib/storage/purgeUploads.js';
import { createRedis, waitReady } from '../lib/cache/redisClient.js';
import { UPLOAD_PURGE_LOCK, withRedisLock } from '../lib/cache/redisLock.js';

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

program.command('serve')
  .description('serve the registry API')
  .argument('[config]', 'configuration file (else REGISTRY_CONFIGURATION_PATH)')
  .action(async (file?: string) => {
    const config = configOrExit(file);
    const log = createLogger(config.log);
    if (!process.execArgv.some((a) => a.startsWith('--initial-old-space-size'))) {
      log.info('node was started without --initial-old-space-size (the registry command sets 64): pushes run about a third slower (docs/performance.md)');
    }
    let running;
    try {
      running = await startRegistry(config, log);
    } catch (e) {
      console.error(e instanceof ConfigError ? e.message : `registry: ${(e as Error).message}`);
      process.exit(1);
    }
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, 'draining in-flight requests');
      running.close().then(() => { log.info('stopped'); process.exit(0); });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

program.command('purge-uploads')
  .description('remove upload sessions that started and were last written longer ago than the age')
  .argument('[config]', 'configuration file (else REGISTRY_CONFIGURATION_PATH)')
  .option('--older-than <duration>', 'age, such as 168h or 30m (default: storage.maintenance.uploadpurging.age, 168h)')
  .option('--dry-run', 'report what would be removed, remove nothing')
  .action(async (file: string | undefined, opts: { olderThan?: string; dryRun?: boolean }) => {
    const config = configOrExit(file);
    const olderThanMs = opts.olderThan === undefined ? config.storage.uploadPurging.ageMs : parseDuration(opts.olderThan);
    if (olderThanMs === null) {
      console.error(`registry purge-uploads: --older-than must be a duration such as 168h or 30m, got ${opts.olderThan}`);
      process.exit(2);
    }
    const log = createLogger({ ...config.log, level: 'warn' });
    const driver = createDriver(config.storage.driver, config.storage.params, log);
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
    if (!summary) process.exit(1);
    if (tty) process.stderr.write('\r\x1b[K');
    const verb = opts.dryRun ? 'would purge' : 'purged';
    console.log(`${verb} ${summary.purged} of ${summary.scanned} uploads (${formatBytes(summary.bytes)}), kept ${summary.kept}, errors ${summary.errors}, in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    process.exit(summary.errors ? 1 : 0);
  });

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
