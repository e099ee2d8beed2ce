// A lock with expiry in Redis (SET NX PX), for work only one node of a
// cluster should do at a time. The expiry frees it if its holder dies; the
// holder refreshes it while working and releases only its own token.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { err } from '../errors.js';
import { KeyedMutex, type Locker } from '../storage/locks.js';
import type { RedisClient } from './redisClient.js';

const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
const REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

/** Runs fn holding the lock; returns false (without running fn) if another holder has it. */
export async function withRedisLock(redis: RedisClient, key: string, ttlMs: number, fn: () => Promise<void>): Promise<boolean> {
  const token = randomBytes(16).toString('hex');
  const ok = await redis.set(key, token, 'PX', ttlMs, 'NX');
  if (ok !== 'OK') return false;
  const refresh = setInterval(() => { redis.eval(REFRESH, 1, key, token, String(ttlMs)).catch(() => {}); }, Math.max(1000, ttlMs / 3));
  refresh.unref();
  try {
    await fn();
  } finally {
    clearInterval(refresh);
    await redis.eval(RELEASE, 1, key, token).catch(() => {});
  }
  return true;
}

export const UPLOAD_PURGE_LOCK = 'registry::maintenance::uploadpurging::lock';

/** Held by `registry garbage-collect` while it runs; serving nodes refuse
 *  reference-making writes (503) while the key exists. */
export const GC_LOCK = 'registry::maintenance::gc::lock';

export interface HeldLock {
  /** True while the key still holds our token. */
  stillHeld(): Promise<boolean>;
  release(): Promise<void>;
}

/** Takes the lock (null if another holder has it) and refreshes it until released. */
export async function holdRedisLock(redis: RedisClient, key: string, ttlMs: number): Promise<HeldLock | null> {
  const token = randomBytes(16).toString('hex');
  if ((await redis.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') return null;
  const refresh = setInterval(() => { redis.eval(REFRESH, 1, key, token, String(ttlMs)).catch(() => {}); }, Math.max(1000, ttlMs / 3));
  refresh.unref();
  return {
    stillHeld: async () => (await redis.get(key)) === token,
    async release() {
      clearInterval(refresh);
      await redis.eval(RELEASE, 1, key, token).catch(() => {});
    },
  };
}

/** Held by the node fetching a blob from a pull-through cache's upstream (key: upstream host/name@digest). */
export const proxyFetchLockKey = (key: string) => `registry::proxy::fetch::${key}::lock`;

/** Held by the node writing a chunk of an upload session, so that two nodes never write one session at once. */
export const uploadLockKey = (uuid: string) => `registry::upload::${uuid}::lock`;

/** A Locker every node honours: the process mutex, then a Redis lock (SET NX
 *  PX, refreshed while held). A key held elsewhere is waited for, up to
 *  maxWaitMs (then 503 UNAVAILABLE); with Redis unreachable the lock is this
 *  node's only, and that is logged (at most once a minute). */
export class RedisLocker implements Locker {
  private readonly local = new KeyedMutex();
  /** Acquisitions that had to wait for another holder, and the time spent (for metrics). */
  waits = 0;
  waitedMs = 0;
  private lastWarn = 0;

  constructor(private readonly redis: RedisClient, private readonly log: Logger, private readonly onWait?: (ms: number) => void, private readonly ttlMs = 30_000, private readonly maxWaitMs = 30_000) {}

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.local.run(key, async () => {
      const held = await this.acquire(`registry::lock::${key}`);
      try {
        return await fn();
      } finally {
        await held?.release();
      }
    });
  }

  private async acquire(key: string): Promise<HeldLock | null> {
    const start = Date.now();
    let delay = 5;
    for (let waited = false; ; waited = true) {
      let lock: HeldLock | null;
      try {
        lock = await holdRedisLock(this.redis, key, this.ttlMs);
      } catch (e) {
        if (Date.now() - this.lastWarn > 60_000) {
          this.lastWarn = Date.now();
          this.log.warn({ err: (e as Error).message }, 'redis unavailable: manifest writes are serialised on this node only');
        }
        return null;
      }
      if (lock) {
        if (waited) {
          this.waits++;
          this.waitedMs += Date.now() - start;
          this.onWait?.(Date.now() - start);
        }
        return lock;
      }
      if (Date.now() - start > this.maxWaitMs) {
        throw err('UNAVAILABLE', 'another registry node has held this manifest\'s lock too long; retry shortly', undefined, 503);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(200, delay * 2);
    }
  }
}
