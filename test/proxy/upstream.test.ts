// The pull-through mode's upstream client (issue 12, first part), against
// real registries: docker-registry 2.8.2 behind htpasswd (Basic), ours behind
// token auth (Bearer from the challenge's realm, tokens cached per scope),
// anonymous, a credential helper (proxy.exec), and upstreams that are down
// or never answer.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseChallenges } from '../../lib/proxy/challenge.js';
import { execCredentials, staticCredentials } from '../../lib/proxy/credentials.js';
import { UpstreamClient, UpstreamError } from '../../lib/proxy/upstream.js';
import { type Distribution, startDistribution } from '../helpers/distribution.js';
import { type TestRegistry, freePort, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type TokenServer, startTokenServer } from '../helpers/tokenServer.js';
import { image, imageBlobs, writeLayout } from '../helpers/ociLayout.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c);
  return Buffer.concat(parts);
}

describe('proxy: WWW-Authenticate challenges', () => {
  it('reads Bearer and Basic challenges with quoted, escaped and bare values', () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).to.deep.equal([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
    ]);
    expect(parseChallenges('Basic realm="Registry \\"Realm\\"", Bearer realm=https://x/token,service=s')).to.deep.equal([
      { scheme: 'basic', params: { realm: 'Registry "Realm"' } },
      { scheme: 'bearer', params: { realm: 'https://x/token', service: 's' } },
    ]);
    expect(parseChallenges('')).to.deep.equal([]);
    expect(parseChallenges(undefined)).to.deep.equal([]);
  });
});

describe('proxy: the upstream client against real registries', function () {
  this.timeout(120000);
  let dir: string;
  let dist: Distribution;
  let ts: TokenServer;
  let tokenReg: TestRegistry;
  let open: TestRegistry;
  const img = image(2, 'amd64', 50_000);

  before(async function () {
    requireTool(this, 'skopeo');
    requireTool(this, 'docker-registry');
    requireTool(this, 'htpasswd');
    requireTool(this, 'openssl');
    dir = await tempDir('proxy-upstream-');
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, execFileSync('htpasswd', ['-Bbn', 'alice', 'secret']));
    dist = await startDistribution(join(dir, 'dist'), dir, 'upstream-secret', `auth:\n  htpasswd:\n    realm: Upstream Realm\n    path: ${htpasswd}\n`);
    ts = await startTokenServer(dir, (_u, type, name, actions) => (type === 'repository' && name.startsWith('lib/') ? actions : []));
    tokenReg = await startTestRegistry(`auth:\n  token:\n    realm: ${ts.realm}\n    service: ${ts.service}\n    issuer: ${ts.issuer}\n    rootcertbundle: ${ts.certFile}\n`, { driver: 'inmemory' });
    open = await startTestRegistry('', { driver: 'inmemory' });
    await writeLayout(join(dir, 'img'), img.manifest, imageBlobs(img), 'v1');
    for (const [url, repo] of [[dist.url, 'lib/app'], [tokenReg.url, 'lib/app'], [open.url, 'lib/app']]) {
      await skopeo('copy', '--dest-creds', 'alice:secret', `oci:${join(dir, 'img')}:v1`, `docker://${hostOf(url)}/${repo}:v1`);
    }
  });
  after(async () => {
    await dist?.stop();
    await tokenReg?.stop();
    await open?.stop();
    await ts?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function readsTheImage(up: UpstreamClient): Promise<void> {
    const head = await up.headManifest('lib/app', 'v1');
    expect(head?.digest).to.equal(img.manifest.digest);
    expect(head?.size).to.equal(img.manifest.size);
    const m = await up.getManifest('lib/app', img.manifest.digest);
    expect(sha256(m!.content)).to.equal(img.manifest.digest);
    expect(m!.mediaType).to.equal('application/vnd.oci.image.manifest.v1+json');
    const layer = img.layers[0];
    expect(await up.headBlob('lib/app', layer.digest)).to.deep.equal({ size: layer.size });
    const b = await up.getBlob('lib/app', layer.digest);
    expect(b!.size).to.equal(layer.size);
    expect(sha256(await readAll(b!.body))).to.equal(layer.digest);
    expect(await up.tags('lib/app')).to.deep.equal(['v1']);
    expect(await up.headManifest('lib/app', 'nope')).to.equal(null);
    expect(await up.getBlob('lib/app', `sha256:${'0'.repeat(64)}`)).to.equal(null);
  }

  it('Basic: docker-registry 2.8.2 behind htpasswd, with proxy.username and password', async () => {
    await readsTheImage(new UpstreamClient({ url: dist.url, credentials: staticCredentials('alice', 'secret') }));
  });

  it('Basic with wrong or no credentials: the 401 is reported, and the password is in no message', async () => {
    for (const creds of [staticCredentials('alice', 'hunter2-wrong'), undefined]) {
      const up = new UpstreamClient({ url: dist.url, credentials: creds });
      const e = await up.headManifest('lib/app', 'v1').then(() => null, (x: unknown) => x);
      expect(e).to.be.instanceOf(UpstreamError);
      expect((e as UpstreamError).status).to.equal(401);
      expect((e as Error).message).not.to.include('hunter2');
    }
  });

  it('Bearer: tokens from the challenge\'s realm, one per scope, reused, and no second try with a token just refused', async () => {
    const up = new UpstreamClient({ url: tokenReg.url, credentials: staticCredentials('alice', 'secret') });
    const before = ts.issued;
    await readsTheImage(up);
    // Nine requests on one repository; the first 401 establishes the challenge, one token serves the rest.
    expect(ts.issued - before).to.equal(1);
    expect(up.sent.token).to.equal(1);
    // A token for another repository is another scope: the token server grants nothing there, the registry refuses.
    const e = await up.headManifest('other/app', 'v1').then(() => null, (x: unknown) => x);
    expect((e as UpstreamError).status).to.equal(401);
    expect(ts.issued - before).to.equal(2);
  });

  it('Bearer with wrong credentials fails at the token service, naming it', async () => {
    const up = new UpstreamClient({ url: tokenReg.url, credentials: staticCredentials('alice', 'wrong') });
    const e = await up.headManifest('lib/app', 'v1').then(() => null, (x: unknown) => x);
    expect((e as UpstreamError).status).to.equal(401);
    expect((e as Error).message).to.include('token service').and.include('proxy.username');
  });

  it('anonymous: an open upstream needs no credentials and gets none', async () => {
    const up = new UpstreamClient({ url: open.url });
    await readsTheImage(up);
    expect(up.sent.token).to.equal(0);
  });

  it('proxy.exec: a credential helper\'s answer is used, and kept for its lifetime', async () => {
    const helper = join(dir, 'docker-credential-test');
    const calls = join(dir, 'helper-calls');
    await writeFile(helper, `#!/bin/sh\n[ "$1" = get ] || exit 1\nread host\necho "$host" >> ${calls}\necho '{"ServerURL":"'$host'","Username":"alice","Secret":"secret"}'\n`);
    await chmod(helper, 0o755);
    const up = new UpstreamClient({ url: dist.url, credentials: execCredentials(helper, 60_000) });
    await readsTheImage(up);
    const lines = execFileSync('cat', [calls], { encoding: 'utf8' }).trim().split('\n');
    expect(lines).to.deep.equal([hostOf(dist.url)]);
    const failing = execCredentials(`${helper}-missing`);
    const e = await failing.get('x').then(() => null, (x: unknown) => x);
    expect((e as Error).message).to.match(/^proxy\.exec: the credential helper failed/);
  });

  it('an upstream that is down is unreachable; one that never answers times out', async () => {
    const down = new UpstreamClient({ url: `http://127.0.0.1:${await freePort()}` });
    const e1 = await down.headManifest('lib/app', 'v1').then(() => null, (x: unknown) => x);
    expect((e1 as UpstreamError).kind).to.equal('unreachable');
    const sockets = new Set<import('node:net').Socket>();
    const silent = http.createServer(() => { /* never answers */ });
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const slow = new UpstreamClient({ url: `http://127.0.0.1:${(silent.address() as { port: number }).port}`, timeoutMs: 300 });
      const e2 = await slow.getBlob('lib/app', img.layers[0].digest).then(() => null, (x: unknown) => x);
      expect((e2 as UpstreamError).kind).to.equal('timeout');
    } finally {
      sockets.forEach((s) => s.destroy());
      await new Promise((r) => silent.close(r));
    }
  });
});
