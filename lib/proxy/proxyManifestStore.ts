// A proxied repository's manifests (distribution's proxyManifestStore): by
// digest they are immutable, so a stored one is served without asking the
// upstream; a missing one is fetched once (concurrent misses share the
// fetch), its digest verified, and stored without its blobs, which come
// when a client asks for them.
import type { DriverContext } from '../../drivers/driver.js';
import { isDigest } from '../digest.js';
import { RegistryError, err } from '../errors.js';
import type { StoredManifest } from '../storage/manifestStore.js';
import type { Repository } from '../storage/registry.js';
import type { Coalescer } from './coalesce.js';
import { kindOf, upstreamFailure } from './errors.js';
import type { ProxyObserver } from './proxyObserver.js';
import type { UpstreamClient } from './upstream.js';

export interface ProxyManifestTarget { remote: { upstream: UpstreamClient }; upstreamName: string }

export class ProxyManifestStore {
  constructor(
    private readonly local: Repository,
    private readonly target: ProxyManifestTarget,
    private readonly observer: ProxyObserver,
    private readonly inflight: Coalescer<StoredManifest>,
  ) {}

  private get upstream(): UpstreamClient { return this.target.remote.upstream; }

  /** The manifest by digest: from storage, else from the upstream. */
  async get(ctx: DriverContext, dgst: string): Promise<{ manifest: StoredManifest; hit: boolean }> {
    try {
      return { manifest: await this.local.manifests.get(ctx, dgst), hit: true };
    } catch (e) {
      if ((e as { code?: string }).code !== 'MANIFEST_UNKNOWN') throw e;
    }
    return { manifest: await this.fetch(ctx, dgst), hit: false };
  }

  /** Whether storage holds this revision (no upstream request). */
  async has(ctx: DriverContext, dgst: string): Promise<boolean> {
    return this.local.revisions.exists(ctx, dgst);
  }

  /** Fetches ref (a digest, or a tag whose digest may be known from a HEAD)
   *  from the upstream and stores it, tagged when tag is given. */
  async fetch(ctx: DriverContext, ref: string, opts: { tag?: string; expect?: string } = {}): Promise<StoredManifest> {
    const key = `${this.upstream.host}/${this.target.upstreamName}@${ref}#${opts.tag ?? ''}`;
    return this.inflight.run(key, async () => {
      let got;
      try {
        got = await this.upstream.getManifest(this.target.upstreamName, ref);
      } catch (e) {
        this.observer.upstreamError(kindOf(e));
        throw upstreamFailure(e);
      }
      if (!got) throw err('MANIFEST_UNKNOWN', `manifest unknown to the upstream ${this.upstream.host}: ${this.target.upstreamName}:${ref.slice(0, 200)}`, { reference: ref.slice(0, 200) });
      const digest = isDigest(ref) ? ref : opts.expect ?? (got.digest && isDigest(got.digest) ? got.digest : undefined);
      let m: StoredManifest;
      try {
        m = await this.local.manifests.put(ctx, got.content, got.mediaType, { digest, tag: opts.tag }, { skipReferences: true });
      } catch (e) {
        // What the upstream sent cannot be stored: its failure, not the client's.
        if (e instanceof RegistryError && e.status >= 400 && e.status < 500) {
          throw err('UNAVAILABLE', `the upstream ${this.upstream.host} sent a manifest for ${this.target.upstreamName}:${ref.slice(0, 200)} that cannot be served: ${e.message}`, undefined, 502);
        }
        throw e;
      }
      this.observer.pulled('manifest', got.content.length);
      return m;
    }, () => this.observer.coalesced('manifest'));
  }

  /** The upstream's referrers of subject (filtered here when it did not
   *  filter); null when it has no referrers API, or fails: the cached
   *  referrers are listed then. */
  async referrers(ctx: DriverContext, subject: string, artifactType?: string): Promise<{ manifests: unknown[] } | null> {
    let up;
    try {
      up = await this.upstream.referrers(this.target.upstreamName, subject, artifactType);
    } catch (e) {
      this.observer.upstreamError(kindOf(e));
      this.observer.stale('manifest');
      ctx.log?.warn({ repository: this.local.name, upstream: this.upstream.host, err: (e as Error).message }, 'proxy: upstream failed; listing the cached referrers (stale-if-error)');
      return null;
    }
    if (!up) return null;
    const manifests = artifactType && !up.filtered
      ? up.manifests.filter((d) => (d as { artifactType?: unknown })?.artifactType === artifactType)
      : up.manifests;
    return { manifests };
  }
}
