// proxy.ttl and proxy.maxsize inside `registry serve`: expires the
// pull-through cache on a timer (proxy.expiryinterval), one node of a
// cluster at a time when Redis is configured.
import type { Logger } from 'pino';
import type { RedisClient } from '../cache/redisClient.js';
import { withRedisLock } from '../cache/redisLock.js';
import type { Registry } from '../storage/registry.js';
import { type ExpirySummary, expireProxyCache } from './proxyExpiry.js';
import type { ProxyRegistry } from './proxyRegistry.js';

export const PROXY_EXPIRY_LOCK = 'registry::maintenance::proxyexpiry::lock';
const LOCK_TTL_MS = 10 * 60_000;

export class ProxyExpiryScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = false;

  constructor(
    private readonly registry: Registry,
    private readonly proxy: ProxyRegistry,
    private readonly log: Logger,
    private readonly redis?: RedisClient,
    private readonly onRun?: (ok: boolean, seconds: number, s?: ExpirySummary) => void,
  ) {}

  start(): void {
    const interval = this.proxy.config.expiryIntervalMs;
    // Nodes started together do not all run at once.
    const first = Math.floor(interval / 2 + Math.random() * interval / 2);
    this.schedule(first);
    this.log.info({ interval: interval / 1000, maxsize: this.proxy.config.maxSizeBytes, firstRunInMs: first }, 'proxy cache expiry enabled');
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => { this.running = this.runOnce().finally(() => { this.running = null; this.schedule(this.proxy.config.expiryIntervalMs); }); }, ms);
    this.timer.unref();
  }

  async runOnce(): Promise<ExpirySummary | undefined> {
    const started = performance.now();
    let summary: ExpirySummary | undefined;
    const run = async () => {
      summary = await expireProxyCache(this.registry, this.proxy, { log: this.log });
      this.log.info({ ...summary }, 'proxy cache expiry finished');
      this.onRun?.(summary.errors === 0, (performance.now() - started) / 1000, summary);
    };
    try {
      if (!this.redis) await run();
      else if (!(await withRedisLock(this.redis, PROXY_EXPIRY_LOCK, LOCK_TTL_MS, run))) this.log.info('proxy cache expiry skipped: another node holds the lock');
    } catch (e) {
      this.log.error({ err: e }, 'proxy cache expiry failed');
      this.onRun?.(false, (performance.now() - started) / 1000);
    }
    return summary;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
