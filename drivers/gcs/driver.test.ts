// The gcs driver on the Cloud Storage emulator (firebase-tools): the contract
// suite, plus what the emulator cannot show on its own.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Base } from '../base.js';
import { GcsDriver } from './driver.js';
import { PART_MARK } from './writer.js';
import { driverSuite } from '../testsuite/suite.js';
import { type GcsEmulator, startGcsEmulator } from '../../test/helpers/gcs.js';
import { type Classifier, startStorageProxy } from '../../test/helpers/storageProxy.js';
import type { Logger } from 'pino';

const gcsKind: Classifier = (m, u) => (m === 'POST' && u.pathname === '/batch/storage/v1' ? 'batch' : m === 'DELETE' ? 'DELETE' : m);

/** What the driver's files are under /registry/<dir>, as driver paths. */
async function filesUnder(d: GcsDriver, dir: string): Promise<string[]> {
  const [files] = await d.bucket.getFiles({ prefix: `registry/${dir}/` });
  return files.map((f) => f.name.slice('registry'.length)).sort();
}

describe('gcs driver on the Cloud Storage emulator', function () {
  this.timeout(180000);
  let emu: GcsEmulator;
  before(async () => { emu = await startGcsEmulator(); });
  after(async () => { await emu?.stop(); });

  const make = async (chunksize = 1 << 20) => new GcsDriver({ bucket: await emu.bucket(), endpoint: emu.endpoint, rootdirectory: '/registry', chunksize });

  driverSuite('gcs (emulator)', async () => ({ driver: new Base(await make()), cleanup: async () => {} }), { largeFileSize: 32 << 20, capabilities: ['commitTo', 'keepState', 'deleteFiles'] });

  it('lets only one of two writers that resumed at the same offset store its part', async () => {
    const d = new Base(await make(256 << 10));
    const w0 = await d.writer({}, '/race/data', false);
    await w0.write(Buffer.from('start-'));
    await w0.close();
    const a = await d.writer({}, '/race/data', true);
    const b = await d.writer({}, '/race/data', true);
    await a.write(Buffer.from('from a'));
    await b.write(Buffer.from('from b'));
    await a.close();
    try {
      await b.close();
      expect.fail('the second writer stored its part too');
    } catch (e) {
      expect((e as Error).message).to.match(/another writer already stored/);
    }
    const w = await d.writer({}, '/race/data', true);
    await w.commit();
    expect((await d.getContent({}, '/race/data')).toString()).to.equal('start-from a');
  });

  it('keeps a file being written as parts anyone can resume and read, and leaves none after commit', async () => {
    const raw = await make(256 << 10);
    const d = new Base(raw);
    const data = randomBytes((1 << 20) + 4321);
    let w = await d.writer({}, '/up/data', false);
    await w.close();
    for (let off = 0; off < data.length; off += 300000) {
      w = await d.writer({}, '/up/data', true); // a fresh writer: it knows only what is in the bucket
      expect(w.size()).to.equal(off);
      await w.write(data.subarray(off, off + 300000));
      await w.close();
    }
    expect((await d.stat({}, '/up/data')).size).to.equal(data.length);
    expect(await d.list({}, '/up')).to.deep.equal(['/up/data']);
    // Readable before commit, from any offset (the hash fallback re-reads it).
    const chunks: Buffer[] = [];
    for await (const c of await d.reader({}, '/up/data', 1000)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data.subarray(1000))).to.equal(true);
    w = await d.writer({}, '/up/data', true);
    await w.commit();
    expect((await d.getContent({}, '/up/data')).equals(data)).to.equal(true);
    const [files] = await raw.bucket.getFiles({ prefix: 'registry/up/' });
    expect(files.map((f) => f.name)).to.deep.equal(['registry/up/data']);
    expect(files.some((f) => f.name.includes(PART_MARK))).to.equal(false);
  });

  it('deletes files 100 to a batch request, and one request each for those a failed batch left', async () => {
    const proxy = await startStorageProxy(emu.endpoint, gcsKind);
    try {
      const d = new GcsDriver({ bucket: await emu.bucket(), endpoint: proxy.url, rootdirectory: '/registry' });
      const paths = Array.from({ length: 250 }, (_, i) => `/sweep/${String(i).padStart(3, '0')}/data`);
      for (let i = 0; i < paths.length; i += 50) await Promise.all(paths.slice(i, i + 50).map((p) => d.putContent({}, p, Buffer.from('x'))));
      await d.putContent({}, '/sweep/keep/data', Buffer.from('kept'));
      proxy.take();
      await d.deleteFiles({}, [...paths, '/sweep/missing/data']);
      let c = proxy.take().registry;
      expect(c.get('batch'), 'batch requests').to.equal(3);
      expect(c.get('DELETE') ?? 0, 'single deletes').to.equal(0);
      expect(await filesUnder(d, 'sweep')).to.deep.equal(['/sweep/keep/data']);

      // A batch refused as a whole (throttled): its objects go one at a time.
      const more = paths.slice(0, 40);
      await Promise.all(more.map((p) => d.putContent({}, p, Buffer.from('y'))));
      proxy.take();
      proxy.inject({ status: 503, headers: { 'Content-Type': 'application/json' }, body: '{"error":{"code":503}}' }, 1);
      await d.deleteFiles({}, more);
      c = proxy.take().registry;
      expect(proxy.faultsServed()).to.equal(1);
      expect(c.get('batch')).to.equal(1);
      expect(c.get('DELETE')).to.equal(40);
      expect(await filesUnder(d, 'sweep')).to.deep.equal(['/sweep/keep/data']);
    } finally {
      await proxy.close();
    }
  });

  it('deletes one object per request, after one warning, where the endpoint has no batch requests', async () => {
    const plain = await startGcsEmulator({ batch: false });
    const proxy = await startStorageProxy(plain.endpoint, gcsKind);
    try {
      const warnings: string[] = [];
      const log = { warn: (m: string) => warnings.push(m) } as unknown as Logger;
      const d = new GcsDriver({ bucket: await plain.bucket(), endpoint: proxy.url, rootdirectory: '/registry', log });
      const paths = Array.from({ length: 150 }, (_, i) => `/nobatch/${i}/data`);
      await Promise.all(paths.map((p) => d.putContent({}, p, Buffer.from('x'))));
      await d.putContent({}, '/nobatch/keep/data', Buffer.from('kept'));
      proxy.take();
      await d.deleteFiles({}, paths.slice(0, 100));
      let c = proxy.take().registry;
      expect(c.get('batch'), 'one batch tried').to.equal(1);
      expect(c.get('DELETE')).to.equal(100);
      await d.deleteFiles({}, paths.slice(100));
      c = proxy.take().registry;
      expect(c.get('batch') ?? 0, 'not tried again').to.equal(0);
      expect(c.get('DELETE')).to.equal(50);
      expect(await filesUnder(d, 'nobatch')).to.deep.equal(['/nobatch/keep/data']);
      expect(warnings).to.have.length(1);
      expect(warnings[0]).to.match(/no batch requests/);
    } finally {
      await proxy.close();
      await plain.stop();
    }
  });
});
