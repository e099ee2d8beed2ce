// Pull-through mode end to end (issue 12): one registry that mirrors three
// real upstreams under name prefixes (docker-registry 2.8.2 behind htpasswd,
// docker-registry 2.8.2 behind token auth, and ours) beside hosted
// repositories, driven by skopeo and raw HTTP; tag freshness counted on the
// upstream's access log; the upstream stopped; an upstream that rate-limits.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Distribution, startDistribution } from '../helpers/distribution.js';
import { type TestRegistry, capturingLogger, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type TokenServer, startTokenServer } from '../helpers/tokenServer.js';
import { type Blob, image, imageBlobs, index, layer, writeLayout } from '../helpers/ociLayout.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';
import { pushBlob, pushManifest, req } from '../helpers/http.js';

/** An access log that keeps its lines, to count what the upstream was asked. */
function accessLog(): { stream: PassThrough; lines: string[]; count(method: string, pathPart: string): number } {
  const stream = new PassThrough();
  const lines: string[] = [];
  let partial = '';
  stream.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  return {
    stream, lines,
    count: (method, pathPart) => lines.filter((l) => l.includes(`"${method} `) && l.includes(pathPart)).length,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pushImage(base: string, name: string, tag: string, blobs: Blob[], top: Blob): Promise<void> {
  for (const b of blobs) await pushBlob(base, name, b.data, b.digest);
  const res = await pushManifest(base, name, tag, top.data, top.mediaType);
  expect(res.status, res.body.toString()).to.equal(201);
}

describe('proxy: pull-through mode against real upstreams', function () {
  this.timeout(180000);
  let dir: string;
  let htp: Distribution;
  let tok: Distribution;
  let ts: TokenServer;
  let ours: TestRegistry;
  const oursLog = accessLog();
  let proxy: TestRegistry;
  const captured = capturingLogger('warn');
  const amd = image(2, 'amd64', 40_000);
  const arm = image(2, 'arm64', 40_000);
  const multi = index([{ img: amd, arch: 'amd64' }, { img: arm, arch: 'arm64' }]);
  const multiBlobs = [...imageBlobs(amd), ...imageBlobs(arm)];

  before(async function () {
    for (const t of ['skopeo', 'docker-registry', 'htpasswd', 'openssl']) requireTool(this, t);
    dir = await tempDir('proxy-e2e-');
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, execFileSync('htpasswd', ['-Bbn', 'alice', 'secret']));
    htp = await startDistribution(join(dir, 'htp'), dir, 'htp-secret', `auth:\n  htpasswd:\n    realm: Upstream Realm\n    path: ${htpasswd}\n`);
    ts = await startTokenServer(dir, (_u, type, _name, actions) => (type === 'repository' ? actions : []));
    tok = await startDistribution(join(dir, 'tok'), dir, 'tok-secret', `auth:\n  token:\n    realm: ${ts.realm}\n    service: ${ts.service}\n    issuer: ${ts.issuer}\n    rootcertbundle: ${ts.certFile}\n`);
    ours = await startTestRegistry('', { driver: 'inmemory', accessLog: oursLog.stream });
    await writeLayout(join(dir, 'multi'), multi, multiBlobs, 'v1');
    for (const url of [htp.url, tok.url]) {
      await skopeo('copy', '--all', '--dest-creds', 'alice:secret', `oci:${join(dir, 'multi')}:v1`, `docker://${hostOf(url)}/team/app:v1`);
    }
    await skopeo('copy', '--all', `oci:${join(dir, 'multi')}:v1`, `docker://${hostOf(ours.url)}/library/app:v1`);
    proxy = await startTestRegistry(`proxy:\n  remotes:\n`
      + `    - prefix: htp\n      remoteurl: ${htp.url}\n      username: alice\n      password: secret\n`
      + `      tagttl: 0s\n    - prefix: tok\n      remoteurl: ${tok.url}\n      username: alice\n      password: secret\n`
      + `    - prefix: ours\n      remoteurl: ${ours.url}\n      library: true\n      tagttl: 2s\n`, { log: captured.log });
  });
  after(async () => {
    await proxy?.stop();
    await htp?.stop();
    await tok?.stop();
    await ours?.stop();
    await ts?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('skopeo copies a multi-arch image through each upstream, digests and bytes unchanged', async () => {
    for (const name of ['htp/team/app', 'tok/team/app', 'ours/app']) {
      const out = join(dir, `out-${name.replace(/\//g, '-')}`);
      await skopeo('copy', '--all', `docker://${hostOf(proxy.url)}/${name}:v1`, `oci:${out}:v1`);
      const idx = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      expect(idx.manifests[0].digest, name).to.equal(multi.digest);
      for (const b of multiBlobs) expect((await readFile(join(out, 'blobs', 'sha256', b.digest.slice(7)))).equals(b.data), `${name} ${b.digest}`).to.equal(true);
      const raw = await skopeo('inspect', '--raw', `docker://${hostOf(proxy.url)}/${name}@${multi.digest}`);
      expect(Buffer.from(raw).equals(multi.data)).to.equal(true);
    }
    // The token upstream was asked for tokens: the Bearer flow ran.
    expect(ts.issued).to.be.greaterThan(0);
    // Cached now: the blob is in the proxy's own storage under the local name.
    const r = await req(proxy.url, 'HEAD', `/v2/htp/team/app/blobs/${amd.layers[0].digest}`);
    expect(r.status).to.equal(200);
    expect(r.headers.get('content-length')).to.equal(String(amd.layers[0].size));
  });

  it('refuses writes to proxied repositories with 405 UNSUPPORTED, and hosts the other names', async () => {
    const up = await req(proxy.url, 'POST', '/v2/htp/team/app/blobs/uploads/');
    expect(up.status).to.equal(405);
    expect(((await up.json()) as { errors: { code: string }[] }).errors[0].code).to.equal('UNSUPPORTED');
    const put = await req(proxy.url, 'PUT', '/v2/ours/app/manifests/v9', amd.manifest.data, { 'Content-Type': amd.manifest.mediaType });
    expect(put.status).to.equal(405);
    const del = await req(proxy.url, 'DELETE', `/v2/tok/team/app/manifests/${multi.digest}`);
    expect(del.status).to.equal(405);
    // A hosted name beside the prefixes takes pushes as usual.
    await pushImage(proxy.url, 'mine/app', 'v1', imageBlobs(amd).slice(0, -1), amd.manifest);
    const got = await req(proxy.url, 'GET', '/v2/mine/app/manifests/v1', undefined, { Accept: amd.manifest.mediaType });
    expect(got.status).to.equal(200);
    // Names under no prefix are not looked up anywhere.
    expect((await req(proxy.url, 'GET', '/v2/nobody/app/manifests/v1')).status).to.equal(404);
  });

  it('revalidates a tag with one HEAD per tag ttl, no GET while it is unchanged, and sees it move after the ttl', async () => {
    const path = '/v2/library/app/manifests/v1';
    await sleep(2100); // the ttl since the first test's pulls
    const heads0 = oursLog.count('HEAD', path);
    const gets0 = oursLog.count('GET', path);
    const accept = { Accept: multi.mediaType };
    for (let i = 0; i < 5; i++) expect((await req(proxy.url, 'GET', '/v2/ours/app/manifests/v1', undefined, accept)).headers.get('docker-content-digest')).to.equal(multi.digest);
    expect(oursLog.count('HEAD', path) - heads0, 'one HEAD in the ttl').to.equal(1);
    expect(oursLog.count('GET', path) - gets0, 'no GET for an unchanged tag').to.equal(0);
    // Move the tag upstream.
    const moved = image(1, 'amd64', 10_000);
    await pushImage(ours.url, 'library/app', 'v1', imageBlobs(moved).slice(0, -1), moved.manifest);
    const now = await req(proxy.url, 'GET', '/v2/ours/app/manifests/v1', undefined, { Accept: '*/*' });
    expect(now.headers.get('docker-content-digest'), 'not before the ttl').to.equal(multi.digest);
    await sleep(2100);
    const later = await req(proxy.url, 'GET', '/v2/ours/app/manifests/v1', undefined, { Accept: '*/*' });
    expect(later.headers.get('docker-content-digest'), 'after the ttl').to.equal(moved.manifest.digest);
    expect(later.body.equals(moved.manifest.data)).to.equal(true);
    // The blobs of the moved image come through too.
    const b = await req(proxy.url, 'GET', `/v2/ours/app/blobs/${moved.layers[0].digest}`);
    expect(b.body.equals(moved.layers[0].data)).to.equal(true);
    // The upstream's tags list, through the proxy.
    const tags = await req(proxy.url, 'GET', '/v2/ours/app/tags/list');
    expect(((await tags.json()) as { tags: string[] }).tags).to.deep.equal(['v1']);
  });

  it('answers referrers from the upstream, filtered by artifactType, and from the cache where the upstream has no referrers API', async () => {
    // An artifact whose subject is the amd64 image, pushed to our upstream.
    const cfg = Buffer.from('{}');
    const cfgDigest = `sha256:${createHash('sha256').update(cfg).digest('hex')}`;
    await pushBlob(ours.url, 'library/app', cfg, cfgDigest);
    const art = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example.sbom',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: cfgDigest, size: cfg.length },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: cfgDigest, size: cfg.length }],
      subject: { mediaType: amd.manifest.mediaType, digest: amd.manifest.digest, size: amd.manifest.size },
    }));
    const artDigest = `sha256:${createHash('sha256').update(art).digest('hex')}`;
    expect((await pushManifest(ours.url, 'library/app', artDigest, art, 'application/vnd.oci.image.manifest.v1+json')).status).to.equal(201);
    const all = await req(proxy.url, 'GET', `/v2/ours/app/referrers/${amd.manifest.digest}`);
    expect(all.status).to.equal(200);
    expect((all.json().manifests as { digest: string }[]).map((m) => m.digest)).to.deep.equal([artDigest]);
    const none = await req(proxy.url, 'GET', `/v2/ours/app/referrers/${amd.manifest.digest}?artifactType=application/vnd.other`);
    expect(none.headers.get('oci-filters-applied')).to.equal('artifactType');
    expect(none.json().manifests).to.deep.equal([]);
    // docker-registry 2.8.2 has no referrers API: the (empty) cached list.
    const dist = await req(proxy.url, 'GET', `/v2/htp/team/app/referrers/${amd.manifest.digest}`);
    expect(dist.status).to.equal(200);
    expect(dist.json().manifests).to.deep.equal([]);
  });

  it('20 concurrent cold pulls of a 64 MiB layer make one upstream GET, and all get the right bytes', async () => {
    const big = layer(64 << 20);
    await pushBlob(ours.url, 'library/big', big.data, big.digest);
    const before = oursLog.count('GET', `/v2/library/big/blobs/${big.digest}`);
    // Each client hashes what it receives (with node's http: buffering 20 bodies would be the bottleneck).
    const results = await Promise.all(Array.from({ length: 20 }, () => new Promise<string>((resolve, reject) => {
      http.get(`${proxy.url}/v2/ours/big/blobs/${big.digest}`, (res) => {
        const h = createHash('sha256');
        res.on('data', (d: Buffer) => h.update(d));
        res.on('end', () => resolve(`${res.statusCode} sha256:${h.digest('hex')}`));
        res.on('error', reject);
      }).on('error', reject);
    })));
    expect(results).to.deep.equal(Array(20).fill(`200 ${big.digest}`));
    await sleep(100);
    expect(oursLog.count('GET', `/v2/library/big/blobs/${big.digest}`) - before).to.equal(1);
  });

  it('with the upstream stopped, every image pulled before still pulls; a new one gets a clean 502', async () => {
    await htp.stop();
    const out = join(dir, 'after-stop');
    await mkdir(out, { recursive: true });
    // By tag (revalidation fails: the cached tag is served) and by digest.
    await skopeo('copy', '--all', `docker://${hostOf(proxy.url)}/htp/team/app:v1`, `oci:${out}:v1`);
    const idx = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(idx.manifests[0].digest).to.equal(multi.digest);
    expect(captured.records.some((r) => String(r.msg).includes('stale-if-error'))).to.equal(true);
    const fresh = await req(proxy.url, 'GET', '/v2/htp/team/never/manifests/v1');
    expect(fresh.status).to.equal(502);
    const body = (await fresh.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0].code).to.equal('UNAVAILABLE');
    expect(body.errors[0].message).to.match(/unreachable/);
    // The upstream's tags list falls back to the cached tags.
    const tags = await req(proxy.url, 'GET', '/v2/htp/team/app/tags/list');
    expect(((await tags.json()) as { tags: string[] }).tags).to.deep.equal(['v1']);
    const vars = proxy.registry.proxy!.vars() as { manifests: { stale: number } };
    expect(vars.manifests.stale).to.be.greaterThan(0);
  });
});

describe('proxy: an upstream that rate-limits', function () {
  this.timeout(60000);
  let limiter: http.Server;
  let limited = false;
  let upstream: TestRegistry;
  let proxy: TestRegistry;
  const img = image(1, 'amd64', 3000);

  before(async () => {
    upstream = await startTestRegistry('', { driver: 'inmemory' });
    await pushImage(upstream.url, 'lib/app', 'v1', imageBlobs(img).slice(0, -1), img.manifest);
    // In front of a real registry: answers 429 while `limited`, else forwards.
    const target = new URL(upstream.url);
    limiter = http.createServer((rq, rs) => {
      if (limited) { rs.writeHead(429, { 'Retry-After': '17', 'Content-Type': 'application/json' }).end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'); return; }
      const fwd = http.request({ host: target.hostname, port: target.port, method: rq.method, path: rq.url, headers: rq.headers }, (up) => {
        rs.writeHead(up.statusCode!, up.headers);
        up.pipe(rs);
      });
      rq.pipe(fwd);
    });
    await new Promise<void>((r) => limiter.listen(0, '127.0.0.1', r));
    const port = (limiter.address() as AddressInfo).port;
    proxy = await startTestRegistry(`proxy:\n  remoteurl: http://127.0.0.1:${port}\n  tagttl: 0s\n`, {
      driver: 'inmemory', httpExtra: '  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n',
    });
  });
  after(async () => {
    await proxy?.stop();
    await new Promise<void>((r) => (limiter ? limiter.close(() => r()) : r()));
    await upstream?.stop();
  });

  it('answers TOOMANYREQUESTS with the upstream\'s Retry-After when nothing is cached, and serves the cached copy when something is', async () => {
    limited = true;
    const r = await req(proxy.url, 'GET', '/v2/lib/app/manifests/v1');
    expect(r.status).to.equal(429);
    expect(r.headers.get('retry-after')).to.equal('17');
    expect(((await r.json()) as { errors: { code: string }[] }).errors[0].code).to.equal('TOOMANYREQUESTS');
    const b = await req(proxy.url, 'GET', `/v2/lib/app/blobs/${img.layers[0].digest}`);
    expect(b.status).to.equal(429);
    limited = false;
    const ok = await req(proxy.url, 'GET', '/v2/lib/app/manifests/v1', undefined, { Accept: img.manifest.mediaType });
    expect(ok.status).to.equal(200);
    expect((await req(proxy.url, 'GET', `/v2/lib/app/blobs/${img.layers[0].digest}`)).status).to.equal(200);
    limited = true;
    // tagttl 0: every pull by tag asks; the 429 is absorbed by the cache.
    const stale = await req(proxy.url, 'GET', '/v2/lib/app/manifests/v1', undefined, { Accept: img.manifest.mediaType });
    expect(stale.status).to.equal(200);
    expect(stale.headers.get('docker-content-digest')).to.equal(img.manifest.digest);
    expect((await req(proxy.url, 'GET', `/v2/lib/app/blobs/${img.layers[0].digest}`)).status).to.equal(200);
    limited = false;
    // distribution's counters and ours, in a text promtool accepts.
    const text = await proxy.app.metrics!.registry.metrics();
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('registry_proxy_upstream_errors_total{kind="429"}')).to.be.at.least(3);
    expect(value('registry_proxy_stale_served_total{type="manifest"}')).to.equal(1);
    expect(value('registry_proxy_misses_total{type="blob"}')).to.equal(1);
    expect(value('registry_proxy_hits_total{type="blob"}')).to.equal(1);
    expect(value('registry_proxy_pulled_bytes_total{type="blob"}')).to.equal(img.layers[0].size);
    expect(value('registry_proxy_requests_total{type="manifest"}')).to.equal(2);
    if (spawnSync('promtool', ['--version']).status === 0) {
      const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(lint.status, lint.stdout + lint.stderr).to.equal(0);
    } else if (process.env.CI === 'true') {
      throw new Error('promtool is missing');
    }
  });
});
