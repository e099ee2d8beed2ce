// blobWriter: one upload session. Bytes go through the driver's resumable
// writer straight into _uploads/<id>/data; the SHA-256 state is saved per
// offset beside it, so whichever process takes the next chunk resumes the
// hash without reading back what was already stored.
import { createHash } from 'node:crypto';
import { type DriverContext, type FileWriter, type StorageDriver, isNotFound } from '../../drivers/driver.js';
import type { Descriptor } from '../cache/descriptorCache.js';
import { parseDigest } from '../digest.js';
import { err } from '../errors.js';
import type { BlobStore } from './blobStore.js';
import { OCTET_STREAM } from './blobStore.js';
import { type Hasher, createHasher, restoreHasher } from './hasher.js';
import type { UploadSessionCache } from './uploadSessionCache.js';
import type { LinkedBlobStore } from './linkedBlobStore.js';
import { blobDataPath, uploadDataPath, uploadDir, uploadHashStatePath, uploadHashStatesDir } from './paths.js';

const WRITE_BUFFER = 1 << 20; // coalesce small network chunks into 1 MiB writes
const COMMIT_RECHECKS = 5;

export interface UploadInfo { id: string; startedAt: Date; size: number }

// Staging buffers outlive requests: a chunked push of N chunks would otherwise
// map and fault in 2N fresh MiB. Bounded: at most STAGE_POOL_MAX kept.
const STAGE_POOL_MAX = 32;
const stagePool: Buffer[] = [];
const takeStage = () => stagePool.pop() ?? Buffer.allocUnsafeSlow(WRITE_BUFFER);
const giveStage = (b: Buffer) => { if (stagePool.length < STAGE_POOL_MAX) stagePool.push(b); };

export class BlobWriter {
  private hasher: Hasher | null = null;
  private closed = false;

  constructor(
    readonly repo: string,
    readonly id: string,
    readonly startedAt: Date,
    private readonly driver: StorageDriver,
    private readonly blobStore: BlobStore,
    private readonly layers: LinkedBlobStore,
    private fw: FileWriter,
    private readonly sessions?: UploadSessionCache,
  ) {}

  size(): number { return this.fw.size(); }

  /** The saved state after exactly `offset` bytes, or null. */
  private async loadState(ctx: DriverContext, offset: number): Promise<Hasher | null> {
    const known = this.sessions?.hashState(this.repo, this.id, offset);
    if (known) {
      const h = restoreHasher('sha256', known);
      if (h && h.length === offset) return h;
    }
    const resumed = this.fw.resumedState?.();
    if (resumed && resumed.size === offset) {
      const h = restoreHasher('sha256', resumed.state);
      if (h && h.length === offset) return h;
    }
    try {
      const h = restoreHasher('sha256', await this.driver.getContent(ctx, uploadHashStatePath(this.repo, this.id, 'sha256', offset)));
      return h && h.length === offset ? h : null;
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  /** Loads the hash state matching the stored bytes, re-reading only what no
   *  saved state covers (or, with mayRead false, null if that would be needed). */
  private async ensureHasher(ctx: DriverContext): Promise<Hasher>;
  private async ensureHasher(ctx: DriverContext, mayRead: false): Promise<Hasher | null>;
  private async ensureHasher(ctx: DriverContext, mayRead = true): Promise<Hasher | null> {
    if (this.hasher) return this.hasher;
    const size = this.fw.size();
    let hasher: Hasher | null = null;
    if (size === 0) hasher = createHasher('sha256');
    if (!hasher) hasher = await this.loadState(ctx, size);
    if (!hasher) {
      let offsets: number[] = [];
      try {
        offsets = (await this.driver.list(ctx, uploadHashStatesDir(this.repo, this.id, 'sha256')))
          .map((p) => Number(p.slice(p.lastIndexOf('/') + 1)))
          .filter((n) => Number.isSafeInteger(n) && n <= size)
          .sort((a, b) => b - a);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      for (const off of offsets) {
        if (off === size) continue; // tried first, above
        hasher = await this.loadState(ctx, off);
        if (hasher) break;
      }
      hasher ??= createHasher('sha256');
      if (hasher.length < size && !mayRead) return null;
      if (hasher.length < size) {
        // Fallback: re-hash the stored bytes that no saved state covers.
        const r = await this.driver.reader(ctx, uploadDataPath(this.repo, this.id), hasher.length);
        let remaining = size - hasher.length;
        for await (const c of r) {
          const b = c as Buffer;
          const part = b.length > remaining ? b.subarray(0, remaining) : b;
          hasher.update(part);
          remaining -= part.length;
          if (remaining === 0) { r.destroy(); break; }
        }
      }
    }
    this.hasher = hasher;
    return hasher;
  }

  /** Appends a stream to the upload; returns the bytes taken from it. */
  async write(ctx: DriverContext, source: AsyncIterable<Buffer | Uint8Array>): Promise<number> {
    const hasher = await this.ensureHasher(ctx);
    // Two staging buffers, reused: while one is written and hashed (both on
    // the thread pool, in parallel), the other fills from the socket.
    const stages = [takeStage(), takeStage()];
    let cur = 0;
    let fill = 0;
    let total = 0;
    let inflight: Promise<void> = Promise.resolve();
    let broken = false;
    const flush = async () => {
      await inflight;
      if (fill === 0) return;
      const view = stages[cur].subarray(0, fill);
      const n = fill;
      cur ^= 1;
      fill = 0;
      inflight = Promise.all([this.fw.write(view), hasher.updateAsync(view)]).then(
        () => { total += n; },
        (e) => { broken = true; throw e; },
      );
    };
    try {
      for await (const c of source) {
        let b = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        while (b.length > 0) {
          const n = Math.min(b.length, WRITE_BUFFER - fill);
          b.copy(stages[cur], fill, 0, n);
          fill += n;
          b = b.subarray(n);
          if (fill === WRITE_BUFFER) await flush();
        }
      }
      await flush();
      await inflight;
    } catch (e) {
      // The client went away (or sent too much): keep what arrived, so it
      // resumes from the stored size. A storage failure (broken) keeps nothing more.
      if (!broken) {
        try { await flush(); await inflight; } catch { /* storage failed too; the size says what is stored */ }
      }
      await inflight.catch(() => {});
      throw e;
    } finally {
      await inflight.catch(() => {});
      stages.forEach(giveStage);
      if (broken || hasher.length !== this.fw.size()) {
        // A failed write leaves hash and stored bytes apart: forget this hasher;
        // the next resume starts from a saved state and re-reads the rest.
        this.hasher = null;
      } else {
        // Even when the client went away, what was stored stays hashed and resumable.
        await this.saveHashState(ctx).catch(() => {});
      }
    }
    return total;
  }

  private async saveHashState(ctx: DriverContext): Promise<void> {
    const state = this.hasher?.marshal();
    if (!state || !this.hasher) return;
    // Object stores keep it with the bytes at close() (no request of its own);
    // elsewhere it is distribution's hashstates file.
    if (!this.fw.keepState?.(state)) {
      await this.driver.putContent(ctx, uploadHashStatePath(this.repo, this.id, 'sha256', this.hasher.length), state);
    }
    this.sessions?.savedState(this.repo, this.id, this.hasher.length, state);
  }

  /** Releases the writer; the upload stays resumable. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fw.close();
  }

  /** Verifies digest (and size, if given), moves the data into the blob store and links it. */
  async commit(ctx: DriverContext, dgst: string, expectedSize?: number): Promise<Descriptor> {
    const parsed = parseDigest(dgst);
    if (!parsed) throw err('DIGEST_INVALID', `invalid digest: ${dgst.slice(0, 200)}`, { digest: dgst.slice(0, 200) });
    const size = this.fw.size();
    const target = blobDataPath(dgst);
    const direct = !this.closed && this.fw.commitTo !== undefined && parsed.algorithm === 'sha256'
      && (expectedSize === undefined || expectedSize === size);
    if (direct) {
      // Object stores: verify first (from the hash state, no read), then store
      // the bytes at the blob's path directly: no copy, no delete, no re-check.
      // A blob already there is replaced by identical, verified bytes.
      const hasher = await this.ensureHasher(ctx, false);
      if (hasher) {
        if (hasher.hex() !== parsed.hex) {
          await this.cancel(ctx);
          throw err('DIGEST_INVALID', `digest mismatch: uploaded content is sha256:${hasher.hex()}, not ${dgst}`, { digest: dgst });
        }
        this.closed = true;
        if (await this.fw.commitTo!(target)) return this.finishCommit(ctx, dgst, size);
        this.closed = false;
      }
    }
    if (!this.closed) {
      // commit() makes the data durable (the filesystem driver syncs it) and
      // readable: object stores show a file only once it is committed, and a
      // hash without a saved state is computed by reading it back.
      this.closed = true;
      await this.fw.commit();
    }
    let actual: string;
    if (parsed.algorithm === 'sha256') {
      actual = (await this.ensureHasher(ctx)).hex();
    } else {
      const h = createHash(parsed.algorithm);
      for await (const c of await this.driver.reader(ctx, uploadDataPath(this.repo, this.id), 0)) h.update(c as Buffer);
      actual = h.digest('hex');
    }
    if (expectedSize !== undefined && expectedSize !== size) {
      await this.cancel(ctx);
      throw err('SIZE_INVALID', `upload is ${size} bytes, expected ${expectedSize}`, { size, expected: expectedSize });
    }
    if (actual !== parsed.hex) {
      await this.cancel(ctx);
      throw err('DIGEST_INVALID', `digest mismatch: uploaded content is ${parsed.algorithm}:${actual}, not ${dgst}`, { digest: dgst });
    }
    let present = false;
    try { present = (await this.driver.stat(ctx, target)).size === size; } catch (e) { if (!isNotFound(e)) throw e; }
    if (!present) {
      await this.driver.move(ctx, uploadDataPath(this.repo, this.id), target);
      await this.recheck(ctx, target, dgst, size);
    }
    return this.finishCommit(ctx, dgst, size);
  }

  /** The blob is stored: describe it, link it into the repository, drop the session. */
  private async finishCommit(ctx: DriverContext, dgst: string, size: number): Promise<Descriptor> {
    const desc: Descriptor = { digest: dgst, size, mediaType: OCTET_STREAM };
    await this.blobStore.cache.set(desc);
    await this.layers.link(ctx, desc);
    await this.removeUploadDir(ctx);
    return desc;
  }

  /** Stores that are only eventually consistent may not show a move at once. */
  private async recheck(ctx: DriverContext, target: string, dgst: string, size: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const fi = await this.driver.stat(ctx, target);
        if (fi.size === size) return;
        if (attempt >= COMMIT_RECHECKS) throw err('UNKNOWN', `committed blob ${dgst} has size ${fi.size}, expected ${size}`);
      } catch (e) {
        if (!isNotFound(e) || attempt >= COMMIT_RECHECKS) throw e;
      }
      await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
    }
  }

  async cancel(ctx: DriverContext): Promise<void> {
    if (!this.closed) { this.closed = true; await this.fw.cancel().catch(() => {}); }
    await this.removeUploadDir(ctx);
  }

  private async removeUploadDir(ctx: DriverContext): Promise<void> {
    this.sessions?.forget(this.repo, this.id);
    try { await this.driver.delete(ctx, uploadDir(this.repo, this.id)); } catch (e) { if (!isNotFound(e)) throw e; }
  }
}
