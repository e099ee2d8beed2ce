import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { createHasher, nativeSha256, restoreHasher } from './hasher.js';

describe('resumable sha256 hasher', () => {
  it('uses the native addon in this build', function () {
    if (!nativeSha256) {
      if (process.env.CI === 'true') expect.fail('native sha256 addon did not build');
      console.log('SKIP: native sha256 addon not built');
      this.skip();
    }
  });

  it('matches node:crypto and resumes from a marshalled state at any offset', function () {
    if (!nativeSha256) this.skip();
    const data = randomBytes(1000);
    const want = createHash('sha256').update(data).digest('hex');
    for (const cut of [0, 1, 63, 64, 65, 127, 128, 500, 999, 1000]) {
      const h = createHasher('sha256');
      h.update(data.subarray(0, cut));
      const state = h.marshal()!;
      expect(state.length).to.equal(108);
      const r = restoreHasher('sha256', state)!;
      expect(r.length).to.equal(cut);
      r.update(data.subarray(cut));
      expect(r.hex()).to.equal(want);
    }
  });

  it('writes Go crypto/sha256 MarshalBinary bytes', function () {
    if (!nativeSha256) this.skip();
    // Go: h := sha256.New(); h.Write([]byte("abc")); h.(encoding.BinaryMarshaler).MarshalBinary()
    const h = createHasher('sha256');
    h.update(Buffer.from('abc'));
    const s = h.marshal()!;
    expect(s.subarray(0, 4).toString('latin1')).to.equal('sha\x03');
    expect(s.readUInt32BE(4)).to.equal(0x6a09e667); // initial h0: no block compressed yet
    expect(s.subarray(36, 39).toString()).to.equal('abc');
    expect(s.subarray(39, 100).every((b) => b === 0)).to.equal(true);
    expect(Number(s.readBigUInt64BE(100))).to.equal(3);
  });

  it('hashes off the event loop with updateAsync, in order', async () => {
    const parts = Array.from({ length: 20 }, (_, i) => randomBytes(1000 + i * 977));
    const h = createHasher('sha256');
    for (const p of parts) await h.updateAsync(p);
    expect(h.length).to.equal(parts.reduce((n, p) => n + p.length, 0));
    expect(h.hex()).to.equal(createHash('sha256').update(Buffer.concat(parts)).digest('hex'));
  });

  it('refuses a state it cannot read', () => {
    expect(restoreHasher('sha256', Buffer.from('garbage'))).to.equal(null);
    expect(restoreHasher('sha512', Buffer.alloc(108))).to.equal(null);
  });

  it('hex() does not end the hash', () => {
    const h = createHasher('sha256');
    h.update(Buffer.from('ab'));
    h.hex();
    h.update(Buffer.from('c'));
    expect(h.hex()).to.equal(createHash('sha256').update('abc').digest('hex'));
  });
});
