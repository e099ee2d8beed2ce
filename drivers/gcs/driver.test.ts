// The gcs driver on the Cloud Storage emulator (firebase-tools): the contract
// suite, plus what the emulator cannot show on its own.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Base } from '../base.js';
import { GcsDriver } from './driver.js';
import { PART_MARK } from './writer.js';
import { driverSuite } from '../testsuite/suite.js';
import { type GcsEmulator, startGcsEmulator } from '../../test/helpers/gcs.js';

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
});
