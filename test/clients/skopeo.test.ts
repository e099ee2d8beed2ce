// A real client: skopeo copies images in and out; digests must be identical.
import { expect } from 'chai';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestRegistry, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { req } from '../helpers/http.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';
import { image, imageBlobs, index, writeLayout } from '../helpers/ociLayout.js';

describe('client: skopeo', function () {
  this.timeout(120000);
  let r: TestRegistry;
  let dir: string;
  let host: string;
  before(async function () {
    requireTool(this, 'skopeo');
    r = await startTestRegistry();
    host = hostOf(r.url);
    dir = await tempDir('skopeo-');
  });
  after(async () => {
    await r?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('copies a multi-layer OCI image in and back out with identical digests', async () => {
    const img = image(4, 'amd64', 200000);
    await writeLayout(join(dir, 'in1'), img.manifest, imageBlobs(img), 'v1');
    await skopeo('copy', `oci:${join(dir, 'in1')}:v1`, `docker://${host}/skopeo/single:v1`);
    const raw = await skopeo('inspect', '--raw', `docker://${host}/skopeo/single:v1`);
    expect(Buffer.from(raw).equals(img.manifest.data)).to.equal(true);
    const info = JSON.parse(await skopeo('inspect', `docker://${host}/skopeo/single:v1`));
    expect(info.Digest).to.equal(img.manifest.digest);
    expect(info.Layers).to.deep.equal(img.layers.map((l) => l.digest));
    await skopeo('copy', `docker://${host}/skopeo/single:v1`, `oci:${join(dir, 'out1')}:v1`);
    const outIndex = JSON.parse(await readFile(join(dir, 'out1', 'index.json'), 'utf8'));
    expect(outIndex.manifests[0].digest).to.equal(img.manifest.digest);
    for (const b of imageBlobs(img)) {
      expect((await readFile(join(dir, 'out1', 'blobs', 'sha256', b.digest.slice(7)))).equals(b.data)).to.equal(true);
    }
  });

  it('copies a multi-arch index with --all, in and out', async () => {
    const a = image(2, 'amd64');
    const b = image(2, 'arm64');
    const idx = index([{ img: a, arch: 'amd64' }, { img: b, arch: 'arm64' }]);
    await writeLayout(join(dir, 'in2'), idx, [...imageBlobs(a), ...imageBlobs(b)], 'multi');
    await skopeo('copy', '--all', `oci:${join(dir, 'in2')}:multi`, `docker://${host}/skopeo/multi:v1`);
    expect(Buffer.from(await skopeo('inspect', '--raw', `docker://${host}/skopeo/multi:v1`)).equals(idx.data)).to.equal(true);
    await skopeo('copy', '--all', `docker://${host}/skopeo/multi:v1`, `oci:${join(dir, 'out2')}:multi`);
    const outIndex = JSON.parse(await readFile(join(dir, 'out2', 'index.json'), 'utf8'));
    expect(outIndex.manifests[0].digest).to.equal(idx.digest);
    for (const bl of [...imageBlobs(a), ...imageBlobs(b)]) {
      expect((await readFile(join(dir, 'out2', 'blobs', 'sha256', bl.digest.slice(7)))).equals(bl.data)).to.equal(true);
    }
  });

  it('copies between repositories of the registry (cross-repository mount) and converts to Docker schema2', async () => {
    await skopeo('copy', `docker://${host}/skopeo/single:v1`, `docker://${host}/skopeo/copy:v1`);
    expect(JSON.parse(await skopeo('inspect', `docker://${host}/skopeo/copy:v1`)).Digest)
      .to.equal(JSON.parse(await skopeo('inspect', `docker://${host}/skopeo/single:v1`)).Digest);
    await skopeo('copy', '--format', 'v2s2', `docker://${host}/skopeo/single:v1`, `docker://${host}/skopeo/docker:v1`);
    const raw = JSON.parse(await skopeo('inspect', '--raw', `docker://${host}/skopeo/docker:v1`));
    expect(raw.mediaType).to.equal('application/vnd.docker.distribution.manifest.v2+json');
  });

  it('lists tags and deletes', async () => {
    await skopeo('copy', `docker://${host}/skopeo/single:v1`, `docker://${host}/skopeo/single:v2`);
    expect(JSON.parse(await skopeo('list-tags', `docker://${host}/skopeo/single`)).Tags).to.deep.equal(['v1', 'v2']);
    const dgst = JSON.parse(await skopeo('inspect', `docker://${host}/skopeo/single:v2`)).Digest;
    await skopeo('delete', `docker://${host}/skopeo/single:v2`);
    expect((await req(r.url, 'GET', `/v2/skopeo/single/manifests/${dgst}`)).status).to.equal(404);
    expect(JSON.parse(await skopeo('list-tags', `docker://${host}/skopeo/single`)).Tags).to.deep.equal([]);
  });
});
