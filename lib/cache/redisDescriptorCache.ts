// Blob-descriptor cache in Redis with distribution's key schema, so a mixed
// fleet can share one cache:
//   blobs::<digest>                       hash: digest, size, mediatype
//   repository::<name>::blobs             set of digests linked into <name>
//   repository::<name>::blobs::<digest>   hash: digest, mediatype
// Every failure of a lookup (Redis down, slow, or replying nonsense) reads as a
// miss and is logged and counted: requests then go to storage. Invalidation
// is strict: a delete that cannot clear its entry fails (503) before anything
// is deleted, so no node can serve what was deleted from a stale entry.
import type { Logger } from 'pino';
import { err } from '../errors.js';
import type { BlobDescriptorCache, Descriptor } from './descriptorCache.js';
import { Cluster } from 'ioredis';
import type { RedisClient } from './redisClient.js';

type Cmd = [string, ...(string | number)[]];

const blobKey = (d: string) => `blobs::${d}`;
const repoSetKey = (r: string) => `repository::${r}::blobs`;
const repoBlobKey = (r: string, d: string) => `repository::${r}::blobs::${d}`;

export class RedisDescriptorCache implements BlobDescriptorCache {
  /** Redis errors seen (a counter for operators and tests). */
  errors = 0;
  private lastLog = 0;

  constructor(readonly redis: RedisClient, private readonly log: Logger, private readonly onError?: () => void) {}

  /** Commands in one round trip: a MULTI on one server; in a Redis Cluster
   *  (keys in different slots cannot share a transaction) in parallel.
   *  Throws if any fails. */
  private async batch(cmds: Cmd[]): Promise<unknown[]> {
    if (this.redis instanceof Cluster) {
      return Promise.all(cmds.map(([name, ...args]) => this.redis.call(name, ...args)));
    }
    const res = await this.redis.multi(cmds).exec();
    if (!res) throw new Error('transaction aborted');
    const failed = res.find(([e]) => e);
    if (failed) throw failed[0];
    return res.map(([, v]) => v);
  }

  private failed(op: string, e: unknown): undefined {
    this.errors++;
    this.onError?.();
    // One line per second at most: a Redis outage must not flood the log.
    if (Date.now() - this.lastLog > 1000) {
      this.lastLog = Date.now();
      this.log.warn({ op, err: (e as Error)?.message, errors: this.errors }, 'redis descriptor cache unavailable; using storage');
    }
    return undefined;
  }

  private static parse(dgst: string, digest: unknown, size: unknown, mediaType: unknown): Descriptor | undefined {
    if (digest !== dgst || typeof size !== 'string' || !/^\d+$/.test(size)) return undefined;
    return { digest: dgst, size: Number(size), mediaType: typeof mediaType === 'string' && mediaType ? mediaType : 'application/octet-stream' };
  }

  async get(dgst: string): Promise<Descriptor | undefined> {
    try {
      const [d, size, mt] = await this.redis.hmget(blobKey(dgst), 'digest', 'size', 'mediatype');
      return RedisDescriptorCache.parse(dgst, d, size, mt);
    } catch (e) { return this.failed('get', e); }
  }

  async set(desc: Descriptor): Promise<void> {
    try {
      await this.batch([
        ['hset', blobKey(desc.digest), 'digest', desc.digest, 'size', String(desc.size)],
        ['hsetnx', blobKey(desc.digest), 'mediatype', desc.mediaType],
      ]);
    } catch (e) { this.failed('set', e); }
  }

  /** Invalidation is strict: a delete whose cache entry might survive must fail. */
  private unavailable(op: string, e: unknown): never {
    this.failed(op, e);
    throw err('UNAVAILABLE', 'the blob-descriptor cache (redis) is unavailable; deletes are refused until it is back, so no node serves what was deleted', undefined, 503);
  }

  async delete(dgst: string): Promise<void> {
    try { await this.redis.del(blobKey(dgst)); } catch (e) { this.unavailable('delete', e); }
  }

  async getInRepo(repo: string, dgst: string): Promise<Descriptor | undefined> {
    try {
      // One round trip: membership, the repository's media type, the global descriptor.
      const [member, mediaType, global] = await this.batch([
        ['sismember', repoSetKey(repo), dgst],
        ['hget', repoBlobKey(repo, dgst), 'mediatype'],
        ['hmget', blobKey(dgst), 'digest', 'size'],
      ]);
      if (member !== 1) return undefined;
      const [d, size] = global as (string | null)[];
      return RedisDescriptorCache.parse(dgst, d, size, mediaType);
    } catch (e) { return this.failed('getInRepo', e); }
  }

  async setInRepo(repo: string, desc: Descriptor): Promise<void> {
    try {
      await this.batch([
        ['sadd', repoSetKey(repo), desc.digest],
        ['hset', repoBlobKey(repo, desc.digest), 'digest', desc.digest, 'mediatype', desc.mediaType],
        ['hset', blobKey(desc.digest), 'digest', desc.digest, 'size', String(desc.size)],
        ['hsetnx', blobKey(desc.digest), 'mediatype', desc.mediaType],
      ]);
    } catch (e) { this.failed('setInRepo', e); }
  }

  async deleteInRepo(repo: string, dgst: string): Promise<void> {
    try {
      await this.batch([['srem', repoSetKey(repo), dgst], ['del', repoBlobKey(repo, dgst)]]);
    } catch (e) { this.unavailable('deleteInRepo', e); }
  }
}
