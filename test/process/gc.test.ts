// `registry garbage-collect`: agreement with docker-registry 2.8.2's dry run,
// a full collection over indexes, artifacts, mounts, several tags and deletes
// (everything left is pullable by skopeo, everything removed was
// unreferenced), the grace period, and the Redis gate on a live registry with
// a push running while the collector runs.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChildRegistry, REGISTRY_BIN, requireTool, spawnRegistry, tempDir } from '../helpers/registry.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { expectError, pushBlob, pushManifest, req } from '../helpers/http.js';
import { type Blob, type Image, blob, image, imageBlobs, index, sha256, writeLayout } from '../helpers/ociLayout.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';
import { GC_LOCK } from '../../lib/cache/redisLock.js';

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120000 }, (e, stdout, stderr) => {
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
const gc = (...args: string[]) => run(process.execPath, [REGISTRY_BIN, 'garbage-collect', ...args]);
const eligible = (out: string) => new Set([...out.matchAll(/blob eligible for deletion: (sha256:[0-9a-f]{64})/g)].map((m) => m[1]));

async function pushImage(url: string, repo: string, img: Image, ref: string): Promise<void> {
  for (const b of [img.config, ...img.layers]) await pushBlob(url, repo, b.data, b.digest);
  await pushManifest(url, repo, ref, img.manifest.data, img.manifest.mediaType);
}

/** Every blob digest under blobs/ in a filesystem store. */
async function storedBlobs(root: string): Promise<Set<string>> {
  const out = new Set<string>();
  const base = join(root, 'docker/registry/v2/blobs/sha256');
  for (const xx of await readdir(base).catch(() => [] as string[])) {
    for (const hex of await readdir(join(base, xx))) out.add(`sha256:${hex}`);
  }
  return out;
}

function artifact(subject: Blob, payload: string): { manifest: Blob; blobs: Blob[] } {
  const empty = blob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
  const sig = blob(Buffer.from(payload), 'application/vnd.example.signature');
  const manifest = blob(Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example.signature',
    config: { mediaType: empty.mediaType, digest: empty.digest, size: empty.size },
    layers: [{ mediaType: sig.mediaType, digest: sig.digest, size: sig.size }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
  })), 'application/vnd.oci.image.manifest.v1+json');
  return { manifest, blobs: [empty, sig] };
}

describe('garbage-collect', function () {
  this.timeout(180000);
  let dir: string;
  let root: string;
  let cfg: string;
  let reg: ChildRegistry | undefined;
  const config = (extra = '', maintenance = '') => `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n${maintenance}${extra}http:\n  addr: 127.0.0.1:0\n  secret: s\n`;

  beforeEach(async () => {
    dir = await tempDir('registry-gc-');
    root = join(dir, 'store');
    cfg = join(dir, 'config.yml');
    await writeFile(cfg, config());
  });
  afterEach(async () => {
    await reg?.stop();
    reg = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('names the same blobs as docker-registry 2.8.2 garbage-collect --dry-run, with and without --delete-untagged', async function () {
    if (!requireTool(this, 'docker-registry')) return;
    reg = await spawnRegistry(cfg);
    const a = image(3, 'amd64', 3000);
    const b = image(2, 'amd64', 3000);
    await pushImage(reg.url, 'gc/img', a, 'v1');
    await pushImage(reg.url, 'gc/img', b, 'v2');
    await pushManifest(reg.url, 'gc/img', 'v1-again', a.manifest.data, a.manifest.mediaType); // one manifest, two tags
    expect((await req(reg.url, 'DELETE', '/v2/gc/img/manifests/v2')).status).to.equal(202); // b is now untagged
    const orphan = randomBytes(5000);
    await pushBlob(reg.url, 'gc/img', orphan, sha256(orphan));
    expect((await req(reg.url, 'POST', `/v2/gc/mounted/blobs/uploads/?mount=${a.layers[0].digest}&from=gc/img`)).status).to.equal(201);
    await reg.stop();
    reg = undefined;

    for (const untagged of [false, true]) {
      const flag = untagged ? ['--delete-untagged'] : [];
      const theirs = await run('docker-registry', ['garbage-collect', '--dry-run', ...flag, cfg]);
      expect(theirs.code, theirs.stderr).to.equal(0);
      const ours = await gc(cfg, '--dry-run', '--grace', '0s', ...flag);
      expect(ours.code, ours.stderr).to.equal(0);
      const want = untagged
        ? new Set([sha256(orphan), b.manifest.digest, b.config.digest, ...b.layers.map((l) => l.digest)])
        : new Set([sha256(orphan)]);
      expect(eligible(theirs.stdout), theirs.stdout).to.deep.equal(want);
      expect(eligible(ours.stdout), ours.stdout).to.deep.equal(want);
    }
    // A dry run deleted nothing.
    expect((await storedBlobs(root)).has(sha256(orphan))).to.equal(true);
  });

  it('collects untagged data and keeps indexes, artifacts, mounts and every tag pullable by skopeo', async function () {
    if (!requireTool(this, 'skopeo')) return;
    reg = await spawnRegistry(cfg);
    const u = reg.url;
    // A multi-arch index, tagged; its children are untagged.
    const amd = image(2, 'amd64', 4000);
    const arm = image(2, 'arm64', 4000);
    const idx = index([{ img: amd, arch: 'amd64' }, { img: arm, arch: 'arm64' }]);
    for (const i of [amd, arm]) await pushImage(u, 'gc/multi', i, i.manifest.digest);
    await pushManifest(u, 'gc/multi', 'latest', idx.data, idx.mediaType);
    // A signature of the index (untagged, kept by its subject), and one of a manifest that goes.
    const sig = artifact(idx, 'signed index');
    for (const b2 of sig.blobs) await pushBlob(u, 'gc/multi', b2.data, b2.digest);
    await pushManifest(u, 'gc/multi', sig.manifest.digest, sig.manifest.data, sig.manifest.mediaType);
    const doomed = image(1, 'amd64', 4000);
    await pushImage(u, 'gc/multi', doomed, doomed.manifest.digest); // untagged from the start
    const doomedSig = artifact(doomed.manifest, 'signed doomed');
    for (const b2 of doomedSig.blobs) await pushBlob(u, 'gc/multi', b2.data, b2.digest);
    await pushManifest(u, 'gc/multi', doomedSig.manifest.digest, doomedSig.manifest.data, doomedSig.manifest.mediaType);
    // One manifest under several tags; another deleted by digest (its tags go with it).
    const app = image(2, 'amd64', 4000);
    await pushImage(u, 'gc/app', app, 'v1');
    await pushManifest(u, 'gc/app', 'stable', app.manifest.data, app.manifest.mediaType);
    const gone = image(2, 'amd64', 4000);
    await pushImage(u, 'gc/app', gone, 'old');
    expect((await req(u, 'DELETE', `/v2/gc/app/manifests/${gone.manifest.digest}`)).status).to.equal(202);
    // A layer shared through a mount, referenced only from the other repository.
    const mountedOnly = image(1, 'amd64', 4000);
    await pushImage(u, 'gc/src', mountedOnly, 'v1');
    expect((await req(u, 'POST', `/v2/gc/dst/blobs/uploads/?mount=${mountedOnly.layers[0].digest}&from=gc/src`)).status).to.equal(201);
    const dstOnly = image(1, 'amd64', 4000);
    await pushBlob(u, 'gc/dst', dstOnly.config.data, dstOnly.config.digest); // dst's own manifest uses the mounted layer
    const dstManifest = blob(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: dstOnly.config.mediaType, digest: dstOnly.config.digest, size: dstOnly.config.size },
      layers: [{ mediaType: mountedOnly.layers[0].mediaType, digest: mountedOnly.layers[0].digest, size: mountedOnly.layers[0].size }],
    })), 'application/vnd.oci.image.manifest.v1+json');
    await pushManifest(u, 'gc/dst', 'v1', dstManifest.data, dstManifest.mediaType);
    expect((await req(u, 'DELETE', '/v2/gc/src/manifests/v1')).status).to.equal(202); // src's manifest now untagged
    const orphan = randomBytes(3000);
    await pushBlob(u, 'gc/app', orphan, sha256(orphan));
    await reg.stop();
    reg = undefined;

    // A dry run before the first real collection reads _tmp/ alone for
    // stray temp files, and says that the real run looks everywhere once.
    const dry = await gc(cfg, '--dry-run', '--delete-untagged', '--grace', '0s');
    expect(dry.stdout).to.match(/0 stray temp files \(of _tmp\/ only: the next real run also lists every folder once/);
    const before = await storedBlobs(root);
    const res = await gc(cfg, '--delete-untagged', '--grace', '0s', '--offline');
    expect(res.code, res.stderr + res.stdout).to.equal(0);
    expect(res.stdout).to.match(/deleted \d+ manifests, \d+ blobs/);
    const after = await storedBlobs(root);
    const removed = [...before].filter((d) => !after.has(d));

    const mustGo = [sha256(orphan), doomed.manifest.digest, ...imageBlobs(doomed).map((b2) => b2.digest), doomedSig.manifest.digest,
      gone.manifest.digest, gone.config.digest, ...gone.layers.map((l) => l.digest), mountedOnly.manifest.digest, mountedOnly.config.digest,
      sha256('signed doomed')];
    const mustStay = [idx.digest, ...imageBlobs(amd).map((b2) => b2.digest), ...imageBlobs(arm).map((b2) => b2.digest), sig.manifest.digest,
      ...sig.blobs.map((b2) => b2.digest), ...imageBlobs(app).map((b2) => b2.digest), mountedOnly.layers[0].digest, dstManifest.digest, dstOnly.config.digest];
    // Exactly the unreferenced blobs went.
    expect(new Set(removed)).to.deep.equal(new Set(mustGo));
    for (const d of mustStay) expect(after.has(d), `kept ${d}`).to.equal(true);

    // Everything left is whole: skopeo pulls every tag, the index with all its platforms.
    reg = await spawnRegistry(cfg);
    const host = hostOf(reg.url);
    await skopeo('copy', '--all', `docker://${host}/gc/multi:latest`, `oci:${join(dir, 'multi')}:latest`);
    for (const [repo, tag] of [['gc/app', 'v1'], ['gc/app', 'stable'], ['gc/dst', 'v1']]) {
      await skopeo('copy', `docker://${host}/${repo}:${tag}`, `oci:${join(dir, repo.replace('/', '-'))}:${tag}`);
    }
    const refs = (await req(reg.url, 'GET', `/v2/gc/multi/referrers/${idx.digest}`)).json() as { manifests: { digest: string }[] };
    expect(refs.manifests.map((m) => m.digest)).to.deep.equal([sig.manifest.digest]);
    await expectError(req(reg.url, 'GET', `/v2/gc/multi/manifests/${doomed.manifest.digest}`), 404, 'MANIFEST_UNKNOWN');
    await expectError(req(reg.url, 'HEAD', `/v2/gc/app/blobs/${sha256(orphan)}`), 404, 'BLOB_UNKNOWN');
    expect((await req(reg.url, 'GET', '/v2/gc/app/tags/list')).json()).to.deep.equal({ name: 'gc/app', tags: ['stable', 'v1'] });
    // A second run finds nothing more.
    await reg.stop();
    reg = undefined;
    const again = await gc(cfg, '--delete-untagged', '--grace', '0s', '--offline');
    expect(again.stdout).to.match(/deleted 0 manifests, 0 blobs/);
    // That run swept every folder: a dry run now has nothing left out.
    const dryAfter = await gc(cfg, '--dry-run', '--grace', '0s');
    expect(dryAfter.stdout).to.match(/0 stray temp files; /);
  });

  it('keeps unreferenced blobs younger than the grace period, and refuses to run unsafely', async () => {
    reg = await spawnRegistry(cfg);
    const fresh = randomBytes(2000);
    await pushBlob(reg.url, 'gc/young', fresh, sha256(fresh));
    await reg.stop();
    reg = undefined;
    const refused = await gc(cfg);
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.match(/--offline/);
    const kept = await gc(cfg, '--offline'); // default grace: 1h
    expect(kept.code, kept.stderr).to.equal(0);
    expect(kept.stdout).to.match(/kept 1 unreferenced blobs younger than 1h/);
    expect((await storedBlobs(root)).has(sha256(fresh))).to.equal(true);
    const swept = await gc(cfg, '--offline', '--grace', '0s');
    expect(eligible(swept.stdout)).to.deep.equal(new Set([sha256(fresh)]));
    expect((await storedBlobs(root)).has(sha256(fresh))).to.equal(false);
  });

  describe('on a live registry with Redis', () => {
    let redis: TestRedis;
    beforeEach(async function () {
      if (!requireTool(this, 'redis-server')) return;
      redis = await startRedis();
      await writeFile(cfg, config('  cache:\n    blobdescriptor: redis\n') + `redis:\n  addr: ${redis.addr}\n`);
      await writeFile(join(dir, 'impatient.yml'), config('  cache:\n    blobdescriptor: redis\n', '    garbagecollect:\n      writewait: 1s\n') + `redis:\n  addr: ${redis.addr}\n`);
    });
    afterEach(async () => { await impatient?.stop(); impatient = undefined; await redis?.stop(); });
    let impatient: ChildRegistry | undefined;

    it('holds reference-making writes while an older collector (the lock, no journal) runs, and a push racing ours ends whole', async function () {
      if (!requireTool(this, 'skopeo')) return;
      reg = await spawnRegistry(cfg);
      const u = reg.url;
      const base = image(2, 'amd64', 4000);
      await pushImage(u, 'gc/live', base, 'v1');
      // The old gate: with the lock held and no journal (a collector of an
      // older version), manifest PUTs, commits and mounts wait (writewait:
      // 1 s on this node), then 503 with Retry-After; reads go on.
      impatient = await spawnRegistry(join(dir, 'impatient.yml'));
      await redis.client.set(GC_LOCK, 'held-by-test', 'PX', 30000);
      const img = image(1, 'amd64', 1000);
      const put = await expectError(req(impatient.url, 'PUT', '/v2/gc/live/manifests/x', img.manifest.data, { 'Content-Type': img.manifest.mediaType }), 503, 'UNAVAILABLE');
      expect(put.headers.get('retry-after')).to.equal('30');
      await expectError(req(impatient.url, 'POST', `/v2/gc/live/blobs/uploads/?digest=${img.config.digest}`, img.config.data), 503, 'UNAVAILABLE');
      await expectError(req(impatient.url, 'POST', `/v2/gc/other/blobs/uploads/?mount=${base.layers[0].digest}&from=gc/live`), 503, 'UNAVAILABLE');
      expect((await req(impatient.url, 'GET', '/v2/gc/live/manifests/v1', undefined, { Accept: base.manifest.mediaType })).status).to.equal(200);
      const busy = await gc(cfg, '--grace', '0s');
      expect(busy.code).to.equal(3);
      // A write that arrives while the lock is held completes once it is gone.
      const waiting = req(u, 'POST', `/v2/gc/live/blobs/uploads/?digest=${img.config.digest}`, img.config.data);
      await new Promise((r) => setTimeout(r, 600));
      await redis.client.del(GC_LOCK);
      expect((await waiting).status).to.equal(201);

      // A push while our collector runs is journaled, not held, and ends whole
      // (test/cache/gcJournal.test.ts pins the phases down).
      const pushed = image(3, 'arm64', 50000);
      await writeLayout(join(dir, 'in'), pushed.manifest, imageBlobs(pushed), 'v1');
      const collecting = gc(cfg, '--delete-untagged', '--grace', '0s', '--settle', '2s');
      // Start the push once the collector holds the lock, so they overlap.
      for (let i = 0; i < 200 && (await redis.client.exists(GC_LOCK)) === 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(await redis.client.exists(GC_LOCK)).to.equal(1);
      const pushing = skopeo('copy', `oci:${join(dir, 'in')}:v1`, `docker://${hostOf(u)}/gc/racing:v1`);
      const [res] = await Promise.all([collecting, pushing]);
      expect(res.code, res.stderr).to.equal(0);
      await skopeo('copy', `docker://${hostOf(u)}/gc/racing:v1`, `oci:${join(dir, 'out')}:v1`);
      await skopeo('copy', `docker://${hostOf(u)}/gc/live:v1`, `oci:${join(dir, 'out2')}:v1`);
      expect(await redis.client.exists(GC_LOCK)).to.equal(0);
    });
  });
});
