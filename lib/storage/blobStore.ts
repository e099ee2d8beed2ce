// blobStore: the global, content-addressed blob store. No access control:
// repositories reach blobs only through a linkedBlobStore.
import type { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { type DriverContext, type StorageDriver, isNotFound } from '../../drivers/driver.js';
import type { BlobDescriptorCache, Descriptor } from '../cache/descriptorCache.js';
import { err } from '../errors.js';
import { blobDataPath, blobDir } from './paths.js';

export const OCTET_STREAM = 'application/octet-stream';

export class BlobStore {
  constructor(readonly driver: StorageDriver, readonly cache: BlobDescriptorCache) {}

  /** Descriptor of a stored blob, or BLOB_UNKNOWN. */
  async stat(ctx: DriverContext, dgst: string): Promise<Descriptor> {
    const cached = await this.cache.get(dgst);
    if (cached) return cached;
    try {
      const fi = await this.driver.stat(ctx, blobDataPath(dgst));
      if (fi.isDir) throw err('BLOB_UNKNOWN', `blob unknown: ${dgst}`, { digest: dgst });
      const desc = { digest: dgst, size: fi.size, mediaType: OCTET_STREAM };
      await this.cache.set(desc);
      return desc;
    } catch (e) {
      if (isNotFound(e)) throw err('BLOB_UNKNOWN', `blob unknown: ${dgst}`, { digest: dgst });
      throw e;
    }
  }

  async open(ctx: DriverContext, dgst: string, offset = 0): Promise<Readable> {
    try {
      return await this.driver.reader(ctx, blobDataPath(dgst), offset);
    } catch (e) {
      if (isNotFound(e)) throw err('BLOB_UNKNOWN', `blob unknown: ${dgst}`, { digest: dgst });
      throw e;
    }
  }

  /** The blob's bytes and its size from one request, where the driver can
   *  (object stores); else a stat and a read. Fills the descriptor cache. */
  async openWithSize(ctx: DriverContext, dgst: string): Promise<{ stream: Readable; size: number }> {
    if (!this.driver.readerWithSize) {
      const desc = await this.stat(ctx, dgst);
      return { stream: await this.open(ctx, dgst), size: desc.size };
    }
    try {
      const r = await this.driver.readerWithSize(ctx, blobDataPath(dgst), 0);
      await this.cache.set({ digest: dgst, size: r.size, mediaType: OCTET_STREAM });
      return r;
    } catch (e) {
      if (isNotFound(e)) throw err('BLOB_UNKNOWN', `blob unknown: ${dgst}`, { digest: dgst });
      throw e;
    }
  }

  /** Streams a blob range to dest through the driver's fast path; false if it has none. */
  async sendTo(ctx: DriverContext, dgst: string, offset: number, length: number, dest: NodeJS.WritableStream): Promise<boolean> {
    if (!this.driver.sendTo) return false;
    try {
      await this.driver.sendTo(ctx, blobDataPath(dgst), offset, length, dest);
      return true;
    } catch (e) {
      if (isNotFound(e)) throw err('BLOB_UNKNOWN', `blob unknown: ${dgst}`, { digest: dgst });
      throw e;
    }
  }

  async getContent(ctx: DriverContext, dgst: string): Promise<Buffer> {
    try {
      return await this.driver.getContent(ctx, blobDataPath(dgst));
    } catch (e) {
      if (isNotFound(e)) throw err('BLOB_UNKNOWN', `blob unknown: ${dgst}`, { digest: dgst });
      throw e;
    }
  }

  /** Stores small content (manifests) under its digest; idempotent. */
  async put(ctx: DriverContext, content: Buffer, algorithm: 'sha256' | 'sha512' = 'sha256'): Promise<Descriptor> {
    const dgst = `${algorithm}:${createHash(algorithm).update(content).digest('hex')}`;
    let present = false;
    try { present = (await this.stat(ctx, dgst)).size === content.length; } catch { /* absent */ }
    if (!present) await this.driver.putContent(ctx, blobDataPath(dgst), content);
    const desc = { digest: dgst, size: content.length, mediaType: OCTET_STREAM };
    await this.cache.set(desc);
    return desc;
  }

  redirectURL(ctx: DriverContext, method: string, dgst: string): Promise<string | null> {
    return this.driver.redirectURL(ctx, method, blobDataPath(dgst));
  }

  /** Removes a blob from storage (garbage collection only). */
  async delete(ctx: DriverContext, dgst: string): Promise<void> {
    await this.driver.delete(ctx, blobDir(dgst));
    await this.cache.delete(dgst);
  }

}
