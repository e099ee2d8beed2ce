// Base wraps a driver: validates every path before the driver sees it and
// turns stray errors into StorageDriverError, as distribution's base package.
import type { Readable } from 'node:stream';
import {
  type DriverContext, type FileInfo, type FileWriter, type StorageDriver, type WalkResult,
  InvalidPathError, StorageDriverError,
} from './driver.js';
import { Semaphore } from './regulator.js';

const PATH_RE = /^(\/[A-Za-z0-9._-]+)+$/;

export function validPath(p: string, allowRoot = false): boolean {
  if (allowRoot && p === '/') return true;
  return PATH_RE.test(p) && !p.split('/').some((s) => s === '.' || s === '..');
}

export interface BaseOptions {
  /** At most this many driver calls at once (distribution's regulator:
   *  filesystem.maxthreads, gcs.maxconcurrency). A call that returns a stream
   *  counts until the stream is returned, as there. */
  maxConcurrency?: number;
}

export class Base implements StorageDriver {
  readonly sendTo?: StorageDriver['sendTo'];
  readonly init?: StorageDriver['init'];
  readonly readerWithSize?: StorageDriver['readerWithSize'];
  readonly removeStrays?: StorageDriver['removeStrays'];
  readonly deleteFiles?: StorageDriver['deleteFiles'];
  readonly flatWalk?: boolean;
  readonly walkFrom?: StorageDriver['walkFrom'];
  private readonly regulator?: Semaphore;
  constructor(private readonly d: StorageDriver, opts: BaseOptions = {}) {
    this.flatWalk = d.flatWalk;
    if (opts.maxConcurrency) this.regulator = new Semaphore(opts.maxConcurrency);
    if (d.sendTo) {
      const send = d.sendTo.bind(d);
      this.sendTo = async (ctx, p, offset, length, dest) => {
        this.check(p);
        return this.wrap(() => send(ctx, p, offset, length, dest));
      };
    }
    if (d.init) {
      const init = d.init.bind(d);
      this.init = (ctx) => this.wrap(() => init(ctx));
    }
    if (d.removeStrays) {
      const remove = d.removeStrays.bind(d);
      this.removeStrays = async (ctx, p, olderThan, dryRun) => {
        this.check(p, true);
        return this.wrap(() => remove(ctx, p, olderThan, dryRun));
      };
    }
    if (d.deleteFiles) {
      const del = d.deleteFiles.bind(d);
      this.deleteFiles = async (ctx, paths) => {
        for (const p of paths) this.check(p);
        return this.wrap(() => del(ctx, paths));
      };
    }
    if (d.walkFrom) {
      const walk = d.walkFrom.bind(d);
      this.walkFrom = async (ctx, p, from, fn) => {
        this.check(p, true);
        return this.wrap(() => walk(ctx, p, from, fn));
      };
    }
    if (d.readerWithSize) {
      const open = d.readerWithSize.bind(d);
      this.readerWithSize = async (ctx, p, offset) => {
        this.check(p);
        return this.wrap(() => open(ctx, p, offset));
      };
    }
  }

  /** The driver this one wraps (for tests and instrumentation). */
  get inner(): StorageDriver { return this.d; }

  private check(p: string, allowRoot = false): void {
    if (!validPath(p, allowRoot)) throw new InvalidPathError(p, this.d.name());
  }

  private async wrap<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await (this.regulator ? this.regulator.run(fn) : fn());
    } catch (err) {
      if (err instanceof StorageDriverError) throw err;
      if ((err as Error)?.name === 'AbortError') throw err;
      throw new StorageDriverError(`${this.d.name()}: ${(err as Error)?.message ?? String(err)}`, this.d.name(), { cause: err });
    }
  }

  name(): string { return this.d.name(); }
  async getContent(ctx: DriverContext, p: string): Promise<Buffer> {
    this.check(p); return this.wrap(() => this.d.getContent(ctx, p));
  }
  async putContent(ctx: DriverContext, p: string, c: Buffer): Promise<void> {
    this.check(p); return this.wrap(() => this.d.putContent(ctx, p, c));
  }
  async reader(ctx: DriverContext, p: string, offset: number): Promise<Readable> {
    this.check(p); return this.wrap(() => this.d.reader(ctx, p, offset));
  }
  async writer(ctx: DriverContext, p: string, append: boolean): Promise<FileWriter> {
    this.check(p);
    const fw = await this.wrap(() => this.d.writer(ctx, p, append));
    if (fw.commitTo) {
      const commitTo = fw.commitTo.bind(fw);
      fw.commitTo = (dest: string) => { this.check(dest); return this.wrap(() => commitTo(dest)); };
    }
    return fw;
  }
  async stat(ctx: DriverContext, p: string): Promise<FileInfo> {
    this.check(p, true); return this.wrap(() => this.d.stat(ctx, p));
  }
  async list(ctx: DriverContext, p: string): Promise<string[]> {
    this.check(p, true); return this.wrap(() => this.d.list(ctx, p));
  }
  async move(ctx: DriverContext, s: string, t: string): Promise<void> {
    this.check(s); this.check(t); return this.wrap(() => this.d.move(ctx, s, t));
  }
  async delete(ctx: DriverContext, p: string): Promise<void> {
    this.check(p); return this.wrap(() => this.d.delete(ctx, p));
  }
  async walk(ctx: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
    this.check(p, true); return this.wrap(() => this.d.walk(ctx, p, fn));
  }
  async redirectURL(ctx: DriverContext, method: string, p: string): Promise<string | null> {
    this.check(p); return this.wrap(() => this.d.redirectURL(ctx, method, p));
  }
}

/** Shared walk in lexical order over list/stat, for drivers without a faster one. */
export async function walkByList(
  d: Pick<StorageDriver, 'list' | 'stat'>, ctx: DriverContext, root: string,
  fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult,
): Promise<void> {
  const children = (await d.list(ctx, root)).sort();
  for (const child of children) {
    const fi = await d.stat(ctx, child);
    const r = await fn(fi);
    if (fi.isDir && r !== 'skipdir') await walkByList(d, ctx, child, fn);
  }
}

/** Object stores: driver paths <-> keys under an optional root prefix; directories are key prefixes. */
export class KeyMapper {
  private readonly root: string;
  constructor(rootdirectory: string | undefined) {
    this.root = (rootdirectory ?? '').replace(/^\/+|\/+$/g, '');
  }
  key(p: string): string {
    const rel = p === '/' ? '' : p.slice(1);
    return this.root ? (rel ? `${this.root}/${rel}` : this.root) : rel;
  }
  pathOf(key: string): string {
    const rel = this.root ? key.slice(this.root.length + 1) : key;
    return `/${rel.replace(/\/$/, '')}`;
  }
  dirPrefix(p: string): string {
    const k = this.key(p);
    return k ? `${k}/` : '';
  }
}

/** Sorts after every character a driver path may hold: a listing that starts after `dir/~` has skipped the subtree. */
export const AFTER_ALL = '~';

export interface FlatKey { key: string; size: number; modTime: Date }
type FromResult = WalkResult | 'stop';

/** One page of an object store's flat listing under a prefix, in key order:
 *  `token` continues the previous page, `after` starts past a key. */
export type FlatPage = (q: { token?: string; after?: string }) => Promise<{ keys: FlatKey[]; next?: string }>;

/** walk() for object stores: one flat listing per page instead of a list per
 *  directory; directories are derived from the keys, and 'skipdir' restarts
 *  the listing after the subtree rather than paging through it. Order is key
 *  order (a directory before what it holds, `b-c/` before `b/`). writerBase
 *  names the file a writer-state object belongs to (s3 sidecar, gcs part),
 *  which is visited once, through statFile, unless its committed self came
 *  just before. Returns whether the prefix held anything. */
export async function flatWalk(
  keys: KeyMapper, prefix: string, page: FlatPage, writerBase: (key: string) => string | null,
  statFile: (path: string) => Promise<FileInfo>, fn: (fi: FileInfo) => Promise<FromResult> | FromResult,
  from?: string,
  /** false where the store cannot start a listing after a key (Azure):
   *  a skipped subtree is then paged through, and `from` is not allowed. */
  canStartAfter = true,
): Promise<boolean> {
  if (from !== undefined && !canStartAfter) throw new Error('flatWalk: this store cannot start a listing after a key');
  const open: string[] = []; // the directories (key prefixes ending in '/') we are inside
  let skip: string | null = null;
  let after: string | undefined = from === undefined ? undefined : prefix + from;
  let token: string | undefined;
  let any = false;
  let lastFile = '';
  for (;;) {
    const res = await page(token ? { token } : { after });
    for (const o of res.keys) {
      const k = o.key;
      any = true;
      if (skip && k.startsWith(skip)) continue;
      skip = null;
      while (open.length && !k.startsWith(open[open.length - 1])) open.pop();
      let at = open.length ? open[open.length - 1].length : prefix.length;
      let slash: number;
      while ((slash = k.indexOf('/', at)) !== -1) {
        const dir = k.slice(0, slash + 1);
        open.push(dir);
        at = slash + 1;
        const r = await fn({ path: keys.pathOf(dir), size: 0, modTime: new Date(0), isDir: true });
        if (r === 'stop') return true;
        if (r === 'skipdir') {
          skip = dir;
          open.pop();
          break;
        }
      }
      if (skip) continue;
      const base = writerBase(k);
      if (base !== null) {
        if (base !== lastFile) { lastFile = base; if ((await fn(await statFile(keys.pathOf(base)))) === 'stop') return true; }
        continue;
      }
      lastFile = k;
      if ((await fn({ path: keys.pathOf(k), size: o.size, modTime: o.modTime, isDir: false })) === 'stop') return true;
    }
    if (!res.next) break;
    const last = res.keys[res.keys.length - 1]?.key;
    if (skip && canStartAfter && last?.startsWith(skip)) {
      after = skip + AFTER_ALL;
      token = undefined;
    } else {
      token = res.next;
    }
  }
  return any;
}
