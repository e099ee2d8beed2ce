// proxyBlobStore's fetch path: a blob the repository does not hold is
// fetched from the upstream once, however many clients ask for it at once
// (distribution fetches once per client, #4664): the first request starts
// the fetch, later ones join it, and all of them stream from the spool as
// the bytes arrive. The same bytes go through a blobWriter into storage; its
// commit verifies the digest and size, so wrong bytes or a cut connection
// leave nothing cached and every reader an error.
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import type { DriverContext } from '../../drivers/driver.js';
import type { Descriptor } from '../cache/descriptorCache.js';
import { err } from '../errors.js';
import type { HeldLock } from '../cache/redisLock.js';
import type { Repository } from '../storage/registry.js';
import { OCTET_STREAM } from '../storage/blobStore.js';
import { kindOf, upstreamFailure } from './errors.js';
import type { ProxyObserver } from './proxyObserver.js';
import { Spool } from './spool.js';
import type { UpstreamClient } from './upstream.js';

export interface ProxySource { upstream: UpstreamClient; upstreamName: string }

/** What the store needs of a proxy target (see proxyRegistry.ts). */
export interface ProxyBlobTarget { remote: { upstream: UpstreamClient }; upstreamName: string }

interface Fetch {
  /** Resolves once the upstream has answered with the blob (its size, if it
   *  said); spool null: another node of the cluster is fetching it, and the
   *  readers wait until it is stored. */
  started: Promise<{ size?: number; spool: Spool | null }>;
  /** Resolves with the stored descriptor, or rejects. */
  stored: Promise<Descriptor>;
  /** Repositories that joined: each gets the blob linked once it is stored. */
  joiners: Set<Repository>;
}

export interface ProxyBlobOptions {
  /** Where spool files go (unlinked at once); the OS's temp folder by default. */
  spoolDir?: string;
  /** An upstream body that moves no byte for this long is cut. */
  idleTimeoutMs?: number;
  observer?: ProxyObserver;
  /** With Redis: one node of the cluster fetches a blob at a time (null: another holds the fetch). */
  clusterLock?: (key: string) => Promise<HeldLock | null>;
  /** How long a node waits for another node's fetch to be stored. */
  clusterWaitMs?: number;
}

/** The shared-storage poll while another node fetches. */
const CLUSTER_POLL_MS = 200;

export class ProxyBlobFetcher {
  private readonly inflight = new Map<string, Fetch>();
  /** Upstream blob fetches started, and requests that joined one. */
  readonly stats = { fetches: 0, coalesced: 0 };
  private readonly spoolDir: string;
  private readonly idleTimeoutMs: number;
  private readonly observer?: ProxyObserver;
  private readonly clusterLock?: (key: string) => Promise<HeldLock | null>;
  private readonly clusterWaitMs: number;

  constructor(opts: ProxyBlobOptions = {}) {
    this.spoolDir = opts.spoolDir ?? tmpdir();
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    this.observer = opts.observer;
    this.clusterLock = opts.clusterLock;
    this.clusterWaitMs = opts.clusterWaitMs ?? 10 * 60_000;
  }

  /** Fetches in flight now (/debug/vars). */
  get inFlight(): number { return this.inflight.size; }

  /** The blob's bytes from the upstream (fetching it, or joining the fetch under way), streamed as they arrive. */
  async open(ctx: DriverContext, repo: Repository, src: ProxySource, dgst: string): Promise<{ size?: number; stream: Readable; stored: Promise<Descriptor> }> {
    const key = `${src.upstream.host}/${src.upstreamName}@${dgst}`;
    let f = this.inflight.get(key);
    if (f) {
      this.stats.coalesced++;
      this.observer?.coalesced('blob');
      f.joiners.add(repo);
    } else {
      f = this.start(ctx, repo, src, dgst, key);
    }
    const { size, spool } = await f.started;
    if (spool) return { size, stream: Readable.from(spool.reader(), { objectMode: false }), stored: f.stored };
    // Fetched by another node: served from shared storage once it is there.
    const desc = await f.stored;
    return { size: desc.size, stream: await repo.blobs.blobStore.open(ctx, dgst), stored: f.stored };
  }

  /** Another node holds the fetch: wait until its lock is gone (it releases
   *  it after its commit verified the blob; the lock also expires if it
   *  dies), then take the lock: the blob is in shared storage (served from
   *  there), or that node failed and this one fetches. The blob's presence
   *  alone is not the signal: a store may show an object before it is whole. */
  private async waitForCluster(ctx: DriverContext, repo: Repository, dgst: string, key: string): Promise<{ desc?: Descriptor; lock?: HeldLock }> {
    const until = Date.now() + this.clusterWaitMs;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, CLUSTER_POLL_MS));
      const lock = await this.clusterLock!(key);
      if (!lock) continue;
      try {
        const desc = await repo.blobs.blobStore.stat(ctx, dgst);
        await lock.release();
        return { desc };
      } catch (e) {
        if ((e as { code?: string }).code !== 'BLOB_UNKNOWN') { await lock.release(); throw e; }
      }
      return { lock };
    }
    throw err('UNAVAILABLE', `another node has been fetching ${dgst} from the upstream for over ${this.clusterWaitMs} ms; retry later`, { digest: dgst }, 504);
  }

  private start(ctx: DriverContext, repo: Repository, src: ProxySource, dgst: string, key: string): Fetch {
    this.stats.fetches++;
    // Not the first client's context: the fetch outlives that client if it goes.
    const own: DriverContext = { requestId: ctx.requestId, log: ctx.log };
    let resolveStarted!: (v: { size?: number; spool: Spool | null }) => void;
    let rejectStarted!: (e: unknown) => void;
    const started = new Promise<{ size?: number; spool: Spool | null }>((ok, fail) => { resolveStarted = ok; rejectStarted = fail; });
    const f: Fetch = { started, stored: null as unknown as Promise<Descriptor>, joiners: new Set() };
    this.inflight.set(key, f);
    f.stored = (async () => {
      let spool: Spool | null = null;
      let got: Awaited<ReturnType<UpstreamClient['getBlob']>> = null;
      let lock: HeldLock | null | undefined;
      try {
        if (this.clusterLock) {
          // Fail open: with Redis away, this node fetches on its own.
          lock = await this.clusterLock(key).catch(() => undefined);
          if (lock === null) {
            resolveStarted({ spool: null });
            this.observer?.coalesced('blob');
            const waited = await this.waitForCluster(own, repo, dgst, key);
            if (waited.desc) {
              for (const r of [repo, ...f.joiners]) await r.blobs.link(own, { ...waited.desc, mediaType: OCTET_STREAM });
              return waited.desc;
            }
            lock = waited.lock;
          } else if (lock) {
            // Another node may have stored it since this node looked.
            const there = await repo.blobs.blobStore.stat(own, dgst).catch(() => null);
            if (there) {
              resolveStarted({ spool: null });
              for (const r of [repo, ...f.joiners]) await r.blobs.link(own, { ...there, mediaType: OCTET_STREAM });
              return there;
            }
          }
        }
        try { got = await src.upstream.getBlob(src.upstreamName, dgst); } catch (e) { this.observer?.upstreamError(kindOf(e)); throw upstreamFailure(e); }
        if (!got) throw err('BLOB_UNKNOWN', `blob unknown to the upstream ${src.upstream.host} (${src.upstreamName}): ${dgst}`, { digest: dgst });
        spool = await Spool.create(this.spoolDir);
        resolveStarted({ size: got.size, spool });
        const writer = await repo.uploads.create(own);
        try {
          await writer.write(own, this.tee(got.body, spool, dgst));
          const desc = await writer.commit(own, dgst, got.size);
          this.observer?.pulled('blob', desc.size);
          for (const r of f.joiners) if (r.name !== repo.name) await r.blobs.link(own, { ...desc, mediaType: OCTET_STREAM });
          spool.finish();
          return desc;
        } catch (e) {
          await writer.cancel(own).catch(() => {});
          throw e;
        }
      } catch (e) {
        const why = (e as { code?: string }).code === 'DIGEST_INVALID' || (e as { code?: string }).code === 'SIZE_INVALID'
          ? err('UNAVAILABLE', `the upstream ${src.upstream.host} sent bytes that are not ${dgst} (${(e as Error).message}); nothing was cached`, { digest: dgst }, 502)
          : e;
        own.log?.warn({ err: (why as Error).message, digest: dgst, upstream: src.upstream.host }, 'proxy: upstream blob fetch failed');
        got?.body.destroy();
        rejectStarted(why);
        spool?.finish(why as Error);
        throw why;
      } finally {
        this.inflight.delete(key);
        await lock?.release();
      }
    })();
    f.stored.catch(() => {});
    return f;
  }

  /** The upstream body, appended to the spool on its way to the writer; cut if it stalls. */
  private async *tee(body: Readable, spool: Spool, dgst: string): AsyncGenerator<Buffer> {
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => body.destroy(new Error(`the upstream sent no byte of ${dgst} for ${this.idleTimeoutMs} ms`)), this.idleTimeoutMs);
    };
    try {
      arm();
      for await (const c of body) {
        arm();
        const u = c as Uint8Array;
        const b = Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
        await spool.append(b);
        yield b;
      }
    } finally {
      clearTimeout(timer);
      body.destroy();
    }
  }
}

/** A proxied repository's blobs (distribution's proxyBlobStore): what the
 *  repository links is served from storage; a blob the store holds for
 *  another repository is linked here once the upstream confirms (a HEAD) that
 *  this repository has it; anything else is fetched through the fetcher. */
export class ProxyBlobStore {
  constructor(
    private readonly local: Repository,
    private readonly target: ProxyBlobTarget,
    private readonly fetcher: ProxyBlobFetcher,
    private readonly observer: ProxyObserver,
  ) {}

  private get upstream(): UpstreamClient { return this.target.remote.upstream; }

  /** The blob's descriptor when this repository can serve it from storage
   *  (linking it first when the store already holds it); null when it must
   *  come from the upstream. */
  async cached(ctx: DriverContext, dgst: string): Promise<Descriptor | null> {
    const linked = await statOrNull(() => this.local.blobs.stat(ctx, dgst));
    if (linked) return linked;
    const stored = await statOrNull(() => this.local.blobs.blobStore.stat(ctx, dgst));
    if (!stored) return null;
    const head = await this.remoteHead(dgst);
    if (head.size !== stored.size) return null;
    await this.local.blobs.link(ctx, { ...stored, mediaType: OCTET_STREAM });
    return stored;
  }

  private async remoteHead(dgst: string): Promise<{ size: number }> {
    let head;
    try { head = await this.upstream.headBlob(this.target.upstreamName, dgst); } catch (e) { this.observer.upstreamError(kindOf(e)); throw upstreamFailure(e); }
    if (!head) throw err('BLOB_UNKNOWN', `blob unknown to the upstream ${this.upstream.host} (${this.target.upstreamName}): ${dgst}`, { digest: dgst });
    return head;
  }

  /** A HEAD of a blob not cached: its size, from the upstream. */
  async remoteSize(dgst: string): Promise<number> {
    return (await this.remoteHead(dgst)).size;
  }

  /** The blob's bytes from the upstream (one fetch however many ask), streamed as they arrive. */
  async open(ctx: DriverContext, dgst: string): Promise<{ size?: number; stream: Readable; stored: Promise<Descriptor> }> {
    return this.fetcher.open(ctx, this.local, { upstream: this.upstream, upstreamName: this.target.upstreamName }, dgst);
  }
}

async function statOrNull(fn: () => Promise<Descriptor>): Promise<Descriptor | null> {
  try { return await fn(); } catch (e) {
    if ((e as { code?: string }).code === 'BLOB_UNKNOWN') return null;
    throw e;
  }
}
