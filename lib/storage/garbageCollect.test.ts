// garbage-collect and the digest-to-tags index: repositories tagged before the
// index get it, and the tag-history entries of deleted manifests go.
import { expect } from 'chai';
import type { DriverContext } from '../../drivers/driver.js';
import { InMemoryDriver } from '../../drivers/inmemory/driver.js';
import { NoopDescriptorCache } from '../cache/descriptorCache.js';
import { garbageCollect } from './garbageCollect.js';
import { tagCurrentLinkPath, tagDigestIndexEntryPath, tagDigestIndexMarkerPath, tagIndexLinkPath } from './paths.js';
import { Registry } from './registry.js';
import { OCI_MANIFEST, artifactManifest } from './testing.js';
import { markCachePath } from './markCache.js';

describe('garbage-collect and tag indexes', () => {
  const ctx = {} as DriverContext;
  const ct = OCI_MANIFEST;
  const manifest = artifactManifest;
  const exists = (d: InMemoryDriver, p: string) => d.stat(ctx, p).then(() => true, () => false);

  for (const doomedCount of [2, 5]) {
    it(`completes the index of a repository tagged by distribution, and removes the histories of ${doomedCount} deleted manifests`, async () => {
      const d = new InMemoryDriver();
      const reg = new Registry(d, new NoopDescriptorCache());
      const repo = reg.repository('legacy');
      const kept = await repo.manifests.put(ctx, manifest(0), ct, {}, { skipReferences: true });
      const doomed = [];
      for (let i = 1; i <= doomedCount; i++) doomed.push((await repo.manifests.put(ctx, manifest(i), ct, {}, { skipReferences: true })).digest);
      // distribution's tags: 'latest' pointed at every doomed manifest before the kept one; 'a' to 'e' at the kept one.
      const tagAs = async (t: string, dg: string) => {
        await d.putContent(ctx, tagIndexLinkPath('legacy', t, dg), Buffer.from(dg));
        await d.putContent(ctx, tagCurrentLinkPath('legacy', t), Buffer.from(dg));
      };
      for (const dg of doomed) await tagAs('latest', dg);
      await tagAs('latest', kept.digest);
      for (const t of ['a', 'b', 'c', 'd', 'e']) await tagAs(t, kept.digest);

      const dry = await garbageCollect(reg, ctx, { dryRun: true, deleteUntagged: true, graceMs: 0 });
      expect(dry.manifestsDeleted).to.have.length(doomedCount);
      expect(await exists(d, tagDigestIndexMarkerPath('legacy'))).to.equal(false); // a dry run writes nothing

      const sum = await garbageCollect(reg, ctx, { dryRun: false, deleteUntagged: true, graceMs: 0 });
      expect(sum.manifestsDeleted.sort()).to.deep.equal(doomed.map((dg) => `legacy@${dg}`).sort());
      expect(sum.tagIndexEntriesWritten).to.equal(6);
      expect(await exists(d, tagDigestIndexMarkerPath('legacy'))).to.equal(true);
      for (const t of ['latest', 'a', 'e']) expect(await exists(d, tagDigestIndexEntryPath('legacy', kept.digest, t))).to.equal(true);
      for (const dg of doomed) expect(await exists(d, tagIndexLinkPath('legacy', 'latest', dg)), dg).to.equal(false);
      expect(await exists(d, tagIndexLinkPath('legacy', 'latest', kept.digest))).to.equal(true);
      expect((await repo.tags.lookup(ctx, kept.digest))).to.deep.equal(['a', 'b', 'c', 'd', 'e', 'latest']);

      const again = await garbageCollect(reg, ctx, { dryRun: false, deleteUntagged: true, graceMs: 0 });
      expect(again).to.deep.include({ tagIndexEntriesWritten: 0, manifestsDeleted: [] });
    });
  }
});

describe('garbage-collect keeps what manifests reference between runs (the mark cache)', () => {
  const ctx = {} as DriverContext;
  const layerOf = (n: number) => `sha256:${String(n).padStart(64, '0')}`;
  const image = (n: number) => Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${'4'.repeat(64)}`, size: 2 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerOf(n), size: 1 }],
  }));
  /** Counts reads of blob data (manifest bytes), and fails those of one repository's manifests while `failing` holds digests. */
  class ReadCounting extends InMemoryDriver {
    blobReads = 0;
    failing = new Set<string>();
    override async getContent(c: DriverContext, p: string): Promise<Buffer> {
      const m = /\/blobs\/sha256\/..\/([0-9a-f]{64})\/data$/.exec(p);
      if (m) {
        this.blobReads++;
        if (this.failing.has(`sha256:${m[1]}`)) throw new Error('killed');
      }
      return super.getContent(c, p);
    }
  }
  const setup = async () => {
    const d = new ReadCounting();
    const reg = new Registry(d, new NoopDescriptorCache());
    const byRepo = new Map<string, string[]>();
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < 4; i++) {
        const m = await reg.repository(`r${r}`).manifests.put(ctx, image(r * 10 + i), OCI_MANIFEST, { tag: `t${i}` }, { skipReferences: true });
        byRepo.set(`r${r}`, [...(byRepo.get(`r${r}`) ?? []), m.digest]);
      }
    }
    return { d, reg, byRepo };
  };
  const run = (reg: Registry, dryRun = false) => garbageCollect(reg, ctx, { dryRun, deleteUntagged: true, graceMs: 0 });
  const exists = (d: InMemoryDriver, p: string) => d.stat(ctx, p).then(() => true, () => false);

  it('a second run reads no manifest and marks the same; a new manifest is the only one read', async () => {
    const { d, reg } = await setup();
    expect(await exists(d, markCachePath('r0'))).to.equal(false);
    const dry = await run(reg, true);
    expect(await exists(d, markCachePath('r0')), 'a dry run writes nothing').to.equal(false);
    const first = await run(reg);
    expect(first.manifestsRead).to.equal(12);
    d.blobReads = 0;
    const second = await run(reg);
    expect(second).to.deep.include({ manifestsRead: 0, blobsMarked: first.blobsMarked, manifestsMarked: 12 });
    expect(second.blobsMarked).to.equal(dry.blobsMarked);
    expect(d.blobReads).to.equal(0);
    await reg.repository('r1').manifests.put(ctx, image(99), OCI_MANIFEST, { tag: 'new' }, { skipReferences: true });
    const third = await run(reg);
    expect(third).to.deep.include({ manifestsRead: 1, manifestsMarked: 13 });
  });

  it('a run killed while marking, started again, reads only what it had not read; a damaged file is read past, a gone repository\'s file removed', async () => {
    const { d, reg, byRepo } = await setup();
    for (const dg of byRepo.get('r2')!) d.failing.add(dg);
    let failed = '';
    await run(reg).catch((e: Error) => { failed = e.message; });
    expect(failed).to.match(/killed/);
    d.failing.clear();
    const again = await run(reg);
    expect(again.manifestsRead).to.equal(4); // r2's; r0's and r1's were kept when the first run read them
    // A damaged file is not trusted: the manifests are read again and the file rewritten.
    const good = (await d.getContent(ctx, markCachePath('r0'))).toString();
    await d.putContent(ctx, markCachePath('r0'), Buffer.from(good.replace('"b":[', '"b":"oops","x":[')));
    expect((await run(reg)).manifestsRead).to.equal(4);
    expect((await run(reg)).manifestsRead).to.equal(0);
    // A repository removed whole: its file goes with the next run.
    await d.delete(ctx, '/docker/registry/v2/repositories/r1');
    await run(reg);
    expect(await exists(d, markCachePath('r1'))).to.equal(false);
    expect(await exists(d, markCachePath('r0'))).to.equal(true);
  });
});

describe('garbage-collect on a store with a flat walk (object stores)', () => {
  const ctx = {} as DriverContext;
  class FlatCounting extends InMemoryDriver {
    readonly flatWalk = true;
    tagReads = 0;
    override async getContent(c: DriverContext, p: string): Promise<Buffer> {
      if (/\/_manifests\/tags\/[^/]+\/current\/link$/.test(p)) this.tagReads++;
      return super.getContent(c, p);
    }
  }

  it('reads no tag link where the targets are not needed, and still finds tag folders without a current link', async () => {
    const d = new FlatCounting();
    const reg = new Registry(d, new NoopDescriptorCache());
    const repo = reg.repository('flat');
    const m = await repo.manifests.put(ctx, artifactManifest(0), OCI_MANIFEST, { tag: 't0' }, { skipReferences: true });
    for (let i = 1; i < 40; i++) await repo.tags.tag(ctx, `t${i}`, m.digest);
    await d.putContent(ctx, tagIndexLinkPath('flat', 'ghost', m.digest), Buffer.from(m.digest));
    d.tagReads = 0;
    const dry = await garbageCollect(reg, ctx, { dryRun: true, deleteUntagged: false, graceMs: 0 });
    expect(d.tagReads).to.equal(0);
    expect(dry.tagFoldersDeleted).to.equal(1);
    // With --delete-untagged the targets are the roots: read.
    const untagged = await garbageCollect(reg, ctx, { dryRun: true, deleteUntagged: true, graceMs: 0 });
    expect(d.tagReads).to.equal(41); // 40 tags and the ghost
    expect(untagged.manifestsDeleted).to.deep.equal([]);
  });
});
