// The GCS writer. A file being written is a run of part objects beside it,
// `<key>#part-<offset>`, each an ordinary object: any process resumes by
// listing them (GCS lists are strongly consistent), they are readable before
// commit, and a part at a given offset is created only if absent
// (ifGenerationMatch: 0), so two writers cannot both continue one file.
// Commit composes the parts into the file (32 per compose call) and deletes
// them; where compose is missing (the emulator) it streams them into one upload.
import { type Bucket } from '@google-cloud/storage';
import { type FileWriter, StorageDriverError } from '../driver.js';
import { stallGuard } from '../wholeRead.js';
import { BATCH_MAX, type BatchEndpoint, deleteBatch } from './batch.js';
import { mapLimit } from '../../lib/concurrency.js';

export const PART_MARK = '#part-';
const OFFSET_DIGITS = 16;
const COMPOSE_MAX = 32;
const DELETE_CONCURRENCY = 8;
const BATCH_CONCURRENCY = 4;

export interface PartRef { name: string; offset: number; size: number; /** base64 state kept with the part, describing offset + size bytes */ kept?: string }

export const partName = (key: string, offset: number) => `${key}${PART_MARK}${String(offset).padStart(OFFSET_DIGITS, '0')}`;

export interface GcsContext {
  bucket: Bucket;
  chunkSize: number;
  contentType: string;
  /** Whether the store composes (false once it answered 501). */
  canCompose: boolean;
  /** ms a part's body may stall before its read fails (wholeRead.ts). */
  stallMs: number;
  /** The batch endpoint for deletes (batch.ts); null once it answered that it has none. */
  batch: BatchEndpoint | null;
  /** A batch, or a call in one, was answered 429 or 503 (for the metrics). */
  throttled(): void;
  warnOnce(kind: string, message: string): void;
}

/** Marks a file that exists but holds nothing yet (a part at offset 0 would
 *  block the first real part, which is created only if absent). */
export const EMPTY_MARK = 'empty';

/** Parts of key, in order, checked to be contiguous from offset 0, and whether the empty-file mark exists. */
export async function listParts(c: GcsContext, key: string, path: string): Promise<PartRef[] & { marked?: boolean }> {
  const parts: PartRef[] & { marked?: boolean } = [];
  let pageToken: string | undefined;
  do {
    const [files, next] = await c.bucket.getFiles({ prefix: key + PART_MARK, autoPaginate: false, maxResults: 1000, pageToken });
    for (const f of files) {
      const suffix = f.name.slice(key.length + PART_MARK.length);
      if (suffix === EMPTY_MARK) { parts.marked = true; continue; }
      if (!/^\d+$/.test(suffix)) continue; // a compose intermediate, not a part
      const kept = (f.metadata.metadata as Record<string, unknown> | undefined)?.kept;
      parts.push({ name: f.name, offset: Number(suffix), size: Number(f.metadata.size ?? 0), kept: typeof kept === 'string' ? kept : undefined });
    }
    pageToken = (next as { pageToken?: string } | null)?.pageToken;
  } while (pageToken);
  let at = 0;
  for (const p of parts) {
    if (p.offset !== at) throw new StorageDriverError(`gcs: parts of ${path} are not contiguous at ${at}`, 'gcs');
    at += p.size;
  }
  return parts;
}

/** Deletes objects, missing ones included: in batches of 100 where the
 *  endpoint has them (4 at a time), then one request each, 8 at a time, for
 *  whatever a batch did not delete (the SDK retries those). */
export async function deleteObjects(c: GcsContext, names: string[]): Promise<void> {
  let left = names;
  if (c.batch && names.length > 1) {
    const chunks: string[][] = [];
    for (let i = 0; i < names.length; i += BATCH_MAX) chunks.push(names.slice(i, i + BATCH_MAX));
    left = (await mapLimit(chunks, BATCH_CONCURRENCY, (chunk) => deleteChunk(c, chunk))).flat();
  }
  await mapLimit(left, DELETE_CONCURRENCY, (name) => c.bucket.file(name).delete({ ignoreNotFound: true }));
}

/** One batch; returns what it left to delete one by one (all of it where
 *  the endpoint has no batches, which is then not asked again). */
async function deleteChunk(c: GcsContext, chunk: string[]): Promise<string[]> {
  if (!c.batch) return chunk;
  const r = await deleteBatch(c.batch, chunk);
  if (r === 'unsupported') {
    c.batch = null;
    c.warnOnce('batch', 'gcs: the endpoint has no batch requests (/batch/storage/v1); deleting one object per request');
    return chunk;
  }
  if (r.throttled) c.throttled();
  return r.failed;
}

export class GcsWriter implements FileWriter {
  private buf: Buffer | null = null;
  private fill = 0;
  private total: number;
  private status: 'open' | 'closed' | 'committed' | 'cancelled' = 'open';
  private kept: { size: number; state: Buffer } | null = null;

  constructor(
    private readonly c: GcsContext,
    private readonly key: string,
    private readonly path: string,
    private readonly parts: PartRef[],
    /** Key of a driver path, for commitTo. */
    private readonly keyOf: (path: string) => string,
    /** Whether the empty-file mark exists. */
    private marked = false,
  ) {
    this.total = parts.reduce((a, p) => a + p.size, 0);
  }

  /** Everything this writer keeps beside the file, to delete at the end. */
  private leftovers(): string[] {
    return [...this.parts.map((p) => p.name), ...(this.marked ? [this.key + PART_MARK + EMPTY_MARK] : [])];
  }

  private ensureOpen(): void {
    if (this.status !== 'open') throw new StorageDriverError(`gcs: writer is ${this.status}`, 'gcs');
  }

  size(): number { return this.total; }

  /** Rides as metadata of the part close() stores; none is stored when nothing is buffered. */
  keepState(state: Buffer): boolean {
    if (this.status !== 'open' || this.fill === 0) return false;
    this.kept = { size: this.total, state: Buffer.from(state) };
    return true;
  }

  resumedState(): { size: number; state: Buffer } | null {
    const last = this.parts[this.parts.length - 1];
    return last?.kept ? { size: last.offset + last.size, state: Buffer.from(last.kept, 'base64') } : null;
  }

  async write(chunk: Buffer): Promise<void> {
    this.ensureOpen();
    let off = 0;
    while (off < chunk.length) {
      this.buf ??= Buffer.allocUnsafe(this.c.chunkSize);
      const n = Math.min(chunk.length - off, this.buf.length - this.fill);
      chunk.copy(this.buf, this.fill, off, off + n);
      this.fill += n;
      this.total += n;
      off += n;
      if (this.fill === this.buf.length) await this.flushPart();
    }
  }

  private async flushPart(): Promise<void> {
    const offset = this.total - this.fill;
    const name = partName(this.key, offset);
    const body = this.buf ? this.buf.subarray(0, this.fill) : Buffer.alloc(0);
    try {
      const kept = this.kept && this.kept.size === this.total && this.fill === body.length ? this.kept.state.toString('base64') : undefined;
      await this.c.bucket.file(name).save(body, {
        resumable: false, validation: false, contentType: this.c.contentType,
        preconditionOpts: { ifGenerationMatch: 0 },
        ...(kept ? { metadata: { metadata: { kept } } } : {}),
      });
    } catch (e) {
      if ((e as { code?: number }).code === 412) throw new StorageDriverError(`gcs: another writer already stored ${this.path} at offset ${offset}`, 'gcs');
      throw e;
    }
    this.parts.push({ name, offset, size: body.length });
    this.fill = 0;
  }

  async close(): Promise<void> {
    if (this.status !== 'open') return;
    this.status = 'closed';
    if (this.fill > 0) await this.flushPart();
    else if (this.parts.length === 0 && !this.marked) {
      await this.c.bucket.file(this.key + PART_MARK + EMPTY_MARK).save(Buffer.alloc(0), { resumable: false, validation: false, contentType: this.c.contentType });
      this.marked = true;
    }
    this.buf = null;
  }

  async cancel(): Promise<void> {
    if (this.status === 'committed') throw new StorageDriverError('gcs: writer already committed', 'gcs');
    this.status = 'cancelled';
    this.buf = null;
    await deleteObjects(this.c, this.leftovers());
  }

  async commit(): Promise<void> {
    await this.finish(this.key);
  }

  /** Compose writes any key: the file goes straight to dest. */
  async commitTo(dest: string): Promise<boolean> {
    await this.finish(this.keyOf(dest));
    return true;
  }

  private async finish(target: string): Promise<void> {
    this.ensureOpen();
    const file = this.c.bucket.file(target);
    if (this.parts.length === 0) {
      // Never past one chunk: one upload.
      await file.save(this.buf ? this.buf.subarray(0, this.fill) : Buffer.alloc(0), { resumable: false, validation: false, contentType: this.c.contentType });
    } else {
      if (this.fill > 0) await this.flushPart();
      await this.assemble(target);
    }
    await deleteObjects(this.c, this.leftovers());
    this.status = 'committed';
    this.buf = null;
  }

  /** Composes the parts into the file, 32 at a time (a chain through intermediate objects). */
  private async assemble(target: string): Promise<void> {
    const names = this.parts.map((p) => p.name);
    if (this.c.canCompose) {
      try {
        const temps: string[] = [];
        let sources = names;
        let round = 0;
        while (sources.length > COMPOSE_MAX) {
          const next: string[] = [];
          for (let i = 0; i < sources.length; i += COMPOSE_MAX) {
            const temp = `${this.key}${PART_MARK}compose-${round}-${i / COMPOSE_MAX}`;
            await this.c.bucket.combine(sources.slice(i, i + COMPOSE_MAX), temp);
            next.push(temp);
            temps.push(temp);
          }
          sources = next;
          round++;
        }
        await this.c.bucket.combine(sources, target);
        await deleteObjects(this.c, temps);
        return;
      } catch (e) {
        if ((e as { code?: number }).code !== 501) throw e;
        this.c.canCompose = false;
        this.c.warnOnce('compose', 'gcs: the store does not support compose; files are assembled by streaming their parts through the registry');
      }
    }
    // Fallback: one streamed upload of the parts in order; memory stays at one stream buffer.
    const { pipeline } = await import('node:stream/promises');
    const c = this.c;
    const parts = this.parts;
    async function* concat() {
      for (const p of parts) {
        if (p.size === 0) continue;
        const body = stallGuard(c.bucket.file(p.name).createReadStream({ validation: false }), c.stallMs, `gcs: ${p.name}`);
        for await (const chunk of body) yield chunk as Buffer;
      }
    }
    await pipeline(concat(), this.c.bucket.file(target).createWriteStream({ resumable: false, validation: false, contentType: this.c.contentType }));
  }
}
