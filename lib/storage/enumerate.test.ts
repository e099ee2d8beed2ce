import { expect } from 'chai';
import type { DriverContext } from '../../drivers/driver.js';
import { InMemoryDriver } from '../../drivers/inmemory/driver.js';
import { enumerateFiles } from './enumerate.js';

describe('enumerateFiles', () => {
  const ctx = {} as DriverContext;
  class Flat extends InMemoryDriver { readonly flatWalk = true; }
  class Counting extends InMemoryDriver {
    lists = 0;
    override async list(c: DriverContext, p: string): Promise<string[]> { this.lists++; return super.list(c, p); }
  }

  for (const [kind, make] of [['listing and stat', () => new Counting()], ['flat walk', () => new Flat()]] as const) {
    it(`visits <root>/<alg>/<xx>/<hex>/data in lexical order, skipping leaves without the file and files at other depths (${kind})`, async () => {
      const d = make();
      const root = '/docker/registry/v2/blobs';
      for (const p of ['sha256/bb/bb2/data', 'sha256/aa/aa9/data', 'sha256/aa/aa1/data', 'sha256/aa/aa5/partial', 'sha256/cc/data', 'sha256/cc/cc1/data/deeper', 'sha512/00/001/data']) {
        await d.putContent(ctx, `${root}/${p}`, Buffer.from(p));
      }
      const seen: string[] = [];
      await enumerateFiles(d, ctx, root, 3, 'data', (names, fi) => {
        expect(fi.path).to.equal(`${root}/${names.join('/')}/data`);
        expect(fi.size).to.equal(`${names.join('/')}/data`.length);
        seen.push(names.join('/'));
      });
      expect(seen).to.deep.equal(['sha256/aa/aa1', 'sha256/aa/aa9', 'sha256/bb/bb2', 'sha512/00/001']);
      // Leaf folders are not listed: the root, 2 algorithms, 4 folders of them.
      if (d instanceof Counting) expect(d.lists).to.equal(7);
      await enumerateFiles(d, ctx, '/missing', 2, 'link', () => { throw new Error('nothing to visit'); });
    });
  }
});
