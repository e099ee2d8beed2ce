// The online collection's journal in Redis: instead of holding every
// reference-making write for the whole run (the old gate), serving nodes tell
// the collector what they reference, and the collector claims each deletion
// first. Writes are held only while a batch they reference is being deleted
// (one batch: well under a second), never while the collector marks.
//
//   phase "mark":  each write adds the digests it references (blobs,
//                  repo@manifest) to `refs`; the collector keeps them.
//   phase "sweep": the collector has published what it will delete in
//                  `doomed`; a write removes what it references from there
//                  (a rescue), or waits if it is in `deleting` right now.
//
// The switch from mark to sweep is one Redis command, and a node's journal or
// rescue is one script, so every reference is either in `refs` before the
// switch or rescued after it. All keys share one hash tag (Redis Cluster) and
// expire with the collector's lock if the collector dies.
// See docs/maintenance.md ("Safe on a live registry").
import type { RedisClient } from './redisClient.js';
import type { SweepJournal } from '../storage/garbageCollect.js';
import { GC_LOCK } from './redisLock.js';

const TAG = '{registry::maintenance::gc}';
export const GC_KEYS = {
  phase: `${TAG}::phase`,
  refs: `${TAG}::refs`,
  doomed: `${TAG}::doomed`,
  deleting: `${TAG}::deleting`,
};
const KEYS = [GC_KEYS.phase, GC_KEYS.refs, GC_KEYS.doomed, GC_KEYS.deleting];
/** Members per command: Lua's unpack and Redis' argument lists stay small. */
const CHUNK = 500;

// 0: no journaled collection; 1: go on; 2: wait (referenced and being deleted).
const REFERENCE = `
local phase = redis.call('get', KEYS[1])
if not phase then return 0 end
if #ARGV == 0 or phase == 'done' then return 1 end
if phase == 'mark' then
  redis.call('sadd', KEYS[2], unpack(ARGV))
  redis.call('pexpire', KEYS[2], math.max(redis.call('pttl', KEYS[1]), 1000))
  return 1
end
for i = 1, #ARGV do
  if redis.call('sismember', KEYS[4], ARGV[i]) == 1 then return 2 end
end
redis.call('srem', KEYS[3], unpack(ARGV))
return 1`;

// Claims the members still doomed (not rescued): they move to deleting.
const CLAIM = `
local out = {}
for i = 2, #ARGV do
  if redis.call('srem', KEYS[1], ARGV[i]) == 1 then
    redis.call('sadd', KEYS[2], ARGV[i])
    out[#out + 1] = ARGV[i]
  end
end
redis.call('pexpire', KEYS[2], ARGV[1])
return out`;

export type GcReference = 'go' | 'hold' | 'wait';

/** A serving node's side: what a write that references items should do now.
 *  'hold': a collector without a journal (an older version) holds the lock. */
export async function gcReference(redis: RedisClient, items: string[]): Promise<GcReference> {
  // The lock is asked beside the first script, not after it: this runs on
  // every manifest PUT, commit and mount, collection or not.
  const [first, lock] = await Promise.all([
    redis.eval(REFERENCE, 4, ...KEYS, ...items.slice(0, CHUNK)) as Promise<number>,
    redis.exists(GC_LOCK),
  ]);
  let r = first;
  for (let i = CHUNK; r === 1 && i < items.length; i += CHUNK) r = await redis.eval(REFERENCE, 4, ...KEYS, ...items.slice(i, i + CHUNK)) as number;
  if (r === 2) return 'wait';
  if (r === 1) return 'go';
  return lock === 1 ? 'hold' : 'go';
}

/** The collector's side. begin() right after taking the lock; end() before releasing it. */
export class GcJournal implements SweepJournal {
  private refresh?: NodeJS.Timeout;
  constructor(private readonly redis: RedisClient, private readonly ttlMs = 60_000) {}

  /** Starts the mark phase: from now on nodes journal their references. */
  async begin(): Promise<void> {
    await this.redis.del(GC_KEYS.refs, GC_KEYS.doomed, GC_KEYS.deleting);
    await this.redis.set(GC_KEYS.phase, 'mark', 'PX', this.ttlMs);
    this.refresh = setInterval(() => { void this.touch().catch(() => {}); }, Math.max(1000, this.ttlMs / 3));
    this.refresh.unref();
  }

  private async touch(): Promise<void> {
    for (const k of KEYS) await this.redis.pexpire(k, this.ttlMs);
  }

  async sweep(doomed: Iterable<string>): Promise<Set<string>> {
    let batch: string[] = [];
    const flush = async () => {
      if (!batch.length) return;
      await this.redis.sadd(GC_KEYS.doomed, ...batch);
      batch = [];
    };
    for (const d of doomed) {
      batch.push(d);
      if (batch.length >= CHUNK) await flush();
    }
    await flush();
    await this.redis.pexpire(GC_KEYS.doomed, this.ttlMs);
    // The switch: a node's next script rescues instead of journaling.
    await this.redis.set(GC_KEYS.phase, 'sweep', 'PX', this.ttlMs);
    const refs = new Set<string>();
    let cursor = '0';
    do {
      const [next, members] = await this.redis.sscan(GC_KEYS.refs, cursor, 'COUNT', 1000);
      for (const m of members) refs.add(m);
      cursor = next;
    } while (cursor !== '0');
    return refs;
  }

  async claim(items: string[]): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < items.length; i += CHUNK) {
      out.push(...await this.redis.eval(CLAIM, 2, GC_KEYS.doomed, GC_KEYS.deleting, String(this.ttlMs), ...items.slice(i, i + CHUNK)) as string[]);
    }
    return out;
  }

  async release(items: string[]): Promise<void> {
    for (let i = 0; i < items.length; i += CHUNK) await this.redis.srem(GC_KEYS.deleting, ...items.slice(i, i + CHUNK));
  }

  /** Before the lock is released: 'done' tells nodes that still see the
   *  lock not to hold writes (they would take it for an older collector);
   *  it expires by itself, and the next collector overwrites it. */
  async end(): Promise<void> {
    clearInterval(this.refresh);
    await this.redis.set(GC_KEYS.phase, 'done', 'PX', 10_000);
    await this.redis.del(GC_KEYS.refs, GC_KEYS.doomed, GC_KEYS.deleting);
  }
}
