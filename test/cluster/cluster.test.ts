// Three `registry serve` processes on one storage directory, one Redis and one
// http.secret, as behind a load balancer: any request may land on any node.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChildRegistry, requireTool, spawnRegistry, tempDir } from '../helpers/registry.js';
import { type TestRedis, startRedis } from '../helpers/redis.js';
import { expectError, pushBlob, pushManifest, req } from '../helpers/http.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';
import { uploadLockKey } from '../../lib/cache/redisLock.js';
import { blob, image, imageBlobs, sha256, writeLayout } from '../helpers/ociLayout.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('cluster: three nodes, shared storage, Redis and secret', function () {
  this.timeout(120000);
  let dir: string;
  let redis: TestRedis;
  let nodes: ChildRegistry[] = [];
  const node = (i: number) => nodes[i % nodes.length].url;

  before(async function () {
    requireTool(this, 'redis-server');
    requireTool(this, 'skopeo');
    dir = await tempDir('registry-cluster-');
    redis = await startRedis();
    const cfg = join(dir, 'config.yml');
    await writeFile(cfg, `version: 0.1\nlog:\n  level: warn\n  formatter: json\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'store')}\n  cache:\n    blobdescriptor: redis\n  delete:\n    enabled: true\nredis:\n  addr: ${redis.addr}\nhttp:\n  secret: cluster-secret\n`);
    nodes = await Promise.all([0, 1, 2].map(() => spawnRegistry(cfg)));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('takes each chunk of one upload on a different node', async () => {
    const data = randomBytes(5 << 20);
    const post = await req(node(0), 'POST', '/v2/c/chunks/blobs/uploads/');
    let loc = new URL(post.headers.get('location')!);
    const chunk = 1 << 20;
    for (let off = 0, i = 1; off < data.length; off += chunk, i++) {
      const res = await req(node(i), 'PATCH', loc.pathname + loc.search, data.subarray(off, off + chunk), { 'Content-Range': `${off}-${off + chunk - 1}` });
      expect(res.status, res.body.toString()).to.equal(202);
      loc = new URL(res.headers.get('location')!);
    }
    const put = await req(node(2), 'PUT', `${loc.pathname}${loc.search}&digest=${sha256(data)}`);
    expect(put.status, put.body.toString()).to.equal(201);
    for (let i = 0; i < 3; i++) expect(sha256((await req(node(i), 'GET', `/v2/c/chunks/blobs/${sha256(data)}`)).body)).to.equal(sha256(data));
  });

  it('releases an upload session\'s lock before answering, so the next chunk may go to any node at once', async () => {
    // The lock was released after the answer went out: a client sending its
    // next chunk on the 202 to another node could find it held (416 in CI).
    const data = randomBytes(64 << 10);
    const post = await req(node(0), 'POST', '/v2/c/lockorder/blobs/uploads/');
    let loc = new URL(post.headers.get('location')!);
    const uuid = post.headers.get('docker-upload-uuid')!;
    const key = uploadLockKey(uuid);
    const chunk = 4 << 10;
    for (let off = 0, i = 1; off < data.length; off += chunk, i++) {
      const res = await req(node(i), 'PATCH', loc.pathname + loc.search, data.subarray(off, off + chunk), { 'Content-Range': `${off}-${off + chunk - 1}` });
      expect(res.status, res.body.toString()).to.equal(202);
      expect(await redis.client.exists(key), `lock held after the 202 of chunk ${i}`).to.equal(0);
      loc = new URL(res.headers.get('location')!);
    }
    const put = await req(node(0), 'PUT', `${loc.pathname}${loc.search}&digest=${sha256(data)}`);
    expect(put.status, put.body.toString()).to.equal(201);
    expect(await redis.client.exists(key)).to.equal(0);
  });

  it('pushes through one node and pulls through another with skopeo', async () => {
    const img = image(3, 'amd64', 100000);
    await writeLayout(join(dir, 'in'), img.manifest, imageBlobs(img), 'v1');
    await skopeo('copy', `oci:${join(dir, 'in')}:v1`, `docker://${hostOf(node(0))}/c/img:v1`);
    const raw = await skopeo('inspect', '--raw', `docker://${hostOf(node(1))}/c/img:v1`);
    expect(sha256(Buffer.from(raw))).to.equal(img.manifest.digest);
    await skopeo('copy', `docker://${hostOf(node(2))}/c/img:v1`, `oci:${join(dir, 'out')}:v1`);
  });

  it('a tag moved or deleted through one node is seen by every node at once', async () => {
    const empty = blob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
    await pushBlob(node(0), 'c/tags', empty.data, empty.digest);
    const manifest = (n: number) => blob(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example',
      config: { mediaType: empty.mediaType, digest: empty.digest, size: empty.size }, layers: [],
      annotations: { n: String(n) },
    })), OCI_MANIFEST);
    for (let n = 0; n < 6; n++) {
      const m = manifest(n);
      await pushManifest(node(n), 'c/tags', 'moving', m.data, OCI_MANIFEST);
      for (let i = 0; i < 3; i++) {
        expect((await req(node(i), 'HEAD', '/v2/c/tags/manifests/moving')).headers.get('docker-content-digest')).to.equal(m.digest);
      }
    }
    const last = manifest(5);
    expect((await req(node(1), 'DELETE', `/v2/c/tags/manifests/${last.digest}`)).status).to.equal(202);
    for (let i = 0; i < 3; i++) {
      await expectError(req(node(i), 'GET', `/v2/c/tags/manifests/${last.digest}`), 404, 'MANIFEST_UNKNOWN');
      await expectError(req(node(i), 'GET', '/v2/c/tags/manifests/moving'), 404, 'MANIFEST_UNKNOWN');
    }
  });

  it('concurrent pushes of one blob and one tag through different nodes end consistent', async () => {
    const data = randomBytes(3 << 20);
    const d = sha256(data);
    await Promise.all([0, 1, 2, 3, 4, 5].map((i) => pushBlob(node(i), 'c/race', data, d)));
    const empty = blob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
    await pushBlob(node(0), 'c/race', empty.data, empty.digest);
    const ms = [0, 1, 2, 3, 4, 5].map((n) => blob(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example',
      config: { mediaType: empty.mediaType, digest: empty.digest, size: empty.size },
      layers: [{ mediaType: 'application/octet-stream', digest: d, size: data.length }],
      annotations: { n: String(n) },
    })), OCI_MANIFEST));
    await Promise.all(ms.map((m, i) => pushManifest(node(i), 'c/race', 'latest', m.data, OCI_MANIFEST)));
    const winners = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const res = await req(node(i), 'GET', '/v2/c/race/manifests/latest', undefined, { Accept: OCI_MANIFEST });
      expect(res.status).to.equal(200);
      expect(sha256(res.body)).to.equal(res.headers.get('docker-content-digest'));
      winners.add(res.headers.get('docker-content-digest')!);
    }
    expect(winners.size).to.equal(1); // one winner, seen alike by all
    expect(ms.map((m) => m.digest)).to.include([...winners][0]);
    for (const m of ms) expect((await req(node(2), 'HEAD', `/v2/c/race/manifests/${m.digest}`)).status).to.equal(200);
    expect(sha256((await req(node(1), 'GET', `/v2/c/race/blobs/${d}`)).body)).to.equal(d);
  });
});
