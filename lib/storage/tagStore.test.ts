// tags/list pages: one listing, and current links checked for the page only.
import { expect } from 'chai';
import { LRUCache } from 'lru-cache';
import type { DriverContext, FileInfo } from '../../drivers/driver.js';
import { InMemoryDriver } from '../../drivers/inmemory/driver.js';
import { tagCurrentLinkPath, tagIndexLinkPath } from './paths.js';
import { TagStore } from './tagStore.js';

class CountingDriver extends InMemoryDriver {
  stats = 0;
  override async stat(ctx: DriverContext, p: string): Promise<FileInfo> {
    this.stats++;
    return super.stat(ctx, p);
  }
}

describe('tag pages', () => {
  const ctx = {} as DriverContext;
  const dgst = `sha256:${'a'.repeat(64)}`;

  it('check the tags of the page, not of the repository, and skip folders without a current link', async () => {
    const d = new CountingDriver();
    const tags = Array.from({ length: 2000 }, (_, i) => `t${String(i).padStart(4, '0')}`);
    for (const t of tags) await d.putContent(ctx, tagCurrentLinkPath('r', t), Buffer.from(dgst));
    // Ghosts, as a crash between the index link and the current link leaves them.
    for (const t of ['t0101a', 't0101b']) await d.putContent(ctx, tagIndexLinkPath('r', t, dgst), Buffer.from(dgst));
    const store = new TagStore('r', d, new LRUCache<string, true>({ max: 100 }));
    const pg = await store.page(ctx, 't0099', 5);
    expect(pg.tags).to.deep.equal(['t0100', 't0101', 't0102', 't0103', 't0104']);
    expect(pg.more).to.equal(true);
    expect(d.stats).to.be.at.most(10);
    const end = await store.page(ctx, 't1997', 5);
    expect(end).to.deep.include({ tags: ['t1998', 't1999'], more: false });
    const exact = await store.page(ctx, 't1994', 5);
    expect(exact).to.deep.include({ tags: ['t1995', 't1996', 't1997', 't1998', 't1999'], more: false });
  });
});
