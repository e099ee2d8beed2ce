// The notifications of one registry process: its endpoints, each with a
// durable queue (a Redis stream when the config has redis, else a spool on
// local disk) and a delivery loop. Handlers hand it events through a Bridge;
// it never holds an event in memory longer than the write that records it.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { RedisClient } from '../cache/redisClient.js';
import { DiskQueue } from './diskQueue.js';
import { Endpoint, type NotificationObserver, noopObserver, redact } from './endpoint.js';
import type { RegistryEvent, SourceRecord } from './event.js';
import type { EndpointQueue } from './queue.js';
import { RedisQueue } from './redisQueue.js';

/** Where distribution's SourceRecord.addr comes from: the host's name and the listen port. */
function sourceAddr(addr: string): string {
  const port = /:(\d+)$/.exec(addr)?.[1];
  const h = hostname() || addr;
  return port ? `${h}:${port}` : h;
}

/** With Redis: events Redis refused (it was unreachable) wait on local disk and move to the stream when it is back. */
class RedisFallback {
  private stopper = new AbortController();
  private loop?: Promise<void>;
  constructor(readonly disk: DiskQueue, private target: RedisQueue, private log: Logger) {}
  start(): void {
    this.loop = (async () => {
      const signal = this.stopper.signal;
      while (!signal.aborted) {
        const e = await this.disk.next(1000).catch(() => null);
        if (!e) continue;
        for (;;) {
          try {
            await this.target.append([e.body]);
            await this.disk.ack(e);
            break;
          } catch {
            if (signal.aborted) return;
            await new Promise((r) => setTimeout(r, 1000));
          }
        }
      }
    })();
  }
  async stop(): Promise<void> {
    this.stopper.abort();
    await this.loop;
    await this.disk.close();
  }
}

export class Notifier {
  readonly source: SourceRecord;
  readonly includeReferences: boolean;
  private fallbacks = new Map<string, RedisFallback>();

  private constructor(readonly endpoints: Endpoint[], config: Config, private log: Logger, private obs: NotificationObserver) {
    this.source = { addr: sourceAddr(config.http.addr), instanceID: randomUUID() };
    this.includeReferences = config.notifications.includeReferences;
  }

  /** The queue of each enabled endpoint, opened (null: no endpoint is enabled). */
  static async create(config: Config, log: Logger, redis: RedisClient | undefined, obs: NotificationObserver = noopObserver): Promise<Notifier | null> {
    const n = config.notifications;
    if (n.endpoints.length === 0) return null;
    if (!redis && !n.directorySet) {
      log.warn({ directory: n.directory }, 'notifications.queue.directory is not set and there is no redis section: events are spooled under the temporary directory, which survives a crash of this process but not a reboot or a new container; set it to a persistent directory');
    }
    const consumer = randomUUID();
    const endpoints: Endpoint[] = [];
    const fallbacks: [string, RedisFallback][] = [];
    try {
      for (const ep of n.endpoints) {
        const onDead = (reason: string, count: number) => {
          obs.deadLettered(ep.name, reason, count);
          if (reason !== 'maxage') log.warn({ endpoint: ep.name, reason, events: count }, 'notifications: queue over its bound: the oldest events were dead-lettered (registry notifications list-dead)');
        };
        let queue: EndpointQueue;
        if (redis) {
          const rq = new RedisQueue(redis, ep.name, ep.queue, consumer, log, onDead);
          // The fallback is a safety net: a directory it cannot take does not stop the start.
          const disk = new DiskQueue(join(n.directory, ep.name, 'redis-fallback'), { ...ep.queue, maxAgeMs: 0 }, n.fsync, log, onDead);
          try {
            await disk.open();
            fallbacks.push([ep.name, new RedisFallback(disk, rq, log)]);
          } catch (e) {
            log.warn({ endpoint: ep.name, err: (e as Error).message }, 'notifications: no local fallback for events Redis refuses (they would be lost while Redis is away)');
          }
          queue = rq;
        } else {
          const dq = new DiskQueue(join(n.directory, ep.name), ep.queue, n.fsync, log, onDead);
          await dq.open();
          queue = dq;
        }
        endpoints.push(new Endpoint(ep, queue, log, obs));
      }
    } catch (e) {
      for (const ep of endpoints) await ep.queue.close().catch(() => {});
      for (const [, f] of fallbacks) await f.disk.close().catch(() => {});
      throw e;
    }
    const notifier = new Notifier(endpoints, config, log, obs);
    for (const [name, f] of fallbacks) notifier.fallbacks.set(name, f);
    return notifier;
  }

  start(): void {
    for (const e of this.endpoints) e.start();
    for (const f of this.fallbacks.values()) f.start();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.endpoints.map((e) => e.stop()), ...[...this.fallbacks.values()].map((f) => f.stop())]);
  }

  /** Queues the events on every endpoint that takes them; with durable, resolves once they are recorded. Never rejects: a failure is logged and counted. */
  async record(events: RegistryEvent[], durable: boolean): Promise<void> {
    const started = performance.now();
    let kind: 'disk' | 'redis' | undefined;
    const writes: Promise<void>[] = [];
    for (const ep of this.endpoints) {
      const bodies = events.filter((e) => ep.accepts(e)).map((e) => JSON.stringify(e));
      if (bodies.length === 0) continue;
      this.obs.queued(ep.name, bodies.length);
      kind = ep.queue.kind;
      writes.push(ep.queue.append(bodies, durable).catch(async (e) => {
        const fallback = this.fallbacks.get(ep.name);
        if (fallback) {
          try {
            await fallback.disk.append(bodies, durable);
            this.log.warn({ endpoint: ep.name, err: (e as Error).message }, 'notifications: redis refused the event; kept on local disk until it is back');
            return;
          } catch { /* lost below */ }
        }
        this.obs.lost(ep.name, bodies.length);
        this.log.error({ endpoint: ep.name, events: bodies.length, err: (e as Error).message }, 'notifications: could not record events: they are lost');
      }));
    }
    if (writes.length === 0) return;
    await Promise.all(writes);
    if (durable && kind) this.obs.recorded(kind, (performance.now() - started) / 1000);
  }

  /** /debug/vars: distribution's notifications.endpoints, with the queue's state. */
  async vars(): Promise<unknown[]> {
    return Promise.all(this.endpoints.map(async (e) => ({
      name: e.name, url: redact(e.config.url),
      EndpointConfig: { Timeout: e.config.timeoutMs * 1e6, Threshold: e.config.threshold, Backoff: e.config.backoffMs * 1e6, IgnoredMediaTypes: e.config.ignoredMediaTypes },
      queue: { kind: e.queue.kind, ...(await e.queue.pending().catch(() => ({}))), delivering: e.queue.owned(), delivered: e.delivered, lastError: e.lastError || undefined },
    })));
  }
}
