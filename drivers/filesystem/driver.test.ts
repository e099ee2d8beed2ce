import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Base } from '../base.js';
import { FilesystemDriver } from './driver.js';
import { driverSuite, sendToSuite } from '../testsuite/suite.js';

driverSuite('filesystem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'registry-fs-'));
  return { driver: new Base(new FilesystemDriver({ rootdirectory: dir })), cleanup: () => rm(dir, { recursive: true, force: true }) };
}, { largeFileSize: 256 << 20 });

sendToSuite('filesystem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'registry-fs-'));
  return { driver: new Base(new FilesystemDriver({ rootdirectory: dir })), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('filesystem driver: atomic putContent', () => {
  it('readers see the old content or the new, never a part', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-fs-'));
    const d = new Base(new FilesystemDriver({ rootdirectory: dir }));
    try {
      const versions = Array.from({ length: 4 }, (_, i) => Buffer.alloc(2 << 20, 65 + i));
      await d.putContent({}, '/atomic/link', versions[0]);
      let stop = false;
      const seen = new Set<string>();
      const reader = (async () => {
        while (!stop) {
          const got = await d.getContent({}, '/atomic/link');
          const ok = versions.some((v) => v.equals(got));
          if (!ok) throw new Error(`torn read: ${got.length} bytes`);
          seen.add(got.subarray(0, 1).toString());
        }
      })();
      for (let i = 0; i < 40; i++) await d.putContent({}, '/atomic/link', versions[i % versions.length]);
      stop = true;
      await reader;
      const { readdir } = await import('node:fs/promises');
      expect(await readdir(join(dir, 'atomic'))).to.deep.equal(['link']); // no temp files left
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('filesystem driver: the temp folder and the stray sweep', () => {
  let dir: string;
  let d: Base;
  const fsp = () => import('node:fs/promises');
  const past = new Date(Date.now() - 2 * 3600e3);
  const cutoff = () => new Date(Date.now() - 3600e3);
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'registry-fs-'));
    d = new Base(new FilesystemDriver({ rootdirectory: dir }));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('writes its temp files in _tmp, which list and walk of / do not show', async () => {
    await d.putContent({}, '/a/b/link', Buffer.from('x'));
    const { readdir } = await fsp();
    expect((await readdir(dir)).sort()).to.deep.equal(['_tmp', 'a']);
    expect(await readdir(join(dir, '_tmp'))).to.deep.equal([]);
    expect(await d.list({}, '/')).to.deep.equal(['/a']);
    const walked: string[] = [];
    await d.walk({}, '/', (fi) => { walked.push(fi.path); });
    expect(walked).to.deep.equal(['/a', '/a/b', '/a/b/link']);
    // A removed temp folder is made again.
    await rm(join(dir, '_tmp'), { recursive: true });
    await d.putContent({}, '/a/c', Buffer.from('y'));
    expect((await d.getContent({}, '/a/c')).toString()).to.equal('y');
  });

  it('sweeps old temp files from _tmp, and those beside their targets until one full sweep is done', async () => {
    const { writeFile, utimes, readdir } = await fsp();
    await d.putContent({}, '/r/link', Buffer.from('x'));
    const oldTmp = join(dir, '_tmp', '0123456789abcdef.tmp');
    const freshTmp = join(dir, '_tmp', 'fedcba9876543210.tmp');
    const beside = join(dir, 'r', 'link.tmp-0123456789ab');
    for (const f of [oldTmp, freshTmp, beside]) await writeFile(f, 'x');
    for (const f of [oldTmp, beside]) await utimes(f, past, past);
    // A dry run reads _tmp alone and says it did not look beside the
    // targets; it deletes nothing and leaves no mark.
    expect(await d.removeStrays!({}, '/', cutoff(), true)).to.deep.equal({ paths: ['/_tmp/0123456789abcdef.tmp'], partial: true });
    expect((await readdir(join(dir, '_tmp'))).sort()).to.deep.equal(['0123456789abcdef.tmp', 'fedcba9876543210.tmp']);
    expect((await readdir(join(dir, 'r'))).sort()).to.deep.equal(['link', 'link.tmp-0123456789ab']);
    expect(await d.removeStrays!({}, '/', cutoff(), false)).to.deep.equal({ paths: ['/_tmp/0123456789abcdef.tmp', '/r/link.tmp-0123456789ab'], partial: false });
    expect((await readdir(join(dir, '_tmp'))).sort()).to.deep.equal(['fedcba9876543210.tmp', 'swept']);
    expect(await readdir(join(dir, 'r'))).to.deep.equal(['link']);
    // After the full sweep only _tmp is read: a file beside a target now is
    // not ours (this version never writes one there) and is left alone.
    await writeFile(beside, 'x');
    await utimes(beside, past, past);
    await utimes(freshTmp, past, past);
    expect(await d.removeStrays!({}, '/', cutoff(), true)).to.deep.equal({ paths: ['/_tmp/fedcba9876543210.tmp'], partial: false });
    expect(await d.removeStrays!({}, '/', cutoff(), false)).to.deep.equal({ paths: ['/_tmp/fedcba9876543210.tmp'], partial: false });
    expect((await readdir(join(dir, 'r'))).sort()).to.deep.equal(['link', 'link.tmp-0123456789ab']);
  });

  it('on EXDEV (a mount inside the root) writes beside its targets again, and every sweep is a full one', async function () {
    const { mkdir, symlink, stat, readdir, writeFile, utimes } = await fsp();
    const other = '/dev/shm';
    const dev = async (p: string) => (await stat(p).catch(() => null))?.dev;
    if (!(await dev(other)) || (await dev(other)) === (await dev(dir))) {
      if (process.env.CI === 'true') throw new Error(`${other} is missing or on the same filesystem as ${dir}: cannot make an EXDEV`);
      console.log(`      SKIP: ${other} is missing or on the same filesystem as ${tmpdir()}`);
      this.skip();
    }
    const shm = await mkdtemp(join(other, 'registry-fs-'));
    try {
      await symlink(shm, join(dir, '_tmp'));
      await d.putContent({}, '/r/link', Buffer.from('x'));
      await d.putContent({}, '/r/link', Buffer.from('y'));
      expect((await d.getContent({}, '/r/link')).toString()).to.equal('y');
      expect(await readdir(join(dir, 'r'))).to.deep.equal(['link']);
      expect(await readdir(shm)).to.deep.equal(['beside']);
      await mkdir(join(dir, 'q'));
      await writeFile(join(dir, 'q', 'link.tmp-aaaaaaaaaaaa'), 'x');
      await utimes(join(dir, 'q', 'link.tmp-aaaaaaaaaaaa'), past, past);
      await writeFile(join(shm, 'swept'), 'x'); // even so: beside wins
      expect(await d.removeStrays!({}, '/', cutoff(), true)).to.deep.equal({ paths: [], partial: true });
      expect(await d.removeStrays!({}, '/', cutoff(), false)).to.deep.equal({ paths: ['/q/link.tmp-aaaaaaaaaaaa'], partial: false });
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });
});
