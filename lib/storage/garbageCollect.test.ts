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
