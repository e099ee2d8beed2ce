// The one contract suite every StorageDriver passes.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { mapLimit } from '../../lib/concurrency.js';
import {
  type DriverContext, type StorageDriver, InvalidOffsetError, InvalidPathError, PathNotFoundError,
} from '../driver.js';

export interface SuiteOptions {
  /** Bytes for the streamed large-file test. */
  largeFileSize: number;
  /** Optional FileWriter methods the driver claims; their tests run only for it, and fail if it lost them. */
  capabilities?: ('commitTo' | 'keepState' | 'deleteFiles')[];
}

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function rejects(p: Promise<unknown>, cls: new (...a: never[]) => Error): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(cls);
    return;
  }
  expect.fail(`expected ${cls.name}`);
}

/** Deterministic pseudo-random chunk i of a large file, so nothing big is held. */
function chunk(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = (i + 1) * 2654435761;
  for (let o = 0; o + 4 <= size; o += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    b.writeInt32LE(x | 0, o);
  }
  return b;
}

export function driverSuite(title: string, make: () => Promise<{ driver: StorageDriver; cleanup: () => Promise<void> }>, opts: SuiteOptions): void {
  describe(`storage driver contract: ${title}`, function () {
    this.timeout(120000);
    let d: StorageDriver;
    let cleanup: () => Promise<void>;
    const ctx: DriverContext = {};
    let n = 0;
    const root = () => `/suite-${n}`;

    beforeEach(async () => {
      n++;
      ({ driver: d, cleanup } = await make());
    });
    afterEach(async () => { await cleanup(); });

    it('round-trips content and overwrites it', async () => {
      const p = `${root()}/a/b/file`;
      await d.putContent(ctx, p, Buffer.from('hello'));
      expect((await d.getContent(ctx, p)).toString()).to.equal('hello');
      await d.putContent(ctx, p, Buffer.from('bye'));
      expect((await d.getContent(ctx, p)).toString()).to.equal('bye');
      await d.putContent(ctx, `${root()}/empty`, Buffer.alloc(0));
      expect((await d.getContent(ctx, `${root()}/empty`)).length).to.equal(0);
    });

    it('reports missing paths as PathNotFound', async () => {
      await rejects(d.getContent(ctx, `${root()}/missing`), PathNotFoundError);
      await rejects(d.stat(ctx, `${root()}/missing`), PathNotFoundError);
      await rejects(d.reader(ctx, `${root()}/missing`, 0), PathNotFoundError);
      await rejects(d.list(ctx, `${root()}/missing`), PathNotFoundError);
      await rejects(d.move(ctx, `${root()}/missing`, `${root()}/x`), PathNotFoundError);
      await rejects(d.delete(ctx, `${root()}/missing`), PathNotFoundError);
      await rejects(d.writer(ctx, `${root()}/missing`, true), PathNotFoundError);
    });

    it('refuses invalid paths', async () => {
      for (const p of ['', 'relative', '/a//b', '/a/../b', '/a/./b', '/a b', '/a/', '/ünï']) {
        await rejects(d.getContent(ctx, p), InvalidPathError);
        await rejects(d.putContent(ctx, p, Buffer.from('x')), InvalidPathError);
      }
    });

    it('reads from offsets', async () => {
      const p = `${root()}/offsets`;
      const data = randomBytes(10000);
      await d.putContent(ctx, p, data);
      for (const off of [0, 1, 4096, 9999, 10000]) {
        expect((await readAll(await d.reader(ctx, p, off))).equals(data.subarray(off))).to.equal(true);
      }
      await rejects(d.reader(ctx, p, 10001), InvalidOffsetError);
      await rejects(d.reader(ctx, p, -1), InvalidOffsetError);
    });

    it('writes, reports size and commits', async () => {
      const p = `${root()}/w/file`;
      const w = await d.writer(ctx, p, false);
      await w.write(Buffer.from('abc'));
      await w.write(Buffer.from('defg'));
      expect(w.size()).to.equal(7);
      await w.commit();
      expect((await d.getContent(ctx, p)).toString()).to.equal('abcdefg');
      expect((await d.stat(ctx, p)).size).to.equal(7);
    });

    it('resumes a closed writer by appending', async () => {
      const p = `${root()}/resume`;
      const w1 = await d.writer(ctx, p, false);
      await w1.write(Buffer.from('first-'));
      await w1.close();
      const w2 = await d.writer(ctx, p, true);
      expect(w2.size()).to.equal(6);
      await w2.write(Buffer.from('second'));
      expect(w2.size()).to.equal(12);
      await w2.commit();
      expect((await d.getContent(ctx, p)).toString()).to.equal('first-second');
      // a new non-append writer truncates
      const w3 = await d.writer(ctx, p, false);
      expect(w3.size()).to.equal(0);
      await w3.write(Buffer.from('x'));
      await w3.commit();
      expect((await d.getContent(ctx, p)).toString()).to.equal('x');
    });

    if (opts.capabilities?.includes('commitTo')) it('commitTo stores the bytes at another path, or declines and stays open', async () => {
      const r = root();
      for (const size of [10, 3 << 20, 12 << 20]) {
        const data = randomBytes(size);
        let w = await d.writer(ctx, `${r}/ct/${size}/src`, false);
        expect(w.commitTo, 'commitTo').to.be.a('function');
        await w.write(data.subarray(0, size >> 1));
        await w.close();
        w = await d.writer(ctx, `${r}/ct/${size}/src`, true);
        await w.write(data.subarray(size >> 1));
        if (await w.commitTo!(`${r}/ct/${size}/dest`)) {
          expect((await d.getContent(ctx, `${r}/ct/${size}/dest`)).equals(data), `${size}`).to.equal(true);
          await rejects(d.stat(ctx, `${r}/ct/${size}/src`), PathNotFoundError);
          await rejects(d.writer(ctx, `${r}/ct/${size}/src`, true), PathNotFoundError);
        } else {
          await w.commit();
          expect((await d.getContent(ctx, `${r}/ct/${size}/src`)).equals(data), `${size}`).to.equal(true);
        }
      }
    });

    if (opts.capabilities?.includes('keepState')) it('keepState rides with the bytes through close and resume', async () => {
      const p = `${root()}/kept`;
      let w = await d.writer(ctx, p, false);
      expect(w.keepState, 'keepState').to.be.a('function');
      await w.write(Buffer.from('twelve bytes'));
      const state = randomBytes(108);
      expect(w.keepState!(state), 'kept with buffered bytes').to.equal(true);
      await w.close();
      w = await d.writer(ctx, p, true);
      expect(w.resumedState?.()).to.deep.equal({ size: 12, state });
      await w.close(); // untouched: the state stays
      w = await d.writer(ctx, p, true);
      expect(w.resumedState?.()?.state.equals(state)).to.equal(true);
      await w.write(Buffer.from('+more'));
      await w.close(); // grew without a new state: none describes 17 bytes
      w = await d.writer(ctx, p, true);
      const r = w.resumedState?.();
      expect(r === null || r === undefined || r.size !== 17).to.equal(true);
      await w.commit();
      expect((await d.getContent(ctx, p)).toString()).to.equal('twelve bytes+more');
    });

    it('cancel removes what the writer wrote', async () => {
      const p = `${root()}/cancel`;
      const w = await d.writer(ctx, p, false);
      await w.write(Buffer.from('doomed'));
      await w.cancel();
      await rejects(d.stat(ctx, p), PathNotFoundError);
    });

    it('stats files and directories', async () => {
      await d.putContent(ctx, `${root()}/dir/file`, Buffer.from('12345'));
      const f = await d.stat(ctx, `${root()}/dir/file`);
      expect(f.isDir).to.equal(false);
      expect(f.size).to.equal(5);
      expect(f.modTime.getTime()).to.be.greaterThan(0);
      const dir = await d.stat(ctx, `${root()}/dir`);
      expect(dir.isDir).to.equal(true);
    });

    it('lists direct children with full paths', async () => {
      const r = root();
      await d.putContent(ctx, `${r}/l/a`, Buffer.from('1'));
      await d.putContent(ctx, `${r}/l/b/c`, Buffer.from('2'));
      await d.putContent(ctx, `${r}/l/b/d/e`, Buffer.from('3'));
      expect((await d.list(ctx, `${r}/l`)).sort()).to.deep.equal([`${r}/l/a`, `${r}/l/b`]);
      expect((await d.list(ctx, `${r}/l/b`)).sort()).to.deep.equal([`${r}/l/b/c`, `${r}/l/b/d`]);
      expect(await d.list(ctx, '/')).to.include(r);
    });

    it('moves onto an existing path', async () => {
      const r = root();
      await d.putContent(ctx, `${r}/src`, Buffer.from('new'));
      await d.putContent(ctx, `${r}/dst/x`, Buffer.from('old'));
      await d.move(ctx, `${r}/src`, `${r}/dst/x`);
      expect((await d.getContent(ctx, `${r}/dst/x`)).toString()).to.equal('new');
      await rejects(d.stat(ctx, `${r}/src`), PathNotFoundError);
      await d.putContent(ctx, `${r}/src2`, Buffer.from('deep'));
      await d.move(ctx, `${r}/src2`, `${r}/new/parent/dirs/y`);
      expect((await d.getContent(ctx, `${r}/new/parent/dirs/y`)).toString()).to.equal('deep');
    });

    it('deletes recursively without touching siblings that share a prefix', async () => {
      const r = root();
      await d.putContent(ctx, `${r}/del/a/1`, Buffer.from('1'));
      await d.putContent(ctx, `${r}/del/a/b/2`, Buffer.from('2'));
      await d.putContent(ctx, `${r}/del/ab`, Buffer.from('3'));
      await d.delete(ctx, `${r}/del/a`);
      await rejects(d.stat(ctx, `${r}/del/a`), PathNotFoundError);
      await rejects(d.getContent(ctx, `${r}/del/a/b/2`), PathNotFoundError);
      expect((await d.getContent(ctx, `${r}/del/ab`)).toString()).to.equal('3');
      await d.delete(ctx, `${r}/del/ab`);
      await rejects(d.getContent(ctx, `${r}/del/ab`), PathNotFoundError);
    });

    if (opts.capabilities?.includes('deleteFiles')) it('deleteFiles removes the files named, past one batch, ignores missing ones and keeps the rest', async () => {
      const r = root();
      expect(d.deleteFiles, 'the driver has deleteFiles').to.be.a('function');
      // More than Azure's 256 per batch, so the batching runs more than once.
      const doomed = Array.from({ length: 300 }, (_, i) => `${r}/many/${String(i).padStart(3, '0')}/data`);
      for (let i = 0; i < doomed.length; i += 50) await Promise.all(doomed.slice(i, i + 50).map((p) => d.putContent(ctx, p, Buffer.from('x'))));
      await d.putContent(ctx, `${r}/many/keep/data`, Buffer.from('kept'));
      await d.putContent(ctx, `${r}/many/000/datax`, Buffer.from('sibling'));
      await d.deleteFiles!(ctx, [...doomed, `${r}/many/missing/data`]);
      const left: string[] = [];
      await d.walk(ctx, `${r}/many`, (fi) => { if (!fi.isDir) left.push(fi.path.slice(`${r}/many/`.length)); });
      expect(left).to.deep.equal(['000/datax', 'keep/data']);
      await d.deleteFiles!(ctx, []);
    });

    it('walks in lexical order and honours skipdir', async () => {
      const r = root();
      for (const p of ['b/1', 'a/2', 'a/1', 'c/x/y', 'c/z']) await d.putContent(ctx, `${r}/walk/${p}`, Buffer.from(p));
      const seen: string[] = [];
      await d.walk(ctx, `${r}/walk`, (fi) => { seen.push(fi.path.slice(`${r}/walk/`.length) + (fi.isDir ? '/' : '')); });
      expect(seen).to.deep.equal(['a/', 'a/1', 'a/2', 'b/', 'b/1', 'c/', 'c/x/', 'c/x/y', 'c/z']);
      const files: string[] = [];
      await d.walk(ctx, `${r}/walk`, (fi) => {
        if (fi.isDir && fi.path.endsWith('/c')) return 'skipdir';
        if (!fi.isDir) files.push(fi.path.slice(`${r}/walk/`.length));
      });
      expect(files).to.deep.equal(['a/1', 'a/2', 'b/1']);
    });

    it('lists a folder with more children than one listing page (1,100 folders that hold only folders)', async () => {
      const r = root();
      const names = Array.from({ length: 1100 }, (_, i) => `t${String(i).padStart(4, '0')}`);
      await mapLimit(names, 16, (n) => d.putContent(ctx, `${r}/paged/${n}/current/link`, Buffer.from(n)));
      const listed = (await d.list(ctx, `${r}/paged`)).map((p) => p.slice(`${r}/paged/`.length)).sort();
      expect(listed).to.deep.equal(names);
    });

    it('walks a wide and deep tree (more folders than any read-ahead) in order, every file once, skipdir anywhere', async () => {
      const r = root();
      const want: string[] = [];
      for (let i = 0; i < 12; i++) {
        for (let j = 0; j < 10; j++) for (let k = 0; k < 2; k++) want.push(`d${String(i).padStart(2, '0')}/s${j}/f${k}`);
      }
      want.push('deep/a/b/c/d/e/f/g/file', 'deep/a/b/c/x', 'deep/a/y');
      await mapLimit(want, 16, (p) => d.putContent(ctx, `${r}/tree/${p}`, Buffer.from(p)));
      want.sort();
      const files: string[] = [];
      await d.walk(ctx, `${r}/tree`, (fi) => { if (!fi.isDir) files.push(fi.path.slice(`${r}/tree/`.length)); });
      expect(files).to.deep.equal(want);
      // skipdir at every depth: d03 whole, s5 of every d, and deep/a/b.
      const kept: string[] = [];
      await d.walk(ctx, `${r}/tree`, (fi) => {
        const rel = fi.path.slice(`${r}/tree/`.length);
        if (fi.isDir) return rel === 'd03' || rel.endsWith('/s5') || rel === 'deep/a/b' ? 'skipdir' : undefined;
        kept.push(rel);
        return undefined;
      });
      expect(kept).to.deep.equal(want.filter((p) => !p.startsWith('d03/') && !/^d\d\d\/s5\//.test(p) && !p.startsWith('deep/a/b/')));
    });

    it('runs concurrent writers to different files', async () => {
      const r = root();
      const datas = Array.from({ length: 8 }, () => Array.from({ length: 10 }, () => randomBytes(1000)));
      await Promise.all(datas.map(async (parts, i) => {
        const w = await d.writer(ctx, `${r}/conc/${i}`, false);
        for (const p of parts) { await w.write(p); await new Promise((res) => setImmediate(res)); }
        await w.commit();
      }));
      for (let i = 0; i < datas.length; i++) {
        expect((await d.getContent(ctx, `${r}/conc/${i}`)).equals(Buffer.concat(datas[i]))).to.equal(true);
      }
    });

    it(`streams a large file (${opts.largeFileSize >> 20} MiB) in and out`, async () => {
      const p = `${root()}/large`;
      const size = 1 << 20;
      const count = Math.ceil(opts.largeFileSize / size);
      const want = createHash('sha256');
      const w = await d.writer(ctx, p, false);
      for (let i = 0; i < count; i++) {
        const c = chunk(i, size);
        want.update(c);
        await w.write(c);
        if (i === count >> 1) { await w.close(); Object.assign(w, await d.writer(ctx, p, true)); }
      }
      await w.commit();
      expect((await d.stat(ctx, p)).size).to.equal(count * size);
      const got = createHash('sha256');
      let max = 0;
      for await (const c of await d.reader(ctx, p, 0)) { got.update(c as Buffer); max = Math.max(max, (c as Buffer).length); }
      expect(got.digest('hex')).to.equal(want.digest('hex'));
      expect(max).to.be.at.most(16 << 20); // streamed in pieces, never one buffer
    });
  });
}

/** The optional sendTo fast path, for drivers that have it. */
export function sendToSuite(title: string, make: () => Promise<{ driver: StorageDriver; cleanup: () => Promise<void> }>): void {
  describe(`storage driver sendTo: ${title}`, () => {
    it('writes the requested range to a stream and reports missing files', async () => {
      const { driver: d, cleanup } = await make();
      try {
        expect(d.sendTo, 'driver has sendTo').to.be.a('function');
        const data = randomBytes((3 << 20) + 123);
        await d.putContent({}, '/send/file', data);
        const { Writable } = await import('node:stream');
        // Like a socket: once write() calls back, the chunk is no longer needed.
        const sink = (parts: Buffer[]) => new Writable({ write(c: Buffer, _e, cb) { parts.push(Buffer.from(c)); setImmediate(cb); } });
        for (const [off, len] of [[0, data.length], [5, 100], [(1 << 20) - 1, (2 << 20) + 7], [data.length, 0]]) {
          const parts: Buffer[] = [];
          await d.sendTo!({}, '/send/file', off, len, sink(parts));
          expect(Buffer.concat(parts).equals(data.subarray(off, off + len)), `${off}+${len}`).to.equal(true);
        }
        await rejects(d.sendTo!({}, '/send/missing', 0, 1, sink([])), PathNotFoundError);
      } finally {
        await cleanup();
      }
    });
  });
}
