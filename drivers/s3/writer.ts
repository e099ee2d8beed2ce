// The S3 writer: a multipart upload that any process can resume. S3 lists
// neither the parts of an upload nor the uploads of a key on every store
// (s3rver has neither), so the writer keeps its own state in a sidecar object
// beside the file, `<key>#writer`: the upload id, the parts with their ETags,
// and the tail of bytes that is still under S3's 5 MiB minimum part size.
// close() writes the sidecar (one PUT); writer(path, true) reads it (one GET).
// '#' is not allowed in driver paths, so a sidecar never collides with a file.
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand,
  DeleteObjectCommand, PutObjectCommand, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { type FileWriter, StorageDriverError } from '../driver.js';
import type { S3Context } from './context.js';

export const SIDECAR_SUFFIX = '#writer';
import { MIN_PART } from './parts.js';

export { MIN_PART };
export const MAX_PARTS = 10000;
const MAGIC = Buffer.from('TSRW1\n');

export interface Part { PartNumber: number; ETag: string; size: number }
export interface WriterState { uploadId?: string; parts: Part[]; size: number; /** base64 state kept for the caller, describing `size` bytes */ kept?: string }

/** Sidecar body: magic, 4-byte JSON length, JSON state, then the tail bytes. */
export function encodeSidecar(state: WriterState, tail: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(state));
  const head = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(head);
  head.writeUInt32BE(json.length, MAGIC.length);
  return Buffer.concat([head, json, tail]);
}

export function decodeSidecar(body: Buffer, path: string): { state: WriterState; tail: Buffer } {
  const bad = () => new StorageDriverError(`s3: writer state of ${path} is corrupt`, 's3');
  if (body.length < MAGIC.length + 4 || !body.subarray(0, MAGIC.length).equals(MAGIC)) throw bad();
  const n = body.readUInt32BE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (start + n > body.length) throw bad();
  let state: WriterState;
  try { state = JSON.parse(body.subarray(start, start + n).toString()) as WriterState; } catch { throw bad(); }
  const tail = body.subarray(start + n);
  const partBytes = state.parts.reduce((a, p) => a + p.size, 0);
  if (partBytes + tail.length !== state.size) throw bad();
  return { state, tail };
}

export class S3Writer implements FileWriter {
  private buf: Buffer | null = null;
  private fill = 0;
  private total: number;
  private status: 'open' | 'closed' | 'committed' | 'cancelled' = 'open';
  private kept: { size: number; state: Buffer } | null = null;
  /** Whether anything changed since the sidecar was last written. */
  private dirty = false;

  constructor(
    private readonly c: S3Context,
    private readonly key: string,
    private readonly path: string,
    private readonly state: WriterState,
    tail: Buffer | null,
    /** Whether a sidecar exists in the bucket (this writer resumed one or wrote one). */
    private sidecar: boolean,
    /** Key of a driver path, for commitTo. */
    private readonly keyOf: (path: string) => string,
  ) {
    this.total = state.size;
    if (state.kept !== undefined) this.kept = { size: state.size, state: Buffer.from(state.kept, 'base64') };
    if (tail && tail.length > 0) {
      this.buf = Buffer.allocUnsafe(c.chunkSize);
      tail.copy(this.buf);
      this.fill = tail.length;
    }
  }

  private ensureOpen(): void {
    if (this.status !== 'open') throw new StorageDriverError(`s3: writer is ${this.status}`, 's3');
  }

  size(): number { return this.total; }

  /** Rides in the sidecar, which close() writes anyway. */
  keepState(state: Buffer): boolean {
    this.kept = { size: this.total, state: Buffer.from(state) };
    this.dirty = true;
    return this.status === 'open';
  }

  resumedState(): { size: number; state: Buffer } | null {
    return this.state.kept !== undefined ? { size: this.state.size, state: Buffer.from(this.state.kept, 'base64') } : null;
  }

  async write(chunk: Buffer): Promise<void> {
    this.ensureOpen();
    if (chunk.length) this.dirty = true;
    let off = 0;
    while (off < chunk.length) {
      this.buf ??= Buffer.allocUnsafe(this.c.chunkSize);
      const n = Math.min(chunk.length - off, this.buf.length - this.fill);
      chunk.copy(this.buf, this.fill, off, off + n);
      this.fill += n;
      this.total += n;
      off += n;
      // The bytes stay in buf until their part is stored, so a failed
      // upload loses nothing that close() would not still save.
      if (this.fill === this.buf.length) await this.flushPart();
    }
  }

  /** Uploads the buffered bytes as the next part. */
  private async flushPart(): Promise<void> {
    if (this.state.parts.length >= MAX_PARTS) {
      throw new StorageDriverError(`s3: ${this.path} exceeds ${MAX_PARTS} parts of ${this.c.chunkSize} bytes; raise chunksize`, 's3');
    }
    if (!this.state.uploadId) {
      const res = await this.c.client.send(new CreateMultipartUploadCommand({ ...this.c.objectOptions, Bucket: this.c.bucket, Key: this.key }));
      if (!res.UploadId) throw new StorageDriverError(`s3: no upload id for ${this.path}`, 's3');
      this.state.uploadId = res.UploadId;
    }
    const PartNumber = this.state.parts.length + 1;
    const body = this.buf!.subarray(0, this.fill);
    const res = await this.c.client.send(new UploadPartCommand({
      Bucket: this.c.bucket, Key: this.key, UploadId: this.state.uploadId, PartNumber, Body: body, ContentLength: body.length,
    }));
    this.state.parts.push({ PartNumber, ETag: res.ETag ?? '', size: body.length });
    this.fill = 0;
  }

  /** Saves the writer's state so another writer (in any process) continues it. */
  async close(): Promise<void> {
    if (this.status !== 'open') return;
    this.status = 'closed';
    // A resumed writer that took nothing leaves the sidecar as it is.
    if (this.sidecar && !this.dirty) { this.buf = null; return; }
    // A tail that is already a legal part goes up as one; the sidecar only
    // ever carries less than 5 MiB.
    if (this.fill >= MIN_PART) await this.flushPart();
    const tail = this.buf ? this.buf.subarray(0, this.fill) : Buffer.alloc(0);
    await this.c.client.send(new PutObjectCommand({
      Bucket: this.c.bucket, Key: this.key + SIDECAR_SUFFIX,
      Body: encodeSidecar({
        uploadId: this.state.uploadId, parts: this.state.parts, size: this.total,
        ...(this.kept && this.kept.size === this.total ? { kept: this.kept.state.toString('base64') } : {}),
      }, tail),
      // stat() reads the file's size and time from here without a GET.
      Metadata: { size: String(this.total) },
    }));
    this.sidecar = true;
    this.buf = null;
  }

  async cancel(): Promise<void> {
    if (this.status === 'committed') throw new StorageDriverError('s3: writer already committed', 's3');
    this.status = 'cancelled';
    this.buf = null;
    if (this.state.uploadId) await abortUpload(this.c, this.key, this.state.uploadId);
    if (this.sidecar) await this.c.client.send(new DeleteObjectCommand({ Bucket: this.c.bucket, Key: this.key + SIDECAR_SUFFIX }));
  }

  /** A file that never needed a part goes to dest in one PUT; a multipart
   *  upload is bound to its key, so that one is committed in place. */
  async commitTo(dest: string): Promise<boolean> {
    this.ensureOpen();
    if (this.state.uploadId) return false;
    const body = this.buf ? this.buf.subarray(0, this.fill) : Buffer.alloc(0);
    await this.c.client.send(new PutObjectCommand({ ...this.c.objectOptions, Bucket: this.c.bucket, Key: this.keyOf(dest), Body: body, ContentLength: body.length }));
    this.status = 'committed';
    this.buf = null;
    if (this.sidecar) await this.c.client.send(new DeleteObjectCommand({ Bucket: this.c.bucket, Key: this.key + SIDECAR_SUFFIX }));
    return true;
  }

  async commit(): Promise<void> {
    this.ensureOpen();
    if (!this.state.uploadId) {
      // Everything fits in one request.
      const body = this.buf ? this.buf.subarray(0, this.fill) : Buffer.alloc(0);
      await this.c.client.send(new PutObjectCommand({ ...this.c.objectOptions, Bucket: this.c.bucket, Key: this.key, Body: body, ContentLength: body.length }));
    } else {
      if (this.fill > 0) await this.flushPart(); // the last part may be small
      await this.c.client.send(new CompleteMultipartUploadCommand({
        Bucket: this.c.bucket, Key: this.key, UploadId: this.state.uploadId,
        MultipartUpload: { Parts: this.state.parts.map(({ PartNumber, ETag }) => ({ PartNumber, ETag })) },
      }));
    }
    this.status = 'committed';
    this.buf = null;
    if (this.sidecar) await this.c.client.send(new DeleteObjectCommand({ Bucket: this.c.bucket, Key: this.key + SIDECAR_SUFFIX }));
  }
}

/** Aborts a multipart upload; stores without AbortMultipartUpload (s3rver) are logged and skipped. */
export async function abortUpload(c: S3Context, key: string, uploadId: string): Promise<void> {
  try {
    await c.client.send(new AbortMultipartUploadCommand({ Bucket: c.bucket, Key: key, UploadId: uploadId }));
  } catch (e) {
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404) return; // already gone
    if (status === 405 || status === 501) {
      c.warnOnce('abort', `s3: the store does not support AbortMultipartUpload (${(e as Error).name}); incomplete uploads stay until a bucket lifecycle rule removes them`);
      return;
    }
    throw e;
  }
}
