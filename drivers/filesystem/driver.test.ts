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
