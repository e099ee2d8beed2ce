// The s3 driver on s3rver: the contract suite, plus the S3 rules s3rver does
// not enforce itself (parts under 5 MiB, 1,000-key pages), checked on the wire.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Base } from '../base.js';
import { S3Driver } from './driver.js';
import { MIN_PART } from './writer.js';
import { driverSuite } from '../testsuite/suite.js';
import { type S3rver, S3RVER_KEY, S3RVER_SECRET, startS3rver } from '../../test/helpers/s3rver.js';
import type { StorageDriver } from '../driver.js';

describe('s3 driver on s3rver', function () {
  this.timeout(180000);
  let s3: S3rver;
  before(async () => { s3 = await startS3rver(); });
  after(async () => { await s3?.stop(); });

  const make = async (extra: Partial<ConstructorParameters<typeof S3Driver>[0]> = {}) => new S3Driver({
    region: 'us-east-1', regionendpoint: s3.endpoint, bucket: await s3.bucket(), rootdirectory: '/registry',
    accesskey: S3RVER_KEY, secretkey: S3RVER_SECRET, ...extra,
  });

  driverSuite('s3 (s3rver)', async () => {
    const d = await make();
    return { driver: new Base(d), cleanup: async () => { d.client.destroy(); } };
  }, { largeFileSize: 32 << 20, capabilities: ['commitTo', 'keepState', 'deleteFiles'] });

  describe('S3 specifics', () => {
    let raw: S3Driver;
    let d: StorageDriver;
    /** Every request the SDK sends: command name and, for parts, the body size. */
    let sent: { command: string; size?: number; uploadId?: string; part?: number }[];
    beforeEach(async () => {
      raw = await make({ multipartcopythresholdsize: MIN_PART });
      d = new Base(raw);
      sent = [];
      raw.client.middlewareStack.add((next, context) => async (args) => {
        const input = args.input as { Body?: Buffer; UploadId?: string; PartNumber?: number };
        sent.push({ command: context.commandName!, size: Buffer.isBuffer(input.Body) ? input.Body.length : undefined, uploadId: input.UploadId, part: input.PartNumber });
        return next(args);
      }, { step: 'initialize', name: 'recorder' });
    });
    afterEach(() => raw.client.destroy());

    it('keeps every part but the last at 5 MiB or more, whatever the chunk sizes and resumes', async () => {
      const want: Buffer[] = [];
      let w = await d.writer({}, '/mp/file', false);
      // 23 MiB in odd pieces, closed and resumed (as by another process) every few MiB.
      for (let i = 0; i < 23; i++) {
        const c = randomBytes((1 << 20) + (i % 3) * 1000);
        want.push(c);
        await w.write(c);
        if (i % 4 === 3) {
          await w.close();
          w = await d.writer({}, '/mp/file', true); // a new writer object: it knows only what is in the bucket
        }
      }
      const total = want.reduce((a, b) => a + b.length, 0);
      expect(w.size()).to.equal(total);
      // The file being written is visible with its size, as on a filesystem.
      await w.close();
      expect((await d.stat({}, '/mp/file')).size).to.equal(total);
      expect(await d.list({}, '/mp')).to.deep.equal(['/mp/file']);
      w = await d.writer({}, '/mp/file', true);
      await w.commit();
      const parts = sent.filter((s) => s.command === 'UploadPartCommand');
      expect(parts.length).to.be.greaterThan(1);
      parts.slice(0, -1).forEach((p) => expect(p.size, `part ${p.part}`).to.be.at.least(MIN_PART));
      expect(parts.map((p) => p.part)).to.deep.equal(parts.map((_, i) => i + 1));
      expect(new Set(parts.map((p) => p.uploadId)).size).to.equal(1);
      expect((await d.getContent({}, '/mp/file')).equals(Buffer.concat(want))).to.equal(true);
      // The sidecar is gone: the directory holds the file only.
      expect(await d.list({}, '/mp')).to.deep.equal(['/mp/file']);
    });

    it('lists, walks and deletes past 1,000 keys a page', async () => {
      const names = Array.from({ length: 1105 }, (_, i) => `f${String(i).padStart(4, '0')}`);
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(names.slice(i, i + 50).map((n) => d.putContent({}, `/many/dir/${n}`, Buffer.from(n))));
      }
      await d.putContent({}, '/many/zz/last', Buffer.from('z'));
      expect(await d.list({}, '/many/dir')).to.deep.equal(names.map((n) => `/many/dir/${n}`));
      const seen: string[] = [];
      await d.walk({}, '/many', (fi) => { seen.push(fi.path); });
      expect(seen.length).to.equal(names.length + 3); // + /many/dir, /many/zz, /many/zz/last
      // skipdir jumps over the 1,105 keys instead of paging through them.
      sent = [];
      const visited: string[] = [];
      await d.walk({}, '/many', (fi) => { visited.push(fi.path); return fi.path === '/many/dir' ? 'skipdir' : undefined; });
      expect(visited).to.deep.equal(['/many/dir', '/many/zz', '/many/zz/last']);
      expect(sent.filter((s) => s.command === 'ListObjectsV2Command').length).to.equal(2);
      await d.delete({}, '/many/dir');
      expect(await d.list({}, '/many')).to.deep.equal(['/many/zz']);
    });

    it('moves large files with a server-side copy (one CopyObject where the store lacks UploadPartCopy)', async () => {
      const data = randomBytes(MIN_PART + 12345);
      await d.putContent({}, '/mv/src', data);
      await d.move({}, '/mv/src', '/mv/dst');
      const kinds = sent.map((s) => s.command);
      expect((await d.getContent({}, '/mv/dst')).equals(data)).to.equal(true);
      expect(kinds).to.include('UploadPartCopyCommand'); // tried first, above the threshold
      expect(kinds).to.include('CopyObjectCommand');
      expect(kinds).to.not.include('GetObjectCommand', 'no bytes through the registry');
    });

    it('deleting a folder with a file being written removes its state', async () => {
      const w = await d.writer({}, '/up/id/data', false);
      await w.write(randomBytes(MIN_PART + 1));
      await w.close();
      await d.putContent({}, '/up/id/startedat', Buffer.from('x'));
      await d.delete({}, '/up/id');
      for (const p of ['/up/id', '/up/id/data']) {
        try { await d.stat({}, p); expect.fail(`${p} still there`); } catch (e) { expect((e as Error).name).to.equal('PathNotFoundError'); }
      }
      try { await d.writer({}, '/up/id/data', true); expect.fail('resumed'); } catch (e) { expect((e as Error).name).to.equal('PathNotFoundError'); }
      expect(sent.map((s) => s.command)).to.include('AbortMultipartUploadCommand');
    });
  });
});
