// Base wraps a driver: validates every path before the driver sees it and
// turns stray errors into StorageDriverError, as distribution's base package.
import type { Readable } from 'node:stream';
import {
  type DriverContext, type FileInfo, type FileWriter, type StorageDriver, type WalkResult,
  InvalidPathError, StorageDriverError,
} from './driver.js';

const PATH_RE = /^(\/[A-Za-z0-9._-]+)+$/;

export function validPath(p: string, allowRoot = false): boolean {
  if (allowRoot && p === '/') return true;
  return PATH_RE.test(p) && !p.split('/').some((s) => s === '.' || s === '..');
}

export class Base implements StorageDriver {
  readonly sendTo?: StorageDriver['sendTo'];
  constructor(private readonly d: StorageDriver) {
    if (d.sendTo) {
      const send = d.sendTo.bind(d);
      this.sendTo = async (ctx, p, offset, length, dest) => {
        this.check(p);
        return this.wrap(() => send(ctx, p, offset, length, dest));
      };
    }
  }

  private check(p: string, allowRoot = false): void {
    if (!validPath(p, allowRoot)) throw new InvalidPathError(p, this.d.name());
  }

  private async wrap<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
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
