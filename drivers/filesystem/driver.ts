// Filesystem driver: distribution's layout under rootdirectory. putContent
// and move are atomic (temp file + rename), so a crash never leaves a
// half-written link file behind.
import { createReadStream, readFile as readFileCb, stat as statCb, type ReadStream, type Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  type DriverContext, type FileInfo, type FileWriter, type StorageDriver, type StraySweep, type WalkResult,
  InvalidOffsetError, PathNotFoundError, StorageDriverError,
} from '../driver.js';
import { Semaphore } from '../regulator.js';

const NAME = 'filesystem';
const FLUSH_EVERY = 32 << 20;
/** Temp files of putContent beside their target (versions before the temp folder). */
const STRAY_RE = /\.tmp-[0-9a-f]{12}$/;
/** putContent's temp files live in one folder at the root, hidden from list
 *  and walk of '/': a crash's leftovers are found by reading that folder, not
 *  every folder of the store (see removeStrays). */
export const TMP_DIR = '_tmp';
/** In TMP_DIR: no temp file was ever left beside its target since the last full sweep. */
const SWEPT_MARK = 'swept';
/** In TMP_DIR: a rename from TMP_DIR failed with EXDEV (a mount inside the
 *  root), so temp files are written beside their targets again, and every
 *  sweep is a full one. Removed by hand once the mounts are fixed. */
const BESIDE_MARK = 'beside';
const MARKS = new Set([SWEPT_MARK, BESIDE_MARK]);
/** Retries of a write or delete that lost a race with a delete or write of the same folder. */
const RACE_RETRIES = 20;
/** Entries of one directory stat'ed at once by walk. */
const WALK_STATS = 32;
/** Subdirectories walk reads ahead per level, and filesystem calls a walk makes at once. */
const WALK_AHEAD = 8;
const WALK_DEPTH = 2;
const WALK_IO = 32;
const SEND_CHUNK = 1 << 20;

/** At most `limit` background flushes at once; beyond that, close() waits. */
class BoundedBackground {
  private running = new Set<Promise<unknown>>();
  constructor(private readonly limit: number) {}
  run(task: () => Promise<unknown>): void | Promise<void> {
    const p = task().finally(() => this.running.delete(p));
    this.running.add(p);
    if (this.running.size >= this.limit) return Promise.race(this.running).then(() => {});
  }
}
const backgroundSyncs = new BoundedBackground(16);

export interface FilesystemParams { rootdirectory: string }

// The callback forms: fs/promises readFile costs about four times as much per
// small file, and link files are read on every request.
const readFileFast = (p: string) => new Promise<Buffer>((res, rej) => readFileCb(p, (e, d) => (e ? rej(e) : res(d))));
const statFast = (p: string) => new Promise<Stats>((res, rej) => statCb(p, (e, st) => (e ? rej(e) : res(st))));

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

export class FilesystemDriver implements StorageDriver {
  readonly root: string;
  private readonly tmpDir: string;
  /** Set after an EXDEV: temp files go beside their targets. */
  private beside = false;
  constructor(params: FilesystemParams) {
    this.root = path.resolve(params.rootdirectory);
    this.tmpDir = path.join(this.root, TMP_DIR);
  }

  name(): string { return NAME; }
  private full(p: string): string { return path.join(this.root, p); }

  private notFound(err: unknown, p: string): never {
    const c = code(err);
    if (c === 'ENOENT' || c === 'ENOTDIR') throw new PathNotFoundError(p, NAME);
    throw err;
  }

  async getContent(_ctx: DriverContext, p: string): Promise<Buffer> {
    try {
      return await readFileFast(this.full(p));
    } catch (err) {
      if (code(err) === 'EISDIR') throw new PathNotFoundError(p, NAME);
      return this.notFound(err, p);
    }
  }

  async putContent(_ctx: DriverContext, p: string, content: Buffer): Promise<void> {
    const target = this.full(p);
    const tempName = () => (this.beside ? `${target}.tmp-${randomBytes(6).toString('hex')}` : path.join(this.tmpDir, `${randomBytes(8).toString('hex')}.tmp`));
    let tmp = tempName();
    // A concurrent delete of a parent (a tag DELETE racing a tag PUT) can
    // remove the folder between mkdir and rename: make it again and retry, so
    // the write lands whole (or the delete wins first), never a 5xx.
    for (let attempt = 0; ; attempt++) {
      try {
        await fs.mkdir(path.dirname(target), { recursive: true });
        await fs.writeFile(tmp, content);
        await fs.rename(tmp, target);
        return;
      } catch (err) {
        await fs.rm(tmp, { force: true }).catch(() => {});
        if (code(err) === 'EXDEV' && !this.beside) {
          await this.writeBeside();
          tmp = tempName();
          continue;
        }
        if (code(err) !== 'ENOENT' || attempt >= RACE_RETRIES) throw err;
        // The temp folder itself may be missing (a new store, or removed).
        if (!this.beside) await fs.mkdir(this.tmpDir, { recursive: true });
      }
    }
  }

  /** After an EXDEV: temp files beside their targets from now on, and a mark
   *  that makes removeStrays look for them everywhere. */
  private async writeBeside(): Promise<void> {
    this.beside = true;
    await fs.writeFile(path.join(this.tmpDir, BESIDE_MARK), `${new Date().toISOString()} rename from ${this.tmpDir} failed with EXDEV: a mount inside the root; remove this file once there is none\n`).catch(() => {});
  }

  async reader(_ctx: DriverContext, p: string, offset: number): Promise<Readable> {
    const full = this.full(p);
    let st;
    try { st = await statFast(full); } catch (err) { return this.notFound(err, p); }
    if (st.isDirectory()) throw new PathNotFoundError(p, NAME);
    if (offset < 0 || offset > st.size) throw new InvalidOffsetError(p, offset, NAME);
    const stream: ReadStream = createReadStream(full, { start: offset, highWaterMark: 1 << 20 });
    return stream;
  }

  async sendTo(ctx: DriverContext, p: string, offset: number, length: number, dest: NodeJS.WritableStream): Promise<void> {
    let fh: fs.FileHandle;
    try { fh = await fs.open(this.full(p), 'r'); } catch (err) { return this.notFound(err, p); }
    // Four buffers in rotation: one is read while up to three wait in the
    // socket; a buffer is reused only after the socket has taken its bytes.
    const free: Buffer[] = Array.from({ length: 4 }, () => Buffer.allocUnsafeSlow(SEND_CHUNK));
    const waiting: ((b: Buffer) => void)[] = [];
    const take = () => (free.length ? Promise.resolve(free.pop()!) : new Promise<Buffer>((r) => waiting.push(r)));
    const give = (b: Buffer) => { const w = waiting.shift(); if (w) w(b); else free.push(b); };
    let failed: Error | null = null;
    const onError = (e: Error) => { failed = e; for (const w of waiting.splice(0)) w(Buffer.alloc(0)); };
    const onClose = () => onError(new Error('client went away'));
    dest.once('error', onError);
    dest.once('close', onClose);
    try {
      let pos = offset;
      const end = offset + length;
      while (pos < end && !failed && !ctx.signal?.aborted) {
        const b = await take();
        if (failed) break;
        const { bytesRead } = await fh.read(b, 0, Math.min(b.length, end - pos), pos);
        if (bytesRead === 0) throw new StorageDriverError(`${NAME}: ${p} is shorter than expected`, NAME);
        pos += bytesRead;
        dest.write(b.subarray(0, bytesRead), () => give(b));
      }
      if (failed) throw failed;
    } finally {
      dest.removeListener('error', onError);
      dest.removeListener('close', onClose);
      await fh.close();
    }
  }

  async writer(_ctx: DriverContext, p: string, append: boolean): Promise<FileWriter> {
    const full = this.full(p);
    let fh: fs.FileHandle;
    let size = 0;
    if (append) {
      try { fh = await fs.open(full, 'r+'); } catch (err) { return this.notFound(err, p); }
      size = (await fh.stat()).size;
    } else {
      await fs.mkdir(path.dirname(full), { recursive: true });
      fh = await fs.open(full, 'w');
    }
    let state: 'open' | 'closed' | 'committed' | 'cancelled' = 'open';
    // Flush to disk in the background every FLUSH_EVERY bytes, so the sync
    // at commit has little left to do and disk I/O overlaps the network.
    let unflushed = 0;
    let flushing: Promise<void> | null = null;
    const backgroundFlush = () => {
      if (flushing || unflushed < FLUSH_EVERY) return;
      unflushed = 0;
      flushing = fh.datasync().catch(() => {}).finally(() => { flushing = null; });
    };
    const ensureOpen = () => {
      if (state !== 'open') throw new StorageDriverError(`${NAME}: writer is ${state}`, NAME);
    };
    return {
      async write(chunk: Buffer) {
        ensureOpen();
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, size);
          off += bytesWritten;
          size += bytesWritten;
          unflushed += bytesWritten;
        }
        backgroundFlush();
      },
      size: () => size,
      async close() {
        if (state !== 'open') return;
        state = 'closed';
        await flushing;
        if (unflushed === 0) { await fh.close(); return; }
        // Chunked uploads close their writer after every chunk: flush what this
        // chunk wrote in the background, so the sync at commit stays short.
        await backgroundSyncs.run(() => fh.datasync().catch(() => {}).finally(() => fh.close().catch(() => {})));
      },
      async cancel() {
        if (state === 'committed') throw new StorageDriverError(`${NAME}: writer already committed`, NAME);
        if (state === 'open') { await flushing; await fh.close(); }
        state = 'cancelled';
        await fs.rm(full, { force: true });
      },
      async commit() {
        ensureOpen();
        state = 'committed';
        // Durable before the blob is linked anywhere, as distribution's Sync on commit.
        try { await flushing; await fh.datasync(); } finally { await fh.close(); }
      },
    };
  }

  async stat(_ctx: DriverContext, p: string): Promise<FileInfo> {
    try {
      const st = await statFast(this.full(p));
      return { path: p, size: st.isDirectory() ? 0 : st.size, modTime: st.mtime, isDir: st.isDirectory() };
    } catch (err) { return this.notFound(err, p); }
  }

  async list(_ctx: DriverContext, p: string): Promise<string[]> {
    try {
      const names = await fs.readdir(this.full(p));
      const base = p === '/' ? '' : p;
      return names.filter((n) => base || n !== TMP_DIR).sort().map((n) => `${base}/${n}`);
    } catch (err) {
      if (p === '/' && code(err) === 'ENOENT') return [];
      return this.notFound(err, p);
    }
  }

  async move(_ctx: DriverContext, src: string, dest: string): Promise<void> {
    const from = this.full(src);
    const to = this.full(dest);
    try { await fs.access(from); } catch (err) { return this.notFound(err, src); }
    await fs.mkdir(path.dirname(to), { recursive: true });
    try { await fs.rename(from, to); } catch (err) { return this.notFound(err, src); }
  }

  async delete(_ctx: DriverContext, p: string): Promise<void> {
    const full = this.full(p);
    try { await fs.lstat(full); } catch (err) { return this.notFound(err, p); }
    // A file created inside the folder while it is removed (a concurrent
    // putContent) makes rmdir fail with ENOTEMPTY: remove again.
    for (let attempt = 0; ; attempt++) {
      try {
        await fs.rm(full, { recursive: true, force: true });
        return;
      } catch (err) {
        if (code(err) !== 'ENOTEMPTY' || attempt >= RACE_RETRIES) throw err;
      }
    }
  }

  async walk(ctx: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
    // fn sees every entry in lexical order, but the filesystem is read ahead:
    // the next WALK_AHEAD subdirectories of each level are listed, and their
    // files stat'ed, while fn looks at the current one, WALK_IO calls at once
    // in all. One call after the other left the thread pool idle between
    // round trips (a walk of a 33,000-file store took seconds). Directories
    // are not stat'ed: their FileInfo says isDir (no caller reads a folder's
    // time, which object stores do not have either).
    const io = new Semaphore(WALK_IO);
    const gone = (e: unknown) => code(e) === 'ENOENT' || code(e) === 'ENOTDIR';
    type Listed = { entries: (FileInfo | null)[]; ahead: Map<number, Promise<Listed | null>>; next: number };
    // Starts reading the next subdirectories of a listing, up to WALK_AHEAD
    // not yet visited; each reads `depth` levels further ahead in turn, so a
    // deep, narrow tree (a tag: current/link, index/<alg>/<hex>/link) is
    // read in parallel too.
    const prefetch = (l: Listed, depth: number) => {
      for (; l.next < l.entries.length && l.ahead.size < WALK_AHEAD; l.next++) {
        const fi = l.entries[l.next];
        if (!fi?.isDir) continue;
        const pr = load(fi.path, depth).catch((e) => { if (gone(e)) return null; throw e; });
        pr.catch(() => {}); // awaited by visit, or dropped by skipdir
        l.ahead.set(l.next, pr);
      }
    };
    const load = async (dir: string, depth: number): Promise<Listed> => {
      let dirents = await io.run(() => fs.readdir(this.full(dir), { withFileTypes: true }));
      if (dir === '/') dirents = dirents.filter((d) => d.name !== TMP_DIR);
      dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const base = dir === '/' ? '' : dir;
      const l: Listed = {
        entries: dirents.map((d) => (d.isDirectory() ? { path: `${base}/${d.name}`, size: 0, modTime: new Date(0), isDir: true } : null)),
        ahead: new Map(), next: 0,
      };
      if (depth > 0) prefetch(l, depth - 1);
      for (let i = 0; i < dirents.length; i += WALK_STATS) {
        await Promise.all(dirents.slice(i, i + WALK_STATS).map(async (d, j) => {
          if (d.isDirectory()) return;
          // null: removed meanwhile
          l.entries[i + j] = await io.run(() => this.stat(ctx, `${base}/${d.name}`)).catch(() => null);
        }));
      }
      return l;
    };
    const visit = async (l: Listed): Promise<void> => {
      for (let i = 0; i < l.entries.length; i++) {
        const fi = l.entries[i];
        if (!fi) continue;
        prefetch(l, WALK_DEPTH);
        const r = await fn(fi);
        if (!fi.isDir) continue;
        const sub = l.ahead.get(i)!;
        l.ahead.delete(i);
        if (r === 'skipdir') continue;
        const listed = await sub;
        if (listed) await visit(listed);
      }
    };
    let top;
    try {
      top = await load(p, WALK_DEPTH);
    } catch (err) {
      if (p === '/' && code(err) === 'ENOENT') return;
      return this.notFound(err, p);
    }
    await visit(top);
  }

  async redirectURL(): Promise<string | null> { return null; }

  /**
   * Temp files that a crash between putContent's write and rename left, older
   * than olderThan: those in the temp folder (one listing), and, until one
   * full sweep has found them all, those beside their targets under p that
   * versions before the temp folder wrote (`<name>.tmp-<12 hex>`). The full
   * sweep lists every folder under p (65,000 on a store of 33,000 files:
   * longer than the rest of a dry run); the swept mark in the temp folder
   * records that it was done, and the beside mark (after an EXDEV) makes
   * every sweep a full one. A dry run leaves the full sweep out and says so
   * (partial): it cannot write the swept mark, so every dry run before the
   * first real one would list the whole store again (on a store of 315,000
   * files, 391,000 folders, half of the dry run's time) to report leftovers
   * of a few bytes that nothing reads.
   */
  async removeStrays(ctx: DriverContext, p: string, olderThan: Date, dryRun: boolean): Promise<StraySweep> {
    const out: string[] = [];
    let names: string[] = [];
    try { names = await fs.readdir(this.tmpDir); } catch (err) { if (code(err) !== 'ENOENT') throw err; }
    await Promise.all(names.filter((n) => !MARKS.has(n)).map(async (n) => {
      const f = path.join(this.tmpDir, n);
      const st = await statFast(f).catch(() => null);
      if (!st || st.isDirectory() || st.mtime >= olderThan) return;
      out.push(`/${TMP_DIR}/${n}`);
      if (!dryRun) await fs.rm(f, { force: true });
    }));
    const full = !names.includes(SWEPT_MARK) || names.includes(BESIDE_MARK);
    if (full && !dryRun) {
      out.push(...await this.removeStraysBeside(ctx, p, olderThan, dryRun));
      if (!dryRun && !names.includes(BESIDE_MARK)) {
        await fs.mkdir(this.tmpDir, { recursive: true });
        await fs.writeFile(path.join(this.tmpDir, SWEPT_MARK), `${new Date().toISOString()} every folder under ${p} was swept of temp files; new ones are written in ${this.tmpDir}\n`);
      }
    }
    return { paths: out.sort(), partial: full && dryRun };
  }

  private async removeStraysBeside(_ctx: DriverContext, p: string, olderThan: Date, dryRun: boolean): Promise<string[]> {
    const out: string[] = [];
    // The directory entries' types say what is a folder: only names that look
    // like temp files are stat'ed (a walk would stat every file of the store).
    // Folders are read WALK_IO at a time, in no order (the caller sorts).
    const pending = [p];
    const read = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(this.full(dir), { withFileTypes: true });
      } catch (err) {
        if (code(err) === 'ENOENT' || code(err) === 'ENOTDIR') return;
        throw err;
      }
      const base = dir === '/' ? '' : dir;
      for (const e of entries) {
        const child = `${base}/${e.name}`;
        if (e.isDirectory()) {
          if (e.name !== '_uploads') pending.push(child);
          continue;
        }
        if (!STRAY_RE.test(e.name)) continue;
        const st = await statFast(this.full(child)).catch(() => null);
        if (!st || st.mtime >= olderThan) continue;
        out.push(child);
        if (!dryRun) await fs.rm(this.full(child), { force: true });
      }
    };
    // A stack of folders still to read, WALK_IO reads at once: depth first,
    // so the stack holds a few listings' worth of paths, not the store's.
    await new Promise<void>((resolve, reject) => {
      let active = 0;
      let failed = false;
      const pump = () => {
        while (!failed && active < WALK_IO && pending.length) {
          active++;
          read(pending.pop()!).then(() => {
            active--;
            pump();
            if (active === 0 && !pending.length) resolve();
          }, (e) => { failed = true; reject(e); });
        }
      };
      pump();
      if (active === 0) resolve();
    });
    return out;
  }

}
