import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { DigestMap, DigestSet, digestKey, flatDigest, keyDigest } from './digestSet.js';

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

describe('storage: digestSet (garbage collection\'s compact marks)', () => {
  it('keeps a sha256 digest as 32 one-byte characters and gives it back', () => {
    for (let i = 0; i < 2000; i++) {
      const d = sha(String(i));
      const k = digestKey(d);
      expect(k.length).to.equal(32);
      expect(keyDigest(k)).to.equal(d);
    }
  });

  it('keeps other digests whole, apart from every sha256 key, even at 32 characters', () => {
    const odd = ['sha512:' + 'ab'.repeat(64), 'blake3:' + 'c'.repeat(64), 'x:' + 'a'.repeat(29), 'x:' + 'a'.repeat(30), 'sha256:ABC'];
    for (const d of odd) {
      const k = digestKey(d);
      expect(k.length, d).to.not.equal(32);
      expect(keyDigest(k)).to.equal(d);
    }
    const s = new DigestSet(odd);
    for (const d of odd) expect(s.has(d)).to.equal(true);
    expect(s.has(sha('x'))).to.equal(false);
  });

  it('a set and a map answer by digest, and iterate digests', () => {
    const ds = [sha('a'), sha('b'), 'sha512:' + 'ef'.repeat(64)];
    const s = new DigestSet();
    for (const d of ds) s.add(d).add(d);
    expect(s.size).to.equal(3);
    expect([...s].sort()).to.deep.equal([...ds].sort());
    expect(s.delete(ds[0])).to.equal(true);
    expect(s.has(ds[0])).to.equal(false);
    const m = new DigestMap<number>();
    ds.forEach((d, i) => m.set(d, i));
    expect(m.get(ds[2])).to.equal(2);
    expect(m.has(sha('c'))).to.equal(false);
    expect([...m].map(([d, v]) => `${v}${d}`).sort()).to.deep.equal(ds.map((d, i) => `${i}${d}`).sort());
  });

  it('flatDigest gives the same digest', () => {
    const path = `/docker/registry/v2/blobs/sha256/ab/${'ab'.repeat(32)}/data`;
    const parts = path.split('/');
    const d = `${parts[5]}:${parts[7]}`;
    expect(flatDigest(d)).to.equal(d);
  });
});
