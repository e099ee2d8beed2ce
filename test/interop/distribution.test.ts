// Interop with docker/distribution 2.8.2 on one storage directory: each
// serves what the other wrote, and an upload begun on one finishes on the other.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestRegistry, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type Distribution, startDistribution } from '../helpers/distribution.js';
import { pushBlob, req } from '../helpers/http.js';
import { type TestRedis, startRedis } from '../helpers/redis.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';
import { image, imageBlobs, index, sha256, writeLayout } from '../helpers/ociLayout.js';

describe('interop: docker/distribution 2.8.2 on the same storage', function () {
  this.timeout(120000);
  let dir: string;
  let root: string;
  let ours: TestRegistry | undefined;
  let theirs: Distribution | undefined;

  before(function () {
    requireTool(this, 'docker-registry');
    requireTool(this, 'skopeo');
  });
  beforeEach(async () => {
    dir = await tempDir('interop-');
    root = join(dir, 'store');
    ours = await startTestRegistry('', { root, secret: 'interop-secret' });
    theirs = await startDistribution(root, dir);
  });
  afterEach(async () => {
    await ours?.stop();
    await theirs?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function pushLayouts(target: string): Promise<{ single: string; multi: string }> {
    const img = image(3, 'amd64', 50000);
    await writeLayout(join(dir, 'single'), img.manifest, imageBlobs(img), 'v1');
    const a = image(2, 'amd64');
    const b = image(2, 'arm64');
    const idx = index([{ img: a, arch: 'amd64' }, { img: b, arch: 'arm64' }]);
    await writeLayout(join(dir, 'multi'), idx, [...imageBlobs(a), ...imageBlobs(b)], 'v1');
    await skopeo('copy', `oci:${join(dir, 'single')}:v1`, `docker://${target}/interop/single:v1`);
    await skopeo('copy', '--all', `oci:${join(dir, 'multi')}:v1`, `docker://${target}/interop/multi:v1`);
    return { single: img.manifest.digest, multi: idx.digest };
  }

  async function checkServes(host: string, want: { single: string; multi: string }, out: string): Promise<void> {
    expect(sha256(Buffer.from(await skopeo('inspect', '--raw', `docker://${host}/interop/single:v1`)))).to.equal(want.single);
    expect(sha256(Buffer.from(await skopeo('inspect', '--raw', `docker://${host}/interop/multi:v1`)))).to.equal(want.multi);
    await skopeo('copy', '--all', `docker://${host}/interop/multi:v1`, `oci:${out}:v1`);
    const idx = JSON.parse(await readFile(join(out, 'index.json'), 'utf8'));
    expect(idx.manifests[0].digest).to.equal(want.multi);
    for (const f of await readdir(join(out, 'blobs', 'sha256'))) {
      expect(sha256(await readFile(join(out, 'blobs', 'sha256', f)))).to.equal(`sha256:${f}`);
    }
    expect(JSON.parse(await skopeo('list-tags', `docker://${host}/interop/single`)).Tags).to.deep.equal(['v1']);
  }

  it('serves a directory written by docker-registry with identical digests', async () => {
    const want = await pushLayouts(hostOf(theirs!.url));
    await checkServes(hostOf(ours!.url), want, join(dir, 'out-ours'));
    const cat = (await req(ours!.url, 'GET', '/v2/_catalog')).json();
    expect(cat.repositories).to.deep.equal(['interop/multi', 'interop/single']);
  });

  it('docker-registry serves a directory we wrote', async () => {
    const want = await pushLayouts(hostOf(ours!.url));
    await checkServes(hostOf(theirs!.url), want, join(dir, 'out-theirs'));
    const cat = (await req(theirs!.url, 'GET', '/v2/_catalog')).json();
    // Our digest-to-tags index is there, and distribution does not take it for a repository.
    await stat(join(root, 'docker/registry/v2/repositories/interop/single/_tagindex/complete'));
    expect(cat.repositories).to.deep.equal(['interop/multi', 'interop/single']);
  });

  it('pages the catalog in distribution\'s order (component by component), wherever a page starts', async () => {
    // Names where component order and plain string order differ (a/b before
    // a-c, as distribution's lessPath orders them), nested repositories, and
    // folders that are not repositories.
    const names = ['a', 'a/b', 'a/b/c', 'a-c', 'a.d', 'b/x/y', 'b0', 'interop/multi', 'interop/single', 'z9/deep/er/name', 'zz'];
    await pushLayouts(hostOf(theirs!.url));
    const repos = join(root, 'docker/registry/v2/repositories');
    for (const n of names) if (!n.startsWith('interop/')) await mkdir(join(repos, n, '_manifests/tags'), { recursive: true });
    await mkdir(join(repos, 'empty/folder'), { recursive: true });
    await mkdir(join(repos, 'only/_uploads/x'), { recursive: true });
    const pages = async (n: number) => {
      const seen: string[] = [];
      let path = `/v2/_catalog?n=${n}`;
      for (let i = 0; i < 20 && path; i++) {
        const res = await req(ours!.url, 'GET', path);
        expect(res.status).to.equal(200);
        const page = res.json().repositories as string[];
        expect(page.length).to.be.at.most(n);
        seen.push(...page);
        const link = res.headers.get('link');
        path = link ? /^<([^>]+)>/.exec(link)![1] : '';
      }
      return seen;
    };
    expect((await req(ours!.url, 'GET', '/v2/_catalog')).json().repositories).to.deep.equal(names);
    for (const n of [1, 2, 4, 100]) expect(await pages(n), `n=${n}`).to.deep.equal(names);
    // A page may start after any name, a repository or not.
    for (const [last, want] of [['a/a', ['a/b', 'a/b/c']], ['a/b', ['a/b/c', 'a-c']], ['a/b/d', ['a-c', 'a.d']], ['b', ['b/x/y', 'b0']], ['c', ['interop/multi', 'interop/single']], ['zzz', []]] as const) {
      const q = `/v2/_catalog?n=2&last=${encodeURIComponent(last)}`;
      expect((await req(ours!.url, 'GET', q)).json().repositories, last).to.deep.equal(want);
    }
    // docker-registry sees the repositories it wrote in the same order.
    expect((await req(theirs!.url, 'GET', '/v2/_catalog?n=1&last=interop%2Fmulti')).json().repositories).to.deep.equal(['interop/single']);
  });

  it('finishes an upload that docker-registry began, through its upload URL and from its saved hash state', async () => {
    const data = randomBytes(3 << 20);
    const post = await req(theirs!.url, 'POST', '/v2/interop/up/blobs/uploads/');
    expect(post.status).to.equal(202);
    const theirLoc = new URL(post.headers.get('location')!, theirs!.url);
    const patch = await req(theirs!.url, 'PATCH', theirLoc.pathname + theirLoc.search, data.subarray(0, 2 << 20), { 'Content-Type': 'application/octet-stream' });
    expect(patch.status, patch.body.toString()).to.equal(202);
    const id = post.headers.get('docker-upload-uuid')!;
    const upload = join(root, 'docker/registry/v2/repositories/interop/up/_uploads', id);
    expect(await readdir(join(upload, 'hashstates/sha256'))).to.include(String(2 << 20));
    // Only a hasher that loads Go's saved state (not one that re-reads) gets past this.
    const fh = await open(join(upload, 'data'), 'r+');
    await fh.write(Buffer.alloc(4096), 0, 4096, 0);
    await fh.close();
    // distribution's own upload URL (with its signed _state), sent to us
    const patchLoc = new URL(patch.headers.get('location')!, theirs!.url);
    const ours2 = await req(ours!.url, 'PATCH', patchLoc.pathname + patchLoc.search, data.subarray(2 << 20));
    expect(ours2.status, ours2.body.toString()).to.equal(202);
    const ourLoc = new URL(ours2.headers.get('location')!);
    const put = await req(ours!.url, 'PUT', `${ourLoc.pathname}${ourLoc.search}&digest=${sha256(data)}`);
    expect(put.status, put.body.toString()).to.equal(201);
  });

  it('docker-registry finishes an upload that we began, through our upload URL and from our saved hash state', async () => {
    const data = randomBytes(3 << 20);
    const post = await req(ours!.url, 'POST', '/v2/interop/up2/blobs/uploads/');
    const id = post.headers.get('docker-upload-uuid')!;
    const postLoc = new URL(post.headers.get('location')!);
    const patch = await req(ours!.url, 'PATCH', postLoc.pathname + postLoc.search, data.subarray(0, 2 << 20));
    expect(patch.status).to.equal(202);
    const upload = join(root, 'docker/registry/v2/repositories/interop/up2/_uploads', id);
    const fh = await open(join(upload, 'data'), 'r+');
    await fh.write(Buffer.alloc(4096), 0, 4096, 0);
    await fh.close();
    // our upload URL (signed _state in distribution's format), sent to distribution
    const theirLoc = new URL(patch.headers.get('location')!);
    const put = await req(theirs!.url, 'PUT', `${theirLoc.pathname}${theirLoc.search}&digest=${sha256(data)}`, data.subarray(2 << 20), { 'Content-Type': 'application/octet-stream' });
    expect(put.status, put.body.toString()).to.equal(201);
    expect(put.headers.get('docker-content-digest')).to.equal(sha256(data));
  });
});

describe('interop: docker/distribution 2.8.2 and us sharing one Redis descriptor cache', function () {
  this.timeout(60000);
  let dir: string;
  let root: string;
  let redis: TestRedis;
  let ours: TestRegistry | undefined;
  let theirs: Distribution | undefined;

  before(async function () {
    requireTool(this, 'docker-registry');
    requireTool(this, 'redis-server');
    redis = await startRedis();
    dir = await tempDir('interop-redis-');
    root = join(dir, 'store');
    ours = await startTestRegistry(`redis:\n  addr: ${redis.addr}\n`, { root, secret: 'interop-secret', cache: 'redis' });
    theirs = await startDistribution(root, dir, 'interop-secret', `  cache:\n    blobdescriptor: redis\nredis:\n  addr: ${redis.addr}\n`);
  });
  after(async () => {
    await ours?.stop();
    await theirs?.stop();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const linkDir = (repo: string, d: string) => join(root, 'docker/registry/v2/repositories', repo, '_layers/sha256', d.slice(7));

  it('we read the entries distribution writes', async () => {
    const data = randomBytes(777);
    const d = sha256(data);
    const post = await req(theirs!.url, 'POST', '/v2/mixed/a/blobs/uploads/');
    const loc = new URL(post.headers.get('location')!, theirs!.url);
    expect((await req(theirs!.url, 'PUT', `${loc.pathname}${loc.search}&digest=${d}`, data)).status).to.equal(201);
    expect((await req(theirs!.url, 'HEAD', `/v2/mixed/a/blobs/${d}`)).status).to.equal(200);
    expect(await redis.client.hget(`blobs::${d}`, 'size')).to.equal('777');
    expect(await redis.client.sismember('repository::mixed/a::blobs', d)).to.equal(1);
    await rm(linkDir('mixed/a', d), { recursive: true }); // only the shared cache still knows
    const head = await req(ours!.url, 'HEAD', `/v2/mixed/a/blobs/${d}`);
    expect(head.status).to.equal(200);
    expect(head.headers.get('content-length')).to.equal('777');
  });

  it('distribution reads the entries we write', async () => {
    const data = randomBytes(555);
    const d = sha256(data);
    await pushBlob(ours!.url, 'mixed/b', data, d);
    await rm(linkDir('mixed/b', d), { recursive: true });
    const head = await req(theirs!.url, 'HEAD', `/v2/mixed/b/blobs/${d}`);
    expect(head.status).to.equal(200);
    expect(head.headers.get('content-length')).to.equal('555');
  });
});
