// tags/list pages: one listing, and current links checked for the page only;
// the digest-to-tags index that makes a manifest DELETE read only its own tags.
import { expect } from 'chai';
import { LRUCache } from 'lru-cache';
import type { DriverContext, FileInfo, WalkResult } from '../../drivers/driver.js';
import { InMemoryDriver } from '../../drivers/inmemory/driver.js';
import { NoopDescriptorCache } from '../cache/descriptorCache.js';
import { tagCurrentLinkPath, tagDigestIndexDir, tagDigestIndexMarkerPath, tagDigestIndexRoot, tagIndexLinkPath } from './paths.js';
import { Registry } from './registry.js';
import { OCI_MANIFEST, artifactManifest } from './testing.js';
import { TagStore } from './tagStore.js';

class CountingDriver extends InMemoryDriver {
  stats = 0;
  gets = 0;
  override async stat(ctx: DriverContext, p: string): Promise<FileInfo> {
    this.stats++;
    return super.stat(ctx, p);
  }
  override async getContent(ctx: DriverContext, p: string): Promise<Buffer> {
    this.gets++;
    return super.getContent(ctx, p);
  }
  async exists(ctx: DriverContext, p: string): Promise<boolean> {
    return super.stat(ctx, p).then(() => true, () => false);
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

  it('on a store whose walk is a flat listing: one walk, no stat, ghosts and tag histories skipped', async () => {
    class FlatDriver extends CountingDriver {
      readonly flatWalk = true;
      walks = 0;
      visitedInIndex = 0;
      override async walk(c: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
        this.walks++;
        // The in-memory walk stats what it lists; a flat listing does not.
        const stats = this.stats;
        try {
          return await super.walk(c, p, (fi) => { if (fi.path.includes('/index/')) this.visitedInIndex++; return fn(fi); });
        } finally { this.stats = stats; }
      }
    }
    const d = new FlatDriver();
    const tags = ['a', 'a-b', 'a.c', 'b', 'c_d', 'z'];
    for (const t of tags) {
      await d.putContent(ctx, tagIndexLinkPath('r', t, dgst), Buffer.from(dgst));
      await d.putContent(ctx, tagCurrentLinkPath('r', t), Buffer.from(dgst));
    }
    await d.putContent(ctx, tagIndexLinkPath('r', 'ghost', dgst), Buffer.from(dgst));
    const store = new TagStore('r', d, new LRUCache<string, true>({ max: 100 }));
    d.stats = 0; d.gets = 0;
    expect(await store.page(ctx, '', 3)).to.deep.equal({ tags: ['a', 'a-b', 'a.c'], more: true, folders: 6 });
    expect(await store.page(ctx, 'a.c', 3)).to.deep.equal({ tags: ['b', 'c_d', 'z'], more: false, folders: 6 });
    expect(await store.all(ctx)).to.deep.equal([...tags].sort());
    expect({ walks: d.walks, stats: d.stats, gets: d.gets, visitedInIndex: d.visitedInIndex }).to.deep.equal({ walks: 3, stats: 0, gets: 0, visitedInIndex: 0 });
    const none = new TagStore('empty', d, new LRUCache<string, true>({ max: 100 }));
    expect(await none.page(ctx, '', 3)).to.deep.equal({ tags: [], more: false, folders: 0 });
  });
});

describe('tag pages from a listing in S3 key order (walkFrom)', () => {
  const ctx = {} as DriverContext;
  const dgst = `sha256:${'a'.repeat(64)}`;
  /** S3's order: by whole key, so 'x-1/current/link' before 'x/current/link'. */
  class KeyOrder extends InMemoryDriver {
    readonly flatWalk = true;
    listed = 0;
    async walkFrom(c: DriverContext, p: string, from: string, fn: (fi: FileInfo) => Promise<WalkResult | 'stop'> | WalkResult | 'stop'): Promise<void> {
      const files: FileInfo[] = [];
      await super.walk(c, p, (fi) => { if (!fi.isDir) files.push(fi); });
      files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      for (const fi of files.filter((f) => f.path > `${p}/${from}`)) {
        this.listed++;
        if ((await fn(fi)) === 'stop') return;
      }
    }
  }

  it('come in name order, a page stopping early, where tags are prefixes of others followed by - or .', async () => {
    const d = new KeyOrder();
    const tags = ['x', 'x-1', 'x-2', 'x-3', 'x.y', 'xa', 'y', 'y-z'];
    for (const t of tags) await d.putContent(ctx, tagCurrentLinkPath('r', t), Buffer.from(dgst));
    await d.putContent(ctx, tagIndexLinkPath('r', 'ghost', dgst), Buffer.from(dgst));
    const store = new TagStore('r', d, new LRUCache<string, true>({ max: 100 }));
    const seen: string[] = [];
    for (let last = '', more = true; more;) {
      const pg = await store.page(ctx, last, 2);
      seen.push(...pg.tags);
      more = pg.more;
      last = pg.tags[pg.tags.length - 1];
    }
    expect(seen).to.deep.equal(tags);
    d.listed = 0;
    await store.page(ctx, 'x-2', 2);
    expect(d.listed, 'a listing that starts at last, and stops').to.be.at.most(5);
  });
});

describe('a manifest DELETE among many tags on an object store (flat walk, batched deletes)', () => {
  const ctx = {} as DriverContext;
  class ObjectStoreLike extends CountingDriver {
    readonly flatWalk = true;
    walks = 0;
    deletes = 0;
    batches = 0;
    override async walk(c: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
      this.walks++;
      const stats = this.stats;
      try { return await super.walk(c, p, fn); } finally { this.stats = stats; }
    }
    override async delete(c: DriverContext, p: string): Promise<void> {
      this.deletes++;
      return super.delete(c, p);
    }
    async deleteFiles(c: DriverContext, paths: string[]): Promise<void> {
      this.batches++;
      for (const p of paths) await super.delete(c, p).catch(() => {});
    }
  }

  it('deletes its 120 tags with one walk and one batch, and looks again without reading each deleted link', async () => {
    const d = new ObjectStoreLike();
    const reg = new Registry(d, new NoopDescriptorCache());
    const repo = reg.repository('many');
    const doomed = await repo.manifests.put(ctx, artifactManifest(0), OCI_MANIFEST, { tag: 'd000' }, { skipReferences: true });
    const other = await repo.manifests.put(ctx, artifactManifest(1), OCI_MANIFEST, { tag: 'o000' }, { skipReferences: true });
    for (let i = 1; i < 120; i++) await repo.tags.tag(ctx, `d${String(i).padStart(3, '0')}`, doomed.digest);
    for (let i = 1; i < 300; i++) await repo.tags.tag(ctx, `o${String(i).padStart(3, '0')}`, other.digest);
    d.gets = 0; d.walks = 0; d.deletes = 0; d.batches = 0;
    await repo.manifests.delete(ctx, doomed.digest);
    const all = await repo.tags.all(ctx);
    expect(all).to.have.length(300);
    expect(all.every((t) => t.startsWith('o'))).to.equal(true);
    // Tag folders: one batch (120 x 2 files); tag links read once, by the first look.
    expect(d.batches).to.equal(1);
    expect(d.gets).to.be.at.most(120 + 10);
    expect(await d.exists(ctx, tagCurrentLinkPath('many', 'd050'))).to.equal(false);
    expect(await repo.tags.get(ctx, 'o299')).to.equal(other.digest);
  });
});

describe('the digest-to-tags index', () => {
  const ctx = {} as DriverContext;
  const ct = OCI_MANIFEST;
  const manifest = artifactManifest;
  const reads = (d: CountingDriver) => d.gets + d.stats;

  it('lets DELETE read the tags of its own digest, not every tag, in a repository tagged since its start', async () => {
    const d = new CountingDriver();
    const reg = new Registry(d, new NoopDescriptorCache());
    const repo = reg.repository('big');
    const many = await repo.manifests.put(ctx, manifest(0), ct, { tag: 't0000' }, { skipReferences: true });
    for (let i = 1; i < 1000; i++) await repo.tags.tag(ctx, `t${String(i).padStart(4, '0')}`, many.digest);
    const one = await repo.manifests.put(ctx, manifest(1), ct, { tag: 'solo' }, { skipReferences: true });
    await repo.manifests.put(ctx, manifest(1), ct, { tag: 'solo2' }, { skipReferences: true });
    await repo.tags.tag(ctx, 'moved', one.digest);
    await repo.tags.tag(ctx, 'moved', many.digest); // an entry left behind: checked, not trusted
    expect(await d.exists(ctx, tagDigestIndexMarkerPath('big'))).to.equal(true);

    d.gets = 0; d.stats = 0;
    expect(await repo.tags.lookup(ctx, one.digest)).to.deep.equal(['solo', 'solo2']);
    expect(reads(d)).to.be.at.most(5);
    d.gets = 0; d.stats = 0;
    await repo.manifests.delete(ctx, one.digest);
    expect(reads(d)).to.be.at.most(20);
    expect(await repo.tags.all(ctx)).to.have.length(1001); // t0000..t0999 and moved
    expect(await repo.tags.all(ctx)).to.not.include.members(['solo', 'solo2']);
    expect(await repo.tags.get(ctx, 'moved')).to.equal(many.digest);
    // The deleted digest's entries went with it.
    expect(await d.exists(ctx, tagDigestIndexDir('big', one.digest))).to.equal(false);
    expect((await repo.tags.lookup(ctx, many.digest)).length).to.equal(1001);
  });

  it('falls back to every tag where tags predate the index, until garbage-collect completes it', async () => {
    const d = new CountingDriver();
    const reg = new Registry(d, new NoopDescriptorCache());
    const repo = reg.repository('old');
    const a = await repo.manifests.put(ctx, manifest(2), ct, { digest: undefined }, { skipReferences: true });
    const b = await repo.manifests.put(ctx, manifest(3), ct, {}, { skipReferences: true });
    // Tags as distribution writes them: links only.
    for (const [t, dg] of [['x', a.digest], ['y', a.digest], ['z', b.digest]]) {
      await d.putContent(ctx, tagIndexLinkPath('old', t, dg), Buffer.from(dg));
      await d.putContent(ctx, tagCurrentLinkPath('old', t), Buffer.from(dg));
    }
    // A tag pushed now writes its entry but no marker: the index is not complete.
    await repo.tags.tag(ctx, 'w', a.digest);
    expect(await d.exists(ctx, tagDigestIndexMarkerPath('old'))).to.equal(false);
    expect(await repo.tags.indexComplete(ctx)).to.equal(false);
    expect(await repo.tags.lookup(ctx, a.digest)).to.deep.equal(['w', 'x', 'y']);

    expect(await repo.tags.completeIndex(ctx, [['w', a.digest], ['x', a.digest], ['y', a.digest], ['z', b.digest]])).to.equal(4);
    expect(await repo.tags.indexComplete(ctx)).to.equal(true);
    expect(await repo.tags.completeIndex(ctx, [])).to.equal(0); // once
    d.gets = 0; d.stats = 0;
    await repo.manifests.delete(ctx, a.digest);
    expect(reads(d)).to.be.at.most(20);
    expect(await repo.tags.all(ctx)).to.deep.equal(['z']);
  });

  it('is neither written nor trusted with storage.tag.digestindex false', async () => {
    const d = new CountingDriver();
    const reg = new Registry(d, new NoopDescriptorCache(), { tagDigestIndex: false });
    const repo = reg.repository('plain');
    const a = await repo.manifests.put(ctx, manifest(4), ct, { tag: 'v1' }, { skipReferences: true });
    expect(await d.exists(ctx, tagDigestIndexRoot('plain'))).to.equal(false);
    expect(await repo.tags.lookup(ctx, a.digest)).to.deep.equal(['v1']);
    await repo.manifests.delete(ctx, a.digest);
    expect(await repo.tags.all(ctx)).to.deep.equal([]);
  });
});
