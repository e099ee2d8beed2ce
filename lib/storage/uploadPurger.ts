// storage.maintenance.uploadpurging inside `registry serve`: purges stale
// uploads on a timer. Runs are never concurrent within a process.
import type { Logger } from 'pino';
import type { StorageDriver } from '../../drivers/driver.js';
import { purgeUploads } from './purgeUploads.js';
import type { RedisClient } from '../cache/redisClient.js';
import { UPLOAD_PURGE_LOCK, withRedisLock } from '../cache/redisLock.js';
import type { PurgeSummary } from './purgeUploads.js';

const LOCK_TTL_MS = 5 * 60_000;

export interface PurgerConfig { ageMs: number; intervalMs: number; dryRun: boolean }

export class UploadPurger {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly driver: StorageDriver,
    private readonly cfg: PurgerConfig,
    private readonly log: Logger,
    /** With Redis, one node of the cluster purges at a time. */
    private readonly redis?: RedisClient,
    /** Told of every finished run (metrics). */
    private readonly onRun?: (ok: boolean, seconds: number, s?: PurgeSummary) => void,
  ) {}

  start(): void {
    // A random first delay keeps nodes started together from purging together.
    const first = Math.floor(Math.random() * Math.min(this.cfg.intervalMs, 5 * 60_000));
    this.schedule(first);
    this.log.info({ age: this.cfg.ageMs / 1000, interval: this.cfg.intervalMs / 1000, dryRun: this.cfg.dryRun, firstRunInMs: first }, 'upload purging enabled');
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => { this.running = this.runOnce().finally(() => { this.running = null; this.schedule(this.cfg.intervalMs); }); }, ms);
    this.timer.unref();
  }

  async runOnce(): Promise<void> {
    const started = performance.now();
    const purge = async () => {
      const s = await purgeUploads(this.driver, { log: this.log }, { olderThanMs: this.cfg.ageMs, dryRun: this.cfg.dryRun });
      this.log.info({ ...s, dryRun: this.cfg.dryRun }, 'upload purge finished');
      this.onRun?.(s.errors === 0, (performance.now() - started) / 1000, s);
    };
    try {
      if (!this.redis) { await purge(); return; }
      if (!(await withRedisLock(this.redis, UPLOAD_PURGE_LOCK, LOCK_TTL_MS, purge))) {
        this.log.info('upload purge skipped: another node holds the lock');
      }
    } catch (e) {
      // Redis unreachable: skip this run rather than purge uncoordinated.
      this.log.error({ err: e }, 'upload purge failed');
      this.onRun?.(false, (performance.now() - started) / 1000);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
