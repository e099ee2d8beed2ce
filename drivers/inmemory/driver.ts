// In-memory driver: for tests and throwaway registries. Content is held as
// chunk lists so appends never copy what is already stored.
import { Readable } from 'node:stream';
import {
  type DriverContext, type FileInfo, type FileWriter, type StorageDriver, type WalkResult,
  InvalidOffsetError, PathNotFoundError, StorageDriverError,
} from '../driver.js';
import { walkByList } from '../base.js';

const NAME = 'inmemory';

interface MemFile { chunks: Buffer[]; size: number; modTime: Date }

export class InMemoryDriver implements StorageDriver {
  private files = new Map<string, MemFile>();

  name(): string { return NAME; }

  private isDir(p: string): boolean {
    if (p === '/') return true;
    const prefix = p + '/';
    for (const k of this.files.keys()) if (k.startsWith(prefix)) return true;
    return false;
  }

  private hasFileAbove(p: string): string | null {
    // A file cannot be a parent directory of another path.
    const parts = p.split('/');
    for (let i = 2; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (this.files.has(parent)) return parent;
    }
    return null;
  }

  private set(p: string, f: MemFile): void {
    const above = this.hasFileAbove(p);
    if (above) throw new StorageDriverError(`${NAME}: ${above} is a file, not a directory`, NAME);
    if (this.isDir(p)) throw new StorageDriverError(`${NAME}: ${p} is a directory`, NAME);
    this.files.set(p, f);
  }

  async getContent(_ctx: DriverContext, p: string): Promise<Buffer> {
    const f = this.files.get(p);
    if (!f) throw new PathNotFoundError(p, NAME);
    return Buffer.concat(f.chunks, f.size);
  }

  async putContent(_ctx: DriverContext, p: string, content: Buffer): Promise<void> {
    this.set(p, { chunks: [Buffer.from(content)], size: content.length, modTime: new Date() });
  }

  async reader(_ctx: DriverContext, p: string, offset: number): Promise<Readable> {
    const f = this.files.get(p);
    if (!f) throw new PathNotFoundError(p, NAME);
    if (offset < 0 || offset > f.size) throw new InvalidOffsetError(p, offset, NAME);
    const parts: Buffer[] = [];
    let skip = offset;
    for (const c of f.chunks) {
      if (skip >= c.length) { skip -= c.length; continue; }
      parts.push(skip ? c.subarray(skip) : c);
      skip = 0;
    }
    return Readable.from(parts);
  }

  async writer(_ctx: DriverContext, p: string, append: boolean): Promise<FileWriter> {
    let f = this.files.get(p);
    if (append) {
      if (!f) throw new PathNotFoundError(p, NAME);
    } else {
      f = { chunks: [], size: 0, modTime: new Date() };
      this.set(p, f);
    }
    const file = f;
    let state: 'open' | 'closed' | 'committed' | 'cancelled' = 'open';
    const files = this.files;
    return {
      async write(chunk: Buffer) {
        if (state !== 'open') throw new StorageDriverError(`${NAME}: writer is ${state}`, NAME);
        file.chunks.push(Buffer.from(chunk));
        file.size += chunk.length;
        file.modTime = new Date();
      },
      size: () => file.size,
      async close() { if (state === 'open') state = 'closed'; },
      async cancel() {
        if (state === 'committed') throw new StorageDriverError(`${NAME}: writer already committed`, NAME);
        state = 'cancelled';
        if (files.get(p) === file) files.delete(p);
      },
      async commit() {
        if (state !== 'open') throw new StorageDriverError(`${NAME}: writer is ${state}`, NAME);
        state = 'committed';
      },
    };
  }

  async stat(_ctx: DriverContext, p: string): Promise<FileInfo> {
    const f = this.files.get(p);
    if (f) return { path: p, size: f.size, modTime: f.modTime, isDir: false };
    if (this.isDir(p)) return { path: p, size: 0, modTime: new Date(0), isDir: true };
    throw new PathNotFoundError(p, NAME);
  }

  async list(_ctx: DriverContext, p: string): Promise<string[]> {
    const prefix = p === '/' ? '/' : p + '/';
    const out = new Set<string>();
    for (const k of this.files.keys()) {
      if (!k.startsWith(prefix)) continue;
      const rest = k.slice(prefix.length);
      out.add(prefix + rest.split('/')[0]);
    }
    if (out.size === 0 && p !== '/') throw new PathNotFoundError(p, NAME);
    return [...out].sort();
  }

  async move(_ctx: DriverContext, src: string, dest: string): Promise<void> {
    const f = this.files.get(src);
    if (!f) throw new PathNotFoundError(src, NAME);
    this.set(dest, f);
    this.files.delete(src);
  }

  async delete(_ctx: DriverContext, p: string): Promise<void> {
    let found = this.files.delete(p);
    const prefix = p + '/';
    for (const k of [...this.files.keys()]) {
      if (k.startsWith(prefix)) { this.files.delete(k); found = true; }
    }
    if (!found) throw new PathNotFoundError(p, NAME);
  }

  walk(ctx: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
    return walkByList(this, ctx, p, fn);
  }

  async redirectURL(): Promise<string | null> { return null; }
}
