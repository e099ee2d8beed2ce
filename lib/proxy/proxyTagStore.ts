// A proxied repository's tags (distribution's proxyTagService), fresher and
// cheaper: distribution asks the upstream on every pull by tag; here a tag is
// revalidated with one HEAD (which Docker Hub does not count against its pull
// limit) at most once per tag ttl, the manifest fetched only when the digest
// moved. When the upstream fails, times out or rate-limits, the cached tag is
// served (stale-if-error) and counted; with nothing cached, the client gets
// the upstream's failure.
import type { LRUCache } from 'lru-cache';
import type { DriverContext } from '../../drivers/driver.js';
import { isDigest } from '../digest.js';
import { err } from '../errors.js';
import type { Repository } from '../storage/registry.js';
import type { Coalescer } from './coalesce.js';
import { kindOf, upstreamFailure } from './errors.js';
import type { ProxyManifestStore } from './proxyManifestStore.js';
import type { ProxyObserver } from './proxyObserver.js';
import type { UpstreamClient } from './upstream.js';

export interface ProxyTagTarget { remote: { upstream: UpstreamClient; config: { prefix: string; tagTtlMs: number } }; upstreamName: string }

export class ProxyTagStore {
  constructor(
    private readonly local: Repository,
    private readonly target: ProxyTagTarget,
    private readonly manifests: ProxyManifestStore,
    private readonly checks: LRUCache<string, number>,
    private readonly observer: ProxyObserver,
    /** Revalidations in flight, shared by the registry's requests. */
    private readonly revalidating: Coalescer<{ digest: string; hit: boolean }>,
  ) {}

  private get upstream(): UpstreamClient { return this.target.remote.upstream; }

  private async localDigest(ctx: DriverContext, tag: string): Promise<string | null> {
    try { return await this.local.tags.get(ctx, tag); } catch (e) {
      if ((e as { code?: string }).code === 'MANIFEST_UNKNOWN') return null;
      throw e;
    }
  }

  /** The tag's digest, revalidated upstream once per tag ttl; hit is false when the upstream had to be asked for the manifest. */
  async get(ctx: DriverContext, tag: string): Promise<{ digest: string; hit: boolean }> {
    const key = `${this.target.remote.config.prefix}\n${this.local.name}\n${tag}`;
    const cached = await this.localDigest(ctx, tag);
    const checkedAt = this.checks.get(key);
    if (cached && checkedAt !== undefined && Date.now() - checkedAt < this.target.remote.config.tagTtlMs) return { digest: cached, hit: true };
    return this.revalidating.run(key, async () => {
      let head;
      try {
        head = await this.upstream.headManifest(this.target.upstreamName, tag);
      } catch (e) {
        this.observer.upstreamError(kindOf(e));
        if (cached) {
          this.observer.stale('manifest');
          ctx.log?.warn({ repository: this.local.name, tag, upstream: this.upstream.host, err: (e as Error).message }, 'proxy: upstream failed; serving the cached tag (stale-if-error)');
          return { digest: cached, hit: true };
        }
        throw upstreamFailure(e);
      }
      // The upstream is reachable and says the tag is gone: so is it here.
      if (!head) {
        this.checks.delete(key);
        throw err('MANIFEST_UNKNOWN', `manifest unknown: the upstream ${this.upstream.host} has no tag ${tag} in ${this.target.upstreamName}`, { tag });
      }
      const moved = head.digest && isDigest(head.digest) ? head.digest : undefined;
      let digest: string;
      let hit = true;
      if (moved && moved === cached) {
        digest = cached;
      } else if (moved && await this.manifests.has(ctx, moved)) {
        // Moved to content already stored (another tag's, or back): retag only.
        await this.local.tags.tag(ctx, tag, moved);
        digest = moved;
      } else {
        digest = (await this.manifests.fetch(ctx, moved ?? tag, { tag, expect: moved })).digest;
        hit = false;
      }
      this.checks.set(key, Date.now());
      return { digest, hit };
    });
  }

  /** Every tag: the upstream's list, or the cached tags when it fails. */
  async all(ctx: DriverContext): Promise<string[] | null> {
    try {
      const tags = await this.upstream.tags(this.target.upstreamName);
      return tags === null ? null : [...new Set(tags)].sort();
    } catch (e) {
      this.observer.upstreamError(kindOf(e));
      const local = await this.local.tags.all(ctx);
      if (local.length === 0) throw upstreamFailure(e);
      this.observer.stale('manifest');
      ctx.log?.warn({ repository: this.local.name, upstream: this.upstream.host, err: (e as Error).message }, 'proxy: upstream failed; listing the cached tags (stale-if-error)');
      return local;
    }
  }
}
