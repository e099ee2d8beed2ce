// The online collection's journal on a real redis-server: writes made while
// the collector marks, or while it sweeps, keep what they reference and are
// not held; a write that references a blob being deleted right now waits for
// that batch only; a collector without the journal (the lock alone) still
// holds writes.
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { access, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestRegistry, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type TestRedis, startRedis } from '../helpers/redis.js';
import { pushBlob, pushManifest, req } from '../helpers/http.js';
import { type Blob, image, layer, sha256 } from '../helpers/ociLayout.js';
import { GC_KEYS, GcJournal, gcReference } from '../../lib/cache/gcJournal.js';
import { GC_LOCK, holdRedisLock } from '../../lib/cache/redisLock.js';
import { createDriver } from '../../drivers/factory.js';
import { NoopDescriptorCache } from '../../lib/cache/descriptorCache.js';
import { Registry } from '../../lib/storage/registry.js';
import { garbageCollect } from '../../lib/storage/garbageCollect.js';
import type { RedisClient } from '../../lib/cache/redisClient.js';

const blobPath = (root: string, d: string) => join(root, 'docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7), 'data');
const stored = (root: string, d: string) => access(blobPath(root, d)).then(() => true, () => false);

/** An image manifest with the given config and layers. */
function manifestOf(config: Blob, layers: Blob[]): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  }));
}
const MT = 'application/vnd.oci.image.manifest.v1+json';

describe('online garbage collection: the Redis journal', function () {
  this.timeout(120000);
  let redis: TestRedis;
  before(async function () {
    if (!requireTool(this, 'redis-server')) return;
    redis = await startRedis();
  });
  after(async () => { await redis?.stop(); });
  afterEach(async () => { await redis?.client.flushall(); });
  const client = () => redis.client as unknown as RedisClient;

  it('journals while marking, rescues while sweeping, waits only for the batch being deleted', async () => {
    const j = new GcJournal(client());
    expect(await gcReference(client(), ['sha256:x'])).to.equal('go'); // no collection
    await j.begin();
    expect(await gcReference(client(), ['sha256:journaled', 'r@sha256:m'])).to.equal('go');
    const refs = await j.sweep(['sha256:rescued', 'sha256:deleted', 'sha256:journaled']);
    expect([...refs].sort()).to.deep.equal(['r@sha256:m', 'sha256:journaled']);
    // Rescued before its claim: the collector cannot claim it.
    expect(await gcReference(client(), ['sha256:rescued'])).to.equal('go');
    expect(await j.claim(['sha256:rescued', 'sha256:deleted'])).to.deep.equal(['sha256:deleted']);
    expect(await gcReference(client(), ['sha256:other', 'sha256:deleted'])).to.equal('wait');
    await j.release(['sha256:deleted']);
    expect(await gcReference(client(), ['sha256:deleted'])).to.equal('go');
    await j.end();
    expect(await redis.client.exists(GC_KEYS.refs, GC_KEYS.doomed, GC_KEYS.deleting)).to.equal(0);
    // Ended, the lock not yet released: writes go (not taken for an older collector).
    await redis.client.set(GC_LOCK, 'ours', 'PX', 10000);
    expect(await gcReference(client(), ['sha256:x'])).to.equal('go');
    await redis.client.del(GC_LOCK, GC_KEYS.phase);
    // An older collector: the lock without the journal holds writes.
    await redis.client.set(GC_LOCK, 'old', 'PX', 10000);
    expect(await gcReference(client(), ['sha256:x'])).to.equal('hold');
    await redis.client.del(GC_LOCK);
    // Keys expire with a dead collector.
    const short = new GcJournal(client(), 1500);
    await short.begin();
    await gcReference(client(), ['sha256:y']);
    expect(await redis.client.pttl(GC_KEYS.refs)).to.be.within(1, 1500);
  });

  it('writes during a real collection are not held and keep what they reference; the rest is swept', async () => {
    let reg: TestRegistry | undefined;
    const root = await tempDir('gc-journal-');
    try {
      // A held write would get 503 after 2 s: the hooks below await them.
      reg = await startTestRegistry(`redis:\n  addr: ${redis.addr}\n`, {
        storageYaml: `  filesystem:\n    rootdirectory: ${root}\n  maintenance:\n    garbagecollect:\n      writewait: 2s\n`,
      });
      const u = reg.url;
      const a = image(1, 'amd64', 3000);
      for (const b of [a.config, ...a.layers]) await pushBlob(u, 'gc/app', b.data, b.digest);
      await pushManifest(u, 'gc/app', 'v1', a.manifest.data, a.manifest.mediaType);
      // Unreferenced blobs: two that writes will reference mid-run, one that stays orphaned.
      const [o1, o2, o3, uLayer] = [layer(1000), layer(1001), layer(1002), layer(1003)];
      for (const b of [o1, o2, o3, uLayer]) await pushBlob(u, 'gc/app', b.data, b.digest);
      // An untagged manifest, which --delete-untagged would delete, and that a write re-tags mid-run.
      const untagged = manifestOf(a.config, [uLayer]);
      const put = await pushManifest(u, 'gc/app', sha256(untagged), untagged, MT);
      const untaggedDigest = put.headers.get('docker-content-digest')!;
      await sleep(20); // everything above is older than the run's start (grace 0)

      const lock = await holdRedisLock(client(), GC_LOCK, 60000);
      const journal = new GcJournal(client());
      await journal.begin();
      const collector = new Registry(await createDriver('filesystem', { rootdirectory: root }), new NoopDescriptorCache());
      const timings: Record<string, number> = {};
      const write = async (name: string, ref: string, body: Buffer) => {
        const t = performance.now();
        const r = await req(u, 'PUT', `/v2/gc/app/manifests/${ref}`, body, { 'Content-Type': MT });
        timings[name] = performance.now() - t;
        expect(r.status, `${name}: ${r.body.toString()}`).to.equal(201);
      };
      const sum = await garbageCollect(collector, {}, {
        dryRun: false, deleteUntagged: true, graceMs: 0, journal,
        at: async (point) => {
          if (point === 'marked') {
            await write('during the mark', 'b', manifestOf(a.config, [o1]));
            await write('re-tag during the mark', 'u', untagged);
          }
          if (point === 'sweeping') await write('during the sweep', 'c', manifestOf(a.config, [o2]));
        },
      });
      await journal.end();
      await lock!.release();

      // Not held: each answered 201 while the collector waited for it (a
      // held one waits for the run's end, which waits for it: 503 at 2 s).
      expect(Object.keys(timings)).to.have.length(3);
      expect(await stored(root, o1.digest), 'referenced during the mark').to.equal(true);
      expect(await stored(root, o2.digest), 'referenced during the sweep').to.equal(true);
      expect(await stored(root, uLayer.digest), 'layer of the manifest re-tagged during the mark').to.equal(true);
      expect(await stored(root, o3.digest), 'never referenced').to.equal(false);
      expect(sum.blobsDeleted).to.deep.equal([o3.digest]);
      expect(sum.manifestsDeleted).to.deep.equal([]);
      expect(sum.rescued).to.equal(5); // the untagged manifest, its bytes and its layer, o1, o2
      for (const [ref, l] of [['b', o1], ['c', o2], ['u', uLayer]] as const) {
        const m = await req(u, 'GET', `/v2/gc/app/manifests/${ref}`, undefined, { Accept: MT });
        expect(m.status, ref).to.equal(200);
        expect((await req(u, 'GET', `/v2/gc/app/blobs/${l.digest}`)).status, `${ref}'s layer`).to.equal(200);
      }
      expect((await req(u, 'GET', `/v2/gc/app/manifests/${untaggedDigest}`, undefined, { Accept: MT })).status).to.equal(200);
      expect(await redis.client.exists(GC_KEYS.refs, GC_KEYS.doomed, GC_KEYS.deleting)).to.equal(0);
    } finally {
      await reg?.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});
