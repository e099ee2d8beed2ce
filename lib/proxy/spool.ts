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
/** Bytes appended but not yet written past which append() waits. */
const MAX_PENDING = 8 << 20;
/** Recent bytes kept in memory: a reader that keeps up with the upstream is
 *  served from them and never reads the file. */
const TAIL_BYTES = 8 << 20;

/** The buffers of a batch from byte off on (after a short write). */
function sliceFrom(batch: Buffer[], off: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of batch) {
    if (off >= b.length) { off -= b.length; continue; }
    out.push(off ? b.subarray(off) : b);
    off = 0;
  }
  return out;
}

export class Spool {
  private written = 0;
  private done = false;
  private error: Error | null = null;
  private waiters: (() => void)[] = [];
  /** The producer's reference and one per reader; the file closes at zero. */
  private refs = 1;
  private pending: Buffer[] = [];
  /** Bytes appended (written or not). */
  private appended = 0;
  /** The most recent chunks, by offset, for readers at the front. */
  private tail: { off: number; buf: Buffer }[] = [];
  private tailBytes = 0;
  private pendingBytes = 0;
  private writing: Promise<void> | null = null;
  /** finish() was called without an error: done once pending bytes are written. */
  private closing = false;

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

  /** Adds bytes. They are written as the file takes them: while one write
   *  is in flight, what arrives meanwhile is gathered into the next (one
   *  writev), so a fast upstream is not held to one write per network chunk.
   *  The caller must not change b afterwards. Resolves at once unless more
   *  than MAX_PENDING bytes wait (backpressure on the upstream). */
  async append(b: Buffer): Promise<void> {
    if (b.length === 0) return;
    this.tail.push({ off: this.appended, buf: b });
    this.appended += b.length;
    this.tailBytes += b.length;
    // Recent chunks stay in memory (bounded) for readers that keep up; only
    // chunks already on disk are dropped, so every byte is somewhere.
    while (this.tailBytes > TAIL_BYTES && this.tail.length > 1 && this.tail[0].off + this.tail[0].buf.length <= this.written) {
      this.tailBytes -= this.tail.shift()!.buf.length;
    }
    this.wake();
    this.pending.push(b);
    this.pendingBytes += b.length;
    if (!this.writing) this.writing = this.writeLoop();
    if (this.pendingBytes > MAX_PENDING) await this.writing;
  }

  private async writeLoop(): Promise<void> {
    try {
      while (this.pending.length > 0 && !this.error) {
        const batch = this.pending;
        this.pending = [];
        this.pendingBytes = 0;
        let off = 0;
        const total = batch.reduce((n, x) => n + x.length, 0);
        while (off < total) {
          const { bytesWritten } = await this.fh.writev(off === 0 ? batch : sliceFrom(batch, off), this.written);
          off += bytesWritten;
          this.written += bytesWritten;
          this.wake();
        }
      }
    } catch (e) {
      this.fail(e as Error);
    } finally {
      this.writing = null;
      if (this.closing && !this.done) this.complete(null);
    }
  }

  /** The producer is done: verified (no error; readers get the last byte once
   *  everything appended is written), or failed (readers throw the error). */
  finish(error?: Error): void {
    if (this.done || this.closing) { if (error) this.fail(error); return; }
    if (error) { this.fail(error); return; }
    this.closing = true;
    if (!this.writing) this.complete(null);
  }

  private fail(error: Error): void {
    if (this.done) return;
    this.complete(error);
  }

  private complete(error: Error | null): void {
    this.done = true;
    this.error = error;
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
        // Everything appended, but the last byte only once verified.
        const limit = this.done ? this.appended : this.appended - 1;
        if (pos < limit) {
          const mem = this.fromTail(pos, limit);
          if (mem) {
            pos += mem.length;
            yield mem;
            continue;
          }
          const upTo = Math.min(limit, this.written);
          if (pos < upTo) {
            const n = Math.min(READ_BYTES, upTo - pos);
            // A fresh buffer per read: the consumer may still hold the last one.
            const b = Buffer.allocUnsafe(n);
            const { bytesRead } = await this.fh.read(b, 0, n, pos);
            pos += bytesRead;
            yield bytesRead === n ? b : b.subarray(0, bytesRead);
            continue;
          }
        }
        if (this.done && pos >= limit) return;
        await new Promise<void>((r) => this.waiters.push(r));
      }
    } finally {
      this.release();
    }
  }

  /** Bytes from pos (up to limit) held in memory, or null. */
  private fromTail(pos: number, limit: number): Buffer | null {
    const t = this.tail;
    if (t.length === 0 || pos < t[0].off) return null;
    for (let i = t.length - 1; i >= 0; i--) {
      const c = t[i];
      if (pos >= c.off) {
        if (pos >= c.off + c.buf.length) return null;
        return c.buf.subarray(pos - c.off, Math.min(c.buf.length, limit - c.off));
      }
    }
    return null;
  }
}
