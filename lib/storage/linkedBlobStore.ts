// linkedBlobStore: a repository's view of the blob store through link files.
// Layers and manifest revisions are two instances with different link paths.
import type { Readable } from 'node:stream';
import { type DriverContext, isNotFound } from '../../drivers/driver.js';
import type { Descriptor } from '../cache/descriptorCache.js';
import { err, type ErrorCode } from '../errors.js';
import type { BlobStore } from './blobStore.js';

export type LinkPathFn = (name: string, dgst: string) => string;

export class LinkedBlobStore {
  constructor(
    readonly repo: string,
    readonly blobStore: BlobStore,
    private readonly linkPath: LinkPathFn,
    private readonly unknownCode: ErrorCode = 'BLOB_UNKNOWN',
    /** The repository-scoped cache has one key space per repository (distribution's
     *  schema, shared with distribution nodes): it speaks for layer links only.
     *  Revisions read their links, or a layer would pass for a manifest. */
    private readonly cached = true,
  ) {}

  private get repoCache() {
    const c = this.blobStore.cache;
    return this.cached ? c : { getInRepo: async () => undefined, setInRepo: async () => {}, deleteInRepo: (r: string, d: string) => c.deleteInRepo(r, d) };
  }

  private unknown(dgst: string) {
    return err(this.unknownCode, `${this.unknownCode === 'BLOB_UNKNOWN' ? 'blob' : 'manifest'} unknown to repository ${this.repo}: ${dgst}`, { digest: dgst });
  }

  /** Descriptor if the repository links the blob and the blob exists. */
  async stat(ctx: DriverContext, dgst: string): Promise<Descriptor> {
    const cache = this.repoCache;
    const cached = await cache.getInRepo(this.repo, dgst);
    if (cached) return cached;
    await this.readLink(ctx, dgst);
    let desc: Descriptor;
    try {
      desc = await this.blobStore.stat(ctx, dgst);
    } catch (e) {
      if ((e as { code?: string }).code === 'BLOB_UNKNOWN') throw this.unknown(dgst);
      throw e;
    }
    await cache.setInRepo(this.repo, desc);
    return desc;
  }

  /** Throws unknown unless the repository links the blob: one link read, no
   *  blob stat. For answers that need no size (redirects, manifest reads that
   *  fetch the content anyway): on object stores every request counts. */
  async checkLinked(ctx: DriverContext, dgst: string): Promise<void> {
    if (await this.repoCache.getInRepo(this.repo, dgst)) return;
    await this.readLink(ctx, dgst);
  }

  /** Throws unknown unless the link file exists and names dgst. */
  private async readLink(ctx: DriverContext, dgst: string): Promise<void> {
    let target: string;
    try {
      target = (await this.blobStore.driver.getContent(ctx, this.linkPath(this.repo, dgst))).toString().trim();
    } catch (e) {
      if (isNotFound(e)) throw this.unknown(dgst);
      throw e;
    }
    if (target !== dgst) throw this.unknown(dgst);
  }

  async exists(ctx: DriverContext, dgst: string): Promise<boolean> {
    try { await this.stat(ctx, dgst); return true; } catch (e) {
      if ((e as { code?: string }).code === this.unknownCode) return false;
      throw e;
    }
  }

  async open(ctx: DriverContext, dgst: string, offset = 0): Promise<Readable> {
    await this.stat(ctx, dgst);
    return this.blobStore.open(ctx, dgst, offset);
  }

  async link(ctx: DriverContext, desc: Descriptor): Promise<void> {
    await this.blobStore.driver.putContent(ctx, this.linkPath(this.repo, desc.digest), Buffer.from(desc.digest));
    await this.repoCache.setInRepo(this.repo, desc);
  }

  /** Records in the descriptor cache that the repository links desc, without
   *  reading the link: for callers that know it (manifestStore.primeLayers). */
  async prime(desc: Descriptor): Promise<void> {
    await this.repoCache.setInRepo(this.repo, desc);
  }

  /** Removes the link (the blob itself stays for garbage collection). */
  async unlink(ctx: DriverContext, dgst: string): Promise<void> {
    // Invalidate first (a cache that cannot be cleared stops the delete), and
    // again after, in case a concurrent read cached the link in between.
    await this.blobStore.cache.deleteInRepo(this.repo, dgst);
    const linkDir = this.linkPath(this.repo, dgst).replace(/\/link$/, '');
    try {
      await this.blobStore.driver.delete(ctx, linkDir);
    } catch (e) {
      if (isNotFound(e)) throw this.unknown(dgst);
      throw e;
    } finally {
      await this.blobStore.cache.deleteInRepo(this.repo, dgst).catch(() => {});
    }
  }
}
