// An endpoint's queue on local disk, for registries without Redis: an
// append-only log of segment files, written in batches (one write and one
// fdatasync for every event queued while the previous batch was syncing), a
// cursor file saying how far delivery got, and a dead-letter file.
//
//   <directory>/<endpoint>/lock                   pid of the process using it
//   <directory>/<endpoint>/events-<seq>.log       "<queued ms> <event json>\n" per event
//   <directory>/<endpoint>/cursor                 "<seq> <offset>": delivered up to here
//   <directory>/<endpoint>/dead.log               one JSON object per dead-lettered event
//   <directory>/<endpoint>/replay-*.log           dead letters handed back by `registry notifications replay`
//
// At least once: the cursor moves after a delivery, so a crash between the
// two delivers that event again, with the same id.
import { open, mkdir, readdir, readFile, rename, rm, stat, truncate, writeFile, appendFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { QueueBounds } from '../config/config.js';
import type { DeadEvent, DeadLetterListener, EndpointQueue, QueuedEvent } from './queue.js';

const SEGMENT_BYTES = 8 << 20;
/** Longest event line read back (a manifest of 4 MiB lists fewer bytes of references than that). */
const MAX_LINE = 64 << 20;
const READ_CHUNK = 64 << 10;
/** Writes waiting for the disk beyond which pull events are dropped (counted as lost). */
const MAX_BATCH = 10_000;

interface Pos { seq: number; off: number }

const segName = (seq: number) => `events-${String(seq).padStart(16, '0')}.log`;

/** "<at> <body>" with its end position, or null at the end of what was written. */
interface Read { entry: QueuedEvent; end: Pos; len: number }

/** Directories this process has open: a second queue on one directory would interleave its writes. */
const openHere = new Set<string>();

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

export class DiskQueue implements EndpointQueue {
  readonly kind = 'disk' as const;
  private segs: number[] = [];
  private sizes = new Map<number, number>();
  private wfd?: FileHandle;
  private wseq = 0;
  /** Delivered (or dead-lettered) up to here, saved in the cursor file. */
  private cursor: Pos = { seq: 0, off: 0 };
  /** Handed to the deliverer or dead-lettered up to here (past cursor by the event in flight). */
  private read: Pos = { seq: 0, off: 0 };
  private inflight = false;
  private count = 0;
  private bytes = 0;
  private batch: { buf: Buffer; lines: number; durable: boolean; done: (e?: Error) => void }[] = [];
  private flushing: Promise<void> | null = null;
  private wakers: (() => void)[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private cursorSave: Promise<void> = Promise.resolve();
  private rbuf = { seq: -1, off: 0, buf: Buffer.alloc(0) };
  private rfd?: { seq: number; fh: FileHandle };
  private deadCount = 0;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(readonly dir: string, readonly bounds: QueueBounds, private fsync: boolean, private log: Logger, private onDead: DeadLetterListener = () => {}) {}

  /** Takes the directory (refusing one another live process holds), repairs a torn last line, and counts what waits. */
  async open(): Promise<void> {
    if (openHere.has(this.dir)) throw new Error(`the notification queue in ${this.dir} is already open in this process: give each registry its own notifications.queue.directory`);
    await mkdir(this.dir, { recursive: true });
    const lock = join(this.dir, 'lock');
    const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
    if (holder && holder !== process.pid && alive(holder)) {
      throw new Error(`the notification queue in ${this.dir} is in use by process ${holder}: give each registry process its own notifications.queue.directory (or configure redis)`);
    }
    await writeFile(lock, `${process.pid}\n`);
    openHere.add(this.dir);
    const names = (await readdir(this.dir)).filter((n) => /^events-\d{16}\.log$/.test(n)).sort();
    this.segs = names.map((n) => Number(n.slice(7, 23)));
    for (const s of this.segs) this.sizes.set(s, (await stat(join(this.dir, segName(s)))).size);
    const saved = (await readFile(join(this.dir, 'cursor'), 'utf8').catch(() => '')).trim().split(' ').map(Number);
    if (this.segs.length === 0) {
      this.segs = [1];
      this.sizes.set(1, 0);
      await writeFile(join(this.dir, segName(1)), '');
      await this.syncDir();
    }
    this.cursor = saved.length === 2 && this.segs.includes(saved[0]) ? { seq: saved[0], off: Math.min(saved[1], this.sizes.get(saved[0])!) } : { seq: this.segs[0], off: 0 };
    await this.repairTail();
    this.read = { ...this.cursor };
    // Count what waits: bounded by maxbytes, read once at start.
    for (let p: Pos | null = { ...this.cursor }, r: Read | null; p && (r = await this.readAt(p)); p = r.end) {
      this.count++;
      this.bytes += r.len;
    }
    this.wseq = this.segs[this.segs.length - 1];
    this.wfd = await open(join(this.dir, segName(this.wseq)), 'a');
    this.deadCount = await countLines(join(this.dir, 'dead.log'));
    await this.ingestReplays();
    let busy = false;
    this.timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void this.ingestReplays().then(() => this.trim())
        .catch((e) => this.log.warn({ err: (e as Error).message, dir: this.dir }, 'notification queue upkeep failed'))
        .finally(() => { busy = false; });
    }, 1000);
    this.timer.unref();
  }

  /** A crash mid-write can leave a partial last line: it was never acknowledged, so it goes. */
  private async repairTail(): Promise<void> {
    const last = this.segs[this.segs.length - 1];
    const size = this.sizes.get(last)!;
    if (size === 0) return;
    const fh = await open(join(this.dir, segName(last)), 'r');
    try {
      const n = Math.min(size, MAX_LINE);
      const buf = Buffer.alloc(n);
      await fh.read(buf, 0, n, size - n);
      const nl = buf.lastIndexOf(10);
      const keep = nl < 0 ? size - n : size - n + nl + 1;
      if (keep === size) return;
      this.log.warn({ dir: this.dir, bytes: size - keep }, 'notification queue: dropped a partly written last event (never acknowledged to a client)');
      await truncate(join(this.dir, segName(last)), keep);
      this.sizes.set(last, keep);
      if (this.cursor.seq === last && this.cursor.off > keep) this.cursor.off = keep;
    } finally {
      await fh.close();
    }
  }

  private async syncDir(): Promise<void> {
    if (!this.fsync) return;
    const d = await open(this.dir, 'r').catch(() => null);
    if (!d) return;
    try { await d.sync(); } catch { /* not every filesystem syncs directories */ } finally { await d.close(); }
  }

  append(bodies: string[], durable: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new Error('notification queue closed'));
    if (bodies.length === 0) return Promise.resolve();
    // A disk that stalls must not let pull events pile up in memory; writes wait (their requests hold them).
    if (!durable && this.batch.length >= MAX_BATCH) return Promise.reject(new Error(`the disk queue has ${this.batch.length} writes waiting: pull event dropped`));
    const at = Date.now();
    let text = '';
    for (const b of bodies) text += `${at} ${b}\n`;
    return new Promise((resolve, reject) => {
      this.batch.push({ buf: Buffer.from(text), lines: bodies.length, durable, done: (e) => (e ? reject(e) : resolve()) });
      this.kick();
    });
  }

  private kick(): void {
    if (this.flushing || this.batch.length === 0) return;
    this.flushing = this.flush().finally(() => { this.flushing = null; this.kick(); });
  }

  private async flush(): Promise<void> {
    const b = this.batch;
    this.batch = [];
    try {
      const fd = this.wfd!;
      let bufs = b.map((x) => x.buf);
      let total = 0;
      for (const x of bufs) total += x.length;
      // writev may write less than asked; write the rest.
      for (let left = total; left > 0;) {
        const { bytesWritten } = await fd.writev(bufs);
        left -= bytesWritten;
        if (left > 0) bufs = [Buffer.concat(bufs).subarray(bytesWritten)];
      }
      if (this.fsync && b.some((x) => x.durable)) await fd.datasync();
      this.sizes.set(this.wseq, this.sizes.get(this.wseq)! + total);
      for (const x of b) this.count += x.lines;
      this.bytes += total;
      for (const x of b) x.done();
      for (const w of this.wakers.splice(0)) w();
      if (this.sizes.get(this.wseq)! >= SEGMENT_BYTES) await this.rotate();
      if (this.count > this.bounds.maxEvents || this.bytes > this.bounds.maxBytes) void this.trim().catch((e) => this.log.warn({ err: (e as Error).message }, 'notification queue trim failed'));
    } catch (e) {
      for (const x of b) x.done(e as Error);
    }
  }

  private async rotate(): Promise<void> {
    await this.wfd!.close();
    this.wseq++;
    this.segs.push(this.wseq);
    this.sizes.set(this.wseq, 0);
    this.wfd = await open(join(this.dir, segName(this.wseq)), 'a');
    await this.syncDir();
  }

  /** Runs fn alone: handing out events and trimming both move the read position. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }

  private async readAt(from: Pos): Promise<Read | null> {
    let p = from;
    for (;;) {
      if (p.off < (this.sizes.get(p.seq) ?? 0)) break;
      const i = this.segs.indexOf(p.seq);
      if (i < 0 || i === this.segs.length - 1) return null;
      p = { seq: this.segs[i + 1], off: 0 };
    }
    const size = this.sizes.get(p.seq)!;
    let want = READ_CHUNK;
    for (;;) {
      const b = this.rbuf;
      if (b.seq === p.seq && p.off >= b.off && p.off < b.off + b.buf.length) {
        const nl = b.buf.indexOf(10, p.off - b.off);
        if (nl >= 0) {
          const line = b.buf.subarray(p.off - b.off, nl).toString('utf8');
          const sp = line.indexOf(' ');
          const len = nl - (p.off - b.off) + 1;
          return { entry: { pos: `${p.seq}:${p.off}:${len}`, at: Number(line.slice(0, sp)), body: line.slice(sp + 1) }, end: { seq: p.seq, off: p.off + len }, len };
        }
        if (b.off + b.buf.length >= size) throw new Error(`notification queue ${this.dir}: ${segName(p.seq)} ends inside an event at ${p.off}`);
        want = Math.max(want, (b.off + b.buf.length - p.off) * 2);
        if (want > MAX_LINE) throw new Error(`notification queue ${this.dir}: an event in ${segName(p.seq)} at ${p.off} is longer than ${MAX_LINE} bytes`);
      }
      if (this.rfd?.seq !== p.seq) {
        await this.rfd?.fh.close();
        this.rfd = { seq: p.seq, fh: await open(join(this.dir, segName(p.seq)), 'r') };
      }
      const n = Math.min(want, size - p.off);
      const buf = Buffer.alloc(n);
      const { bytesRead } = await this.rfd.fh.read(buf, 0, n, p.off);
      this.rbuf = { seq: p.seq, off: p.off, buf: buf.subarray(0, bytesRead) };
    }
  }

  async next(waitMs: number): Promise<QueuedEvent | null> {
    for (let waited = false; ;) {
      const r = await this.exclusive(async () => {
        const got = await this.readAt(this.read);
        if (got) {
          this.read = got.end;
          this.inflight = true;
        }
        return got;
      });
      if (r) return r.entry;
      if (waited || this.closed) return null;
      waited = true;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, waitMs);
        this.wakers.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  owned(): boolean { return !this.closed; }

  async ack(e: QueuedEvent): Promise<void> {
    const len = Number(e.pos.split(':')[2]);
    await this.exclusive(async () => {
      this.inflight = false;
      this.count--;
      this.bytes -= len;
      this.cursor = { ...this.read };
    });
    await this.saveCursor();
  }

  async deadLetter(e: QueuedEvent, reason: string): Promise<void> {
    await this.writeDead([deadLine(e, reason)], reason);
    await this.ack(e);
  }

  private saveCursor(): Promise<void> {
    // In order, one at a time; each save writes the cursor of its moment.
    this.cursorSave = this.cursorSave.then(async () => {
      const c = this.cursor;
      const tmp = join(this.dir, 'cursor.tmp');
      await writeFile(tmp, `${c.seq} ${c.off}\n`);
      await rename(tmp, join(this.dir, 'cursor'));
      // Segments wholly delivered go.
      while (this.segs.length > 1 && this.segs[0] < c.seq) {
        const s = this.segs.shift()!;
        this.sizes.delete(s);
        if (this.rfd?.seq === s) { await this.rfd.fh.close(); this.rfd = undefined; }
        await rm(join(this.dir, segName(s)), { force: true });
      }
    }).catch((err) => { this.log.warn({ err: (err as Error).message, dir: this.dir }, 'notification queue: could not save the cursor (events after it may be delivered twice)'); });
    return this.cursorSave;
  }

  /** Past a bound, the oldest events not in flight go to the dead-letter file. */
  async trim(): Promise<void> {
    const { maxEvents, maxBytes, maxAgeMs } = this.bounds;
    const dead: string[] = [];
    const reasons = new Map<string, number>();
    await this.exclusive(async () => {
      for (;;) {
        const over = this.count > maxEvents ? 'maxevents' : this.bytes > maxBytes ? 'maxbytes' : null;
        if (!over && maxAgeMs <= 0) break;
        const r = await this.readAt(this.read);
        if (!r) break;
        const reason = over ?? (Date.now() - r.entry.at > maxAgeMs ? 'maxage' : null);
        if (!reason) break;
        dead.push(deadLine(r.entry, reason));
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        this.read = r.end;
        this.count--;
        this.bytes -= r.len;
        if (!this.inflight) this.cursor = { ...this.read };
      }
    });
    if (dead.length === 0) return;
    for (const [reason, n] of reasons) await this.writeDead(dead.splice(0, n), reason);
    await this.saveCursor();
  }

  private async writeDead(lines: string[], reason: string): Promise<void> {
    await appendFile(join(this.dir, 'dead.log'), lines.join(''));
    this.deadCount += lines.length;
    this.onDead(reason, lines.length);
    const max = this.bounds.maxDeadEvents;
    if (this.deadCount > max + Math.max(100, max / 4)) await this.capDead();
  }

  /** Keeps the newest maxdeadevents dead letters; the older ones are discarded, with a log line. */
  private async capDead(): Promise<void> {
    const path = join(this.dir, 'dead.log');
    const tmp = join(this.dir, 'dead.tmp');
    const drop = this.deadCount - this.bounds.maxDeadEvents;
    let i = 0;
    const out = await open(tmp, 'w');
    try {
      for await (const line of lines(path)) if (i++ >= drop) await out.write(`${line}\n`);
    } finally {
      await out.close();
    }
    await rename(tmp, path);
    this.deadCount -= Math.min(drop, i);
    this.onDead('discarded', Math.min(drop, i));
    this.log.warn({ dir: this.dir, discarded: Math.min(drop, i), kept: this.deadCount }, 'notification dead letters over maxdeadevents: the oldest were discarded');
  }

  async pending(): Promise<{ events: number; bytes: number }> {
    return { events: this.count, bytes: this.bytes };
  }

  async listDead(limit: number): Promise<{ total: number; events: DeadEvent[] }> {
    const events: DeadEvent[] = [];
    let total = 0;
    for await (const line of lines(join(this.dir, 'dead.log'))) {
      total++;
      if (events.length < limit) events.push(parseDead(line));
    }
    return { total, events };
  }

  /** Hands the dead letters back: renamed into a replay file, which the serving process queues again (within a second, or when it next starts). */
  async replayDead(): Promise<number> {
    const n = await countLines(join(this.dir, 'dead.log'));
    if (n === 0) return 0;
    await rename(join(this.dir, 'dead.log'), join(this.dir, `replay-${Date.now()}-${randomBytes(4).toString('hex')}.log`));
    this.deadCount = 0;
    return n;
  }

  /** Queues replay files' events again, as the bounds leave room (a replay
   *  never dead-letters what it replays; the rest waits for the next tick).
   *  Their age starts anew, so maxage does not send them straight back. How
   *  far a file got is kept beside it (<file>.done), so a restart goes on. */
  private async ingestReplays(): Promise<void> {
    if (this.closed) return;
    const files = (await readdir(this.dir)).filter((n) => n.startsWith('replay-') && n.endsWith('.log')).sort();
    for (const f of files) {
      const path = join(this.dir, f);
      const done = Number((await readFile(`${path}.done`, 'utf8').catch(() => '0')).trim()) || 0;
      let i = 0;
      let bodies: string[] = [];
      let bytes = 0;
      let full = false;
      for await (const line of lines(path)) {
        if (i++ < done) continue;
        const body = parseDead(line).body;
        const len = Buffer.byteLength(body) + 16;
        if (this.count + bodies.length >= this.bounds.maxEvents || this.bytes + bytes + len > this.bounds.maxBytes) { full = true; i--; break; }
        bodies.push(body);
        bytes += len;
        if (bodies.length >= 500) break;
      }
      if (bodies.length) {
        await this.append(bodies, true);
        await writeFile(`${path}.done`, `${i}\n`);
        this.log.info({ dir: this.dir, events: bodies.length }, 'notification dead letters queued again (registry notifications replay)');
      }
      if (full || bodies.length >= 500) return;
      await rm(path, { force: true });
      await rm(`${path}.done`, { force: true });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const w of this.wakers.splice(0)) w();
    while (this.flushing) await this.flushing;
    await this.cursorSave;
    await this.wfd?.close().catch(() => {});
    await this.rfd?.fh.close().catch(() => {});
    await rm(join(this.dir, 'lock'), { force: true });
    openHere.delete(this.dir);
  }
}

function deadLine(e: QueuedEvent, reason: string): string {
  return `{"at":${e.at},"deadAt":${Date.now()},"reason":${JSON.stringify(reason)},"event":${e.body}}\n`;
}

function parseDead(line: string): DeadEvent {
  const o = JSON.parse(line) as { at: number; deadAt: number; reason: string; event: unknown };
  return { at: o.at, deadAt: o.deadAt, reason: o.reason, body: JSON.stringify(o.event) };
}

/** A file's lines, read in chunks (a missing file has none). */
async function* lines(path: string): AsyncGenerator<string> {
  const fh = await open(path, 'r').catch((e) => { if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; throw e; });
  if (!fh) return;
  try {
    let rest = '';
    for await (const chunk of fh.createReadStream({ encoding: 'utf8', highWaterMark: READ_CHUNK, autoClose: false })) {
      const parts = (rest + (chunk as string)).split('\n');
      rest = parts.pop()!;
      for (const p of parts) if (p) yield p;
    }
    if (rest) yield rest;
  } finally {
    await fh.close();
  }
}

async function countLines(path: string): Promise<number> {
  let n = 0;
  for await (const _ of lines(path)) n++;
  return n;
}
