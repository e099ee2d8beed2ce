// Locks around the few store writes that must stay together (the
// concurrency rule in ARCHITECTURE.md): a manifest PUT and a DELETE of the
// same digest, so that one wins whole. In one process a keyed mutex; in a
// cluster with Redis, lib/cache/redisLock.ts adds a lock every node honours.

/** Runs fn while holding the lock named key. */
export interface Locker {
  run<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

/** Serialises work on one key within this process. Entries live only while held or awaited. */
export class KeyedMutex implements Locker {
  private tails = new Map<string, Promise<void>>();
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => { release = r; });
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys held or awaited now (for /debug/vars). */
  get size(): number { return this.tails.size; }
}

/** The lock for writes that make or remove a manifest revision of a repository. */
export const manifestLockKey = (repo: string, dgst: string) => `${repo}@${dgst}`;
