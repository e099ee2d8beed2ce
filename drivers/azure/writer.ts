// The azure writer: an append blob, so any process continues it from its
// length and its bytes are readable before commit. Writes are gathered into
// appends of up to 4 MiB (the limit every service version takes), each with
// an appendPosition condition: a retried or racing append fails instead of
// writing bytes twice.
import type { AppendBlobClient, BlobClient } from '@azure/storage-blob';
import { type FileWriter, StorageDriverError } from '../driver.js';

export const APPEND_MAX = 4 << 20;

export class AzureWriter implements FileWriter {
  private buf: Buffer | null = null;
  private fill = 0;
  /** Bytes in the blob. */
  private stored: number;
  private status: 'open' | 'closed' | 'committed' | 'cancelled' = 'open';

  constructor(
    private readonly blob: AppendBlobClient,
    private readonly path: string,
    size: number,
    /** Whether the blob exists already (a resumed writer). */
    private created: boolean,
    private readonly clientOf: (path: string) => BlobClient,
  ) {
    this.stored = size;
  }

  private ensureOpen(): void {
    if (this.status !== 'open') throw new StorageDriverError(`azure: writer is ${this.status}`, 'azure');
  }

  size(): number { return this.stored + this.fill; }

  async write(chunk: Buffer): Promise<void> {
    this.ensureOpen();
    let off = 0;
    while (off < chunk.length) {
      this.buf ??= Buffer.allocUnsafe(APPEND_MAX);
      const n = Math.min(chunk.length - off, APPEND_MAX - this.fill);
      chunk.copy(this.buf, this.fill, off, off + n);
      this.fill += n;
      off += n;
      if (this.fill === APPEND_MAX) await this.flush();
    }
  }

  private async create(): Promise<void> {
    if (this.created) return;
    await this.blob.create();
    this.created = true;
  }

  private async flush(): Promise<void> {
    if (this.fill === 0) return;
    await this.create();
    await this.blob.appendBlock(this.buf!.subarray(0, this.fill), this.fill, { conditions: { appendPosition: this.stored } });
    this.stored += this.fill;
    this.fill = 0;
  }

  async close(): Promise<void> {
    if (this.status !== 'open') return;
    this.status = 'closed';
    await this.flush();
    await this.create(); // an empty file must exist to be resumed
    this.buf = null;
  }

  async cancel(): Promise<void> {
    if (this.status === 'committed') throw new StorageDriverError('azure: writer already committed', 'azure');
    this.status = 'cancelled';
    this.buf = null;
    if (this.created) await this.blob.deleteIfExists();
  }

  async commit(): Promise<void> {
    this.ensureOpen();
    await this.flush();
    await this.create();
    this.status = 'committed';
    this.buf = null;
  }

  /** Bytes all still in memory go to dest in one PUT; otherwise a server-side
   *  copy, with neither the existence check nor the re-check a move makes. */
  async commitTo(dest: string): Promise<boolean> {
    this.ensureOpen();
    const target = this.clientOf(dest);
    if (this.stored === 0) {
      await target.getBlockBlobClient().uploadData(this.buf ? this.buf.subarray(0, this.fill) : Buffer.alloc(0));
    } else {
      await this.flush();
      const poller = await target.beginCopyFromURL(this.blob.url);
      const res = await poller.pollUntilDone();
      if (res.copyStatus !== 'success') throw new StorageDriverError(`azure: copy of ${this.path} ended ${res.copyStatus}`, 'azure');
    }
    this.status = 'committed';
    this.buf = null;
    if (this.created) await this.blob.deleteIfExists();
    return true;
  }
}
