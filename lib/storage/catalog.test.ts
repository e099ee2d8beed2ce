// A page of the catalog costs directory listings for the repositories it
// returns, not for the store: counted on a driver that tallies list() calls.
import { expect } from 'chai';
import { type DriverContext } from '../../drivers/driver.js';
import { InMemoryDriver } from '../../drivers/inmemory/driver.js';
import { catalogPage } from './catalog.js';

class CountingDriver extends InMemoryDriver {
  lists = 0;
  override async list(ctx: DriverContext, p: string): Promise<string[]> {
    this.lists++;
    return super.list(ctx, p);
  }
}

describe('catalog pages', () => {
  const ctx = {} as DriverContext;

  it('list only around the page: the cost follows the names returned, not the store', async () => {
    const d = new CountingDriver();
    const names: string[] = [];
    for (let i = 0; i < 400; i++) names.push(`team${String(i % 20).padStart(2, '0')}/app${String(i).padStart(3, '0')}`);
    names.sort();
    for (const n of names) await d.putContent(ctx, `/docker/registry/v2/repositories/${n}/_manifests/tags/v1/current/link`, Buffer.from('x'));
    const full = await catalogPage(d, ctx, '', Infinity);
    expect(full).to.deep.equal(names);
    const wholeStore = d.lists;
    expect(wholeStore).to.be.at.least(names.length);

    d.lists = 0;
    const page = await catalogPage(d, ctx, names[200], 10);
    expect(page).to.deep.equal(names.slice(201, 211));
    // The root, the team folder(s), the ten repositories, and at most a prefetch window ahead.
    expect(d.lists).to.be.at.most(1 + 2 + 10 + 2 * 8);
    expect(d.lists * 10).to.be.below(wholeStore);
  });

  it('answers an empty store, a store without repositories and n=0', async () => {
    const d = new CountingDriver();
    expect(await catalogPage(d, ctx, '', 100)).to.deep.equal([]);
    await d.putContent(ctx, '/docker/registry/v2/repositories/x/_uploads/u/data', Buffer.from('x'));
    expect(await catalogPage(d, ctx, '', 100)).to.deep.equal([]);
    await d.putContent(ctx, '/docker/registry/v2/repositories/x/_layers/sha256/ab/link', Buffer.from('x'));
    expect(await catalogPage(d, ctx, '', 100)).to.deep.equal(['x']);
    expect(await catalogPage(d, ctx, '', 0)).to.deep.equal([]);
  });
});
