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
