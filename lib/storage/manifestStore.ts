// manifestStore: manifests of one repository. Content lives in the blob
// store; the repository links it under _manifests/revisions.
import { createHash } from 'node:crypto';
import type { LRUCache } from 'lru-cache';
import type { DriverContext } from '../../drivers/driver.js';
import { mapLimit } from '../concurrency.js';
import { parseDigest } from '../digest.js';
import { err } from '../errors.js';
import { type BlobStore, OCTET_STREAM } from './blobStore.js';
import type { LinkedBlobStore } from './linkedBlobStore.js';
import { type ManifestDescriptor, manifestMediaType, parseManifest } from './manifestParse.js';
import { MT, isIndexType } from './mediaTypes.js';
import type { ReferrerStore } from './referrerStore.js';
import type { TagStore } from './tagStore.js';
import { type Locker, manifestLockKey } from './locks.js';

export interface StoredManifest {
  digest: string;
  mediaType: string;
  content: Buffer;
  /** Repositories whose layer-link cache this manifest has primed (this process). */
  primed?: Set<string>;
  subject?: string;
  artifactType?: string;
  configMediaType?: string;
  annotations?: Record<string, string>;
}

export type ManifestCache = LRUCache<string, StoredManifest>;

export const MAX_MANIFEST_BYTES = 4 << 20;

/** As distribution: with no allow list, descriptors with URLs are refused. */
export interface URLPolicy { allow: RegExp[]; deny: RegExp[] }

/** validation.manifests.indexes: which children of an index must already be in the repository. */
export interface IndexPolicy { platforms: 'all' | 'none' | 'list'; platformList: { os?: string; architecture?: string }[] }

/** Descriptors checked at once against storage on a manifest PUT (each is one or two requests). */
const CHECK_CONCURRENCY = 16;
/** Layers of one manifest whose links a GET primes in the descriptor cache. */
const MAX_PRIMED = 1000;

function describe(digest: string, content: Buffer, contentType?: string): StoredManifest {
  let body: Record<string, unknown> = {};
  try { body = JSON.parse(content.toString('utf8')) as Record<string, unknown>; } catch { /* stored as is */ }
  let mediaType: string;
  try { mediaType = manifestMediaType(body, contentType); } catch { mediaType = String(body.mediaType ?? MT.ociManifest); }
  const subject = (body.subject as { digest?: unknown } | undefined)?.digest;
  const config = body.config as { mediaType?: unknown } | undefined;
  return {
    digest, mediaType, content,
    subject: typeof subject === 'string' ? subject : undefined,
    artifactType: typeof body.artifactType === 'string' ? body.artifactType : undefined,
    configMediaType: typeof config?.mediaType === 'string' ? config.mediaType : undefined,
    annotations: body.annotations && typeof body.annotations === 'object' ? body.annotations as Record<string, string> : undefined,
  };
}

// Layers that clients fetch from elsewhere; the registry need not hold them.
const NONDISTRIBUTABLE = new Set([
  MT.dockerForeignLayer,
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

export class ManifestStore {
  constructor(
    readonly repo: string,
    private readonly blobStore: BlobStore,
    readonly revisions: LinkedBlobStore,
    private readonly layers: LinkedBlobStore,
    private readonly tags: TagStore,
    private readonly referrers: ReferrerStore,
    private readonly cache: ManifestCache,
    /** validation.manifests.urls; null when validation is disabled. */
    private readonly urlPolicy: URLPolicy | null = { allow: [], deny: [] },
    private readonly maxBytes = MAX_MANIFEST_BYTES,
    private readonly locks?: Locker,
    private readonly indexPolicy: IndexPolicy = { platforms: 'all', platformList: [] },
  ) {}

  /** The manifest, if the repository links it. By tag too: a tag whose
   *  revision link is gone (a delete that raced a push on a node without the
   *  cluster lock, or an old crash) answers unknown, as in distribution,
   *  rather than serving a manifest garbage collection will empty. */
  async get(ctx: DriverContext, dgst: string): Promise<StoredManifest> {
    const cached = this.cache.get(dgst);
    if (cached) {
      await this.revisions.checkLinked(ctx, dgst);
      return cached;
    }
    // Link and content read at once: one round trip where it used to be two.
    const [, m] = await Promise.all([this.revisions.checkLinked(ctx, dgst), this.readContent(ctx, dgst)]);
    return m;
  }

  /** After a manifest GET, the client asks for its blobs next: tell the
   *  repository-scoped descriptor cache they are linked here, from the
   *  descriptors themselves. Sound because a manifest is only stored once
   *  every blob it names is linked in the repository with that size (put()
   *  checks it, as distribution does), and a blob DELETE clears the entry.
   *  Saves one link read per blob on a cold pull; once per repository and
   *  manifest per process, at most MAX_PRIMED descriptors. */
  async primeLayers(m: StoredManifest): Promise<void> {
    if (isIndexType(m.mediaType) || m.primed?.has(this.repo)) return;
    (m.primed ??= new Set()).add(this.repo);
    let parsed;
    try { parsed = parseManifest(m.content, m.mediaType); } catch { return; }
    const seen = new Set<string>();
    for (const d of parsed.blobs.slice(0, MAX_PRIMED)) {
      if (seen.has(d.digest) || (d.urls?.length && NONDISTRIBUTABLE.has(d.mediaType))) continue;
      seen.add(d.digest);
      await this.layers.prime({ digest: d.digest, size: d.size, mediaType: OCTET_STREAM });
    }
  }

  private async readContent(ctx: DriverContext, dgst: string): Promise<StoredManifest> {
    let content: Buffer;
    try {
      content = await this.blobStore.getContent(ctx, dgst);
    } catch (e) {
      if ((e as { code?: string }).code === 'BLOB_UNKNOWN') throw err('MANIFEST_UNKNOWN', `manifest unknown: ${dgst}`, { digest: dgst });
      throw e;
    }
    const m = describe(dgst, content);
    this.cache.set(dgst, m);
    return m;
  }

  private checkURLs(d: ManifestDescriptor): void {
    const p = this.urlPolicy;
    if (!d.urls?.length || !p) return;
    for (const u of d.urls) {
      let ok = false;
      try { ok = ['http:', 'https:'].includes(new URL(u).protocol); } catch { ok = false; }
      ok &&= p.allow.some((re) => re.test(u)) && !p.deny.some((re) => re.test(u));
      if (!ok) throw err('MANIFEST_INVALID', `manifest invalid: URL ${u.slice(0, 200)} of ${d.digest} is not allowed (validation.manifests.urls)`, { digest: d.digest });
    }
  }

  private async checkBlob(ctx: DriverContext, d: ManifestDescriptor): Promise<void> {
    this.checkURLs(d);
    if (d.urls?.length && NONDISTRIBUTABLE.has(d.mediaType)) return;
    let desc;
    try {
      desc = await this.layers.stat(ctx, d.digest);
    } catch (e) {
      if ((e as { code?: string }).code === 'BLOB_UNKNOWN') {
        throw err('MANIFEST_BLOB_UNKNOWN', `manifest references blob ${d.digest} unknown to repository ${this.repo}`, { digest: d.digest });
      }
      throw e;
    }
    if (desc.size !== d.size) {
      throw err('MANIFEST_INVALID', `manifest invalid: descriptor of ${d.digest} says ${d.size} bytes, the blob has ${desc.size}`, { digest: d.digest });
    }
  }

  /** Whether validation.manifests.indexes requires this child to be in the repository. */
  private mustExist(d: ManifestDescriptor): boolean {
    const p = this.indexPolicy;
    if (p.platforms === 'all') return true;
    if (p.platforms === 'none') return false;
    const plat = (d.platform ?? {}) as { os?: unknown; architecture?: unknown };
    return p.platformList.some((want) => (want.os === undefined || want.os === plat.os) && (want.architecture === undefined || want.architecture === plat.architecture));
  }

  private async checkChild(ctx: DriverContext, d: ManifestDescriptor): Promise<void> {
    let desc;
    try {
      desc = await this.revisions.stat(ctx, d.digest);
    } catch (e) {
      if ((e as { code?: string }).code !== 'MANIFEST_UNKNOWN') throw e;
      if (!this.mustExist(d)) return;
      throw err('MANIFEST_BLOB_UNKNOWN', `index references manifest ${d.digest} unknown to repository ${this.repo}`, { digest: d.digest });
    }
    if (desc.size !== d.size) {
      throw err('MANIFEST_INVALID', `manifest invalid: descriptor of ${d.digest} says ${d.size} bytes, the manifest has ${desc.size}`, { digest: d.digest });
    }
  }

  /** Each distinct (digest, size) once, at most CHECK_CONCURRENCY at a time: an
   *  index of 26,000 children or a manifest naming one layer 27,000 times
   *  must not open thousands of files at once. */
  private async checkReferences(ctx: DriverContext, parsed: ReturnType<typeof parseManifest>): Promise<void> {
    const distinct = (list: ManifestDescriptor[]) => [...new Map(list.map((d) => [`${d.digest} ${d.size} ${d.urls?.join(' ') ?? ''}`, d])).values()];
    const checks = [
      ...distinct(parsed.blobs).map((d) => () => this.checkBlob(ctx, d)),
      ...distinct(parsed.manifests).map((d) => () => this.checkChild(ctx, d)),
    ];
    await mapLimit(checks, CHECK_CONCURRENCY, (check) => check());
  }

  /** Validates and stores a manifest; tags it when tag is given. A proxied
   *  repository stores what its upstream served without its blobs
   *  (skipReferences, distribution's SkipLayerVerification): they are fetched
   *  when asked for. */
  async put(ctx: DriverContext, content: Buffer, contentType: string | undefined, ref: { tag?: string; digest?: string }, opts: { skipReferences?: boolean } = {}): Promise<StoredManifest> {
    if (content.length > this.maxBytes) {
      throw err('MANIFEST_INVALID', `manifest is ${content.length} bytes, over the ${this.maxBytes}-byte limit`, undefined, 413);
    }
    const parsed = parseManifest(content, contentType);
    const algorithm = ref.digest ? parseDigest(ref.digest)!.algorithm : 'sha256';
    const dgst = `${algorithm}:${createHash(algorithm).update(content).digest('hex')}`;
    if (ref.digest && ref.digest !== dgst) {
      throw err('DIGEST_INVALID', `manifest digest is ${dgst}, not ${ref.digest}`, { digest: ref.digest });
    }
    if (!opts.skipReferences) await this.checkReferences(ctx, parsed);
    const m = describe(dgst, content, parsed.mediaType);
    await this.locked(dgst, async () => {
      const desc = await this.blobStore.put(ctx, content, algorithm);
      await this.revisions.link(ctx, desc);
      if (parsed.subject) await this.referrers.add(ctx, parsed.subject.digest, dgst);
      if (ref.tag) {
        await this.tags.tag(ctx, ref.tag, dgst);
        // Re-check after writing: a delete of this digest on a node outside
        // the lock (no Redis) may have removed the revision meanwhile; the
        // push that got here last wins whole.
        if (!(await this.revisions.exists(ctx, dgst))) await this.revisions.link(ctx, desc);
      }
    });
    this.cache.set(dgst, m);
    return m;
  }

  private locked<T>(dgst: string, fn: () => Promise<T>): Promise<T> {
    return this.locks ? this.locks.run(manifestLockKey(this.repo, dgst), fn) : fn();
  }

  /** Deletes a manifest revision, the tags that point at it and its referrer link. */
  async delete(ctx: DriverContext, dgst: string): Promise<void> {
    await this.locked(dgst, async () => {
      const m = await this.get(ctx, dgst);
      const untagAll = async () => this.tags.untagMany(ctx, await this.tags.lookup(ctx, dgst));
      await untagAll();
      if (m.subject) await this.referrers.remove(ctx, m.subject, dgst);
      await this.revisions.unlink(ctx, dgst);
      // Re-check: a tag written meanwhile by a node outside the lock goes too,
      // so no tag is left pointing at a revision that is gone.
      await untagAll();
      await this.tags.forget(ctx, dgst);
    });
  }
}
