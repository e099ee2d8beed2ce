// One upstream fetch, many readers: the bytes go to an unlinked temporary
// file as they arrive, and every reader (the first client and any that join
// later) reads it from the start at its own pace, following it as it grows.
// Memory stays bounded whatever the blob's size or the readers' speed, and a
// slow client never slows the fetch. Until the producer says the bytes are
// verified, the last byte is held back: a client never receives a complete
// body whose digest turned out wrong; it sees the transfer cut instead.
import { randomUUID } from 'node:crypto';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const READ_BYTES = 256 << 10;

export class Spool {
  private written = 0;
  private done = false;
  private error: Error | null = null;
  private waiters: (() => void)[] = [];
  /** The producer's reference and one per reader; the file closes at zero. */
  private refs = 1;

  private constructor(private readonly fh: FileHandle) {}

  static async create(dir: string): Promise<Spool> {
    const path = join(dir, `registry-proxy-${randomUUID()}`);
    const fh = await open(path, 'w+', 0o600);
    // Unlinked at once: nothing is left behind, whatever happens to the process.
    await unlink(path).catch(() => {});
    return new Spool(fh);
  }

  get size(): number { return this.written; }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    ws.forEach((w) => w());
  }

  async append(b: Buffer): Promise<void> {
    let off = 0;
    while (off < b.length) {
      const { bytesWritten } = await this.fh.write(b, off, b.length - off, this.written);
      off += bytesWritten;
      this.written += bytesWritten;
    }
    this.wake();
  }

  /** The producer is done: verified (no error), or failed (readers throw it). */
  finish(error?: Error): void {
    if (this.done) return;
    this.done = true;
    this.error = error ?? null;
    this.wake();
    this.release();
  }

  private release(): void {
    if (--this.refs === 0) void this.fh.close().catch(() => {});
  }

  /** The bytes from the start; throws the producer's error if it fails. */
  async *reader(): AsyncGenerator<Buffer> {
    this.refs++;
    try {
      let pos = 0;
      for (;;) {
        if (this.error) throw this.error;
        const limit = this.done ? this.written : this.written - 1;
        if (pos < limit) {
          const n = Math.min(READ_BYTES, limit - pos);
          // A fresh buffer per read: the consumer may still hold the last one.
          const b = Buffer.allocUnsafe(n);
          const { bytesRead } = await this.fh.read(b, 0, n, pos);
          pos += bytesRead;
          yield bytesRead === n ? b : b.subarray(0, bytesRead);
          continue;
        }
        if (this.done) return;
        await new Promise<void>((r) => this.waiters.push(r));
      }
    } finally {
      this.release();
    }
  }
}
