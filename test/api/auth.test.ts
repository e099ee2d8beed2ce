// auth: htpasswd (entries written by Apache's htpasswd -B) and distribution's
// token scheme (a token server the test runs), over raw HTTP and with skopeo.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import { appendFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestRegistry, capturingLogger, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { expectError, req } from '../helpers/http.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';
import { type Image, image, imageBlobs, sha256, writeLayout } from '../helpers/ociLayout.js';
import { type TokenServer, startTokenServer } from '../helpers/tokenServer.js';

const basic = (user: string, pass: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

async function pushImageWith(url: string, repo: string, img: Image, ref: string, headers: Record<string, string>): Promise<void> {
  for (const b of [img.config, ...img.layers]) {
    const r = await req(url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, b.data, headers);
    expect(r.status, r.body.toString()).to.equal(201);
  }
  const r = await req(url, 'PUT', `/v2/${repo}/manifests/${ref}`, img.manifest.data, { 'Content-Type': img.manifest.mediaType, ...headers });
  expect(r.status, r.body.toString()).to.equal(201);
}

describe('auth: htpasswd', function () {
  this.timeout(60000);
  let dir: string;
  let r: TestRegistry;
  let file: string;
  before(async function () {
    if (!requireTool(this, 'htpasswd')) return;
    dir = await tempDir('auth-htpasswd-');
    file = join(dir, 'htpasswd');
    await writeFile(file, execFileSync('htpasswd', ['-Bbn', 'alice', 'secret']));
    r = await startTestRegistry(`auth:\n  htpasswd:\n    realm: Test Realm\n    path: ${file}\n`, { driver: 'inmemory' });
  });
  after(async () => { await r?.stop(); if (dir) await rm(dir, { recursive: true, force: true }); });

  it('challenges without credentials, refuses wrong ones, and lets the user in', async () => {
    for (const m of ['GET', 'HEAD']) {
      const res = await req(r.url, m, '/v2/');
      expect(res.status).to.equal(401);
      expect(res.headers.get('www-authenticate')).to.equal('Basic realm="Test Realm"');
    }
    const denied = await expectError(req(r.url, 'GET', '/v2/x/tags/list'), 401, 'UNAUTHORIZED');
    expect((denied.json() as { errors: { detail: unknown }[] }).errors[0].detail).to.deep.equal([{ Type: 'repository', Name: 'x', Action: 'pull' }]);
    await expectError(req(r.url, 'GET', '/v2/', undefined, basic('alice', 'wrong')), 401, 'UNAUTHORIZED');
    await expectError(req(r.url, 'GET', '/v2/', undefined, basic('mallory', 'secret')), 401, 'UNAUTHORIZED');
    await expectError(req(r.url, 'GET', '/v2/', undefined, { Authorization: 'Basic !!!notbase64' }), 401, 'UNAUTHORIZED');
    expect((await req(r.url, 'GET', '/v2/', undefined, basic('alice', 'secret'))).status).to.equal(200);
    const data = randomBytes(1000);
    expect((await req(r.url, 'POST', `/v2/h/repo/blobs/uploads/?digest=${sha256(data)}`, data, basic('alice', 'secret'))).status).to.equal(201);
    await expectError(req(r.url, 'GET', `/v2/h/repo/blobs/${sha256(data)}`), 401, 'UNAUTHORIZED');
  });

  it('sees users added to the file while running', async () => {
    await appendFile(file, execFileSync('htpasswd', ['-Bbn', 'bob', 'hunter2']));
    await new Promise((res) => setTimeout(res, 5200)); // the file is checked at most every 5 s
    expect((await req(r.url, 'GET', '/v2/', undefined, basic('bob', 'hunter2'))).status).to.equal(200);
  });

  it('skopeo pushes and pulls with --creds, and is refused without', async function () {
    if (!requireTool(this, 'skopeo')) return;
    const img = image(2, 'amd64', 3000);
    await writeLayout(join(dir, 'in'), img.manifest, imageBlobs(img), 'v1');
    await skopeo('copy', '--dest-creds', 'alice:secret', `oci:${join(dir, 'in')}:v1`, `docker://${hostOf(r.url)}/h/img:v1`);
    const raw = await skopeo('inspect', '--raw', '--creds', 'alice:secret', `docker://${hostOf(r.url)}/h/img:v1`);
    expect(sha256(Buffer.from(raw))).to.equal(img.manifest.digest);
    try {
      await skopeo('inspect', '--raw', '--no-creds', `docker://${hostOf(r.url)}/h/img:v1`);
      expect.fail('skopeo read without credentials');
    } catch (e) {
      expect((e as Error).message).to.match(/401|unauthorized|authentication required/i);
    }
  });
});

describe('auth: token', function () {
  this.timeout(60000);
  let dir: string;
  let ts: TokenServer;
  let r: TestRegistry;
  let jwksReg: TestRegistry;
  const policy = (_user: string, type: string, name: string, actions: string[]) => {
    if (type === 'registry' && name === 'catalog') return actions;
    if (type !== 'repository') return [];
    if (name.startsWith('allowed/')) return actions.filter((a) => ['pull', 'push', 'delete'].includes(a));
    if (name.startsWith('readonly/')) return actions.filter((a) => a === 'pull');
    return [];
  };
  before(async function () {
    if (!requireTool(this, 'openssl')) return;
    dir = await tempDir('auth-token-');
    ts = await startTokenServer(dir, policy);
    const section = (keys: string) => `auth:\n  token:\n    realm: ${ts.realm}\n    service: ${ts.service}\n    issuer: ${ts.issuer}\n${keys}`;
    r = await startTestRegistry(section(`    rootcertbundle: ${ts.certFile}\n`), { driver: 'inmemory' });
    jwksReg = await startTestRegistry(section(`    jwks: ${ts.jwksFile}\n`), { driver: 'inmemory' });
  });
  after(async () => {
    await r?.stop();
    await jwksReg?.stop();
    await ts?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('challenges with realm, service and the scope the request needs', async () => {
    const res = await expectError(req(r.url, 'GET', '/v2/allowed/app/tags/list'), 401, 'UNAUTHORIZED');
    expect(res.headers.get('www-authenticate')).to.equal(`Bearer realm="${ts.realm}",service="${ts.service}",scope="repository:allowed/app:pull"`);
    const put = await expectError(req(r.url, 'POST', '/v2/allowed/app/blobs/uploads/'), 401, 'UNAUTHORIZED');
    expect(put.headers.get('www-authenticate')).to.include('scope="repository:allowed/app:pull,push"');
    const cat = await expectError(req(r.url, 'GET', '/v2/_catalog'), 401, 'UNAUTHORIZED');
    expect(cat.headers.get('www-authenticate')).to.include('scope="registry:catalog:*"');
    const base = await req(r.url, 'GET', '/v2/');
    expect(base.status).to.equal(401);
    expect(base.headers.get('www-authenticate')).to.equal(`Bearer realm="${ts.realm}",service="${ts.service}"`);
  });

  it('checks signature, issuer, audience, expiry, not-before and scope on every endpoint', async () => {
    const pushPull = [{ type: 'repository', name: 'allowed/app', actions: ['pull', 'push'] }];
    const good = await ts.sign(pushPull);
    const data = randomBytes(500);
    expect((await req(r.url, 'POST', `/v2/allowed/app/blobs/uploads/?digest=${sha256(data)}`, data, bearer(good))).status).to.equal(201);
    expect((await req(r.url, 'GET', `/v2/allowed/app/blobs/${sha256(data)}`, undefined, bearer(good))).status).to.equal(200);
    expect((await req(r.url, 'GET', '/v2/', undefined, bearer(good))).status).to.equal(200);
    expect((await req(r.url, 'GET', `/v2/allowed/app/blobs/${sha256(data)}`, undefined, bearer(await ts.sign(pushPull, { header: 'x5c' })))).status).to.equal(200);
    for (const [why, token] of [
      ['expired', await ts.sign(pushPull, { expiresIn: -120 })],
      ['not yet valid', await ts.sign(pushPull, { notBefore: Math.floor(Date.now() / 1000) + 600 })],
      ['for another service', await ts.sign(pushPull, { aud: 'another-registry' })],
      ['from another issuer', await ts.sign(pushPull, { iss: 'someone-else' })],
      ['signed by another key', await ts.sign(pushPull, { key: 'other' })],
      ['signed by another key, with its certificate', await ts.sign(pushPull, { key: 'other', header: 'x5c' })],
      ['not a JWT', 'garbage.token.here'],
    ] as const) {
      const res = await expectError(req(r.url, 'GET', `/v2/allowed/app/blobs/${sha256(data)}`, undefined, bearer(token)), 401, 'UNAUTHORIZED');
      expect(res.headers.get('www-authenticate'), why).to.include('error="invalid_token"');
    }
    // Too narrow: pull only, for a push; another repository; delete without the delete action.
    const pullOnly = await ts.sign([{ type: 'repository', name: 'allowed/app', actions: ['pull'] }]);
    const narrow = await expectError(req(r.url, 'POST', '/v2/allowed/app/blobs/uploads/', undefined, bearer(pullOnly)), 401, 'UNAUTHORIZED');
    expect(narrow.headers.get('www-authenticate')).to.include('error="insufficient_scope"');
    await expectError(req(r.url, 'GET', `/v2/allowed/other/blobs/${sha256(data)}`, undefined, bearer(good)), 401, 'UNAUTHORIZED');
    await expectError(req(r.url, 'DELETE', `/v2/allowed/app/blobs/${sha256(data)}`, undefined, bearer(good)), 401, 'UNAUTHORIZED');
    await expectError(req(r.url, 'GET', '/v2/_catalog', undefined, bearer(good)), 401, 'UNAUTHORIZED');
    const catalog = await ts.sign([{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    expect((await req(r.url, 'GET', '/v2/_catalog', undefined, bearer(catalog))).status).to.equal(200);
    // A JWKS-configured registry takes tokens whose kid is in the set, and no others.
    expect((await req(jwksReg.url, 'GET', '/v2/', undefined, bearer(await ts.sign(pushPull, { header: 'jwks' })))).status).to.equal(200);
    await expectError(req(jwksReg.url, 'GET', '/v2/', undefined, bearer(good)), 401, 'UNAUTHORIZED');
    await expectError(req(jwksReg.url, 'GET', '/v2/', undefined, bearer(await ts.sign(pushPull, { header: 'jwks', key: 'other' }))), 401, 'UNAUTHORIZED');
  });

  it('mounts only from a repository the token may pull; else opens an upload session', async () => {
    const data = randomBytes(700);
    const src = await ts.sign([{ type: 'repository', name: 'allowed/src', actions: ['pull', 'push'] }]);
    expect((await req(r.url, 'POST', `/v2/allowed/src/blobs/uploads/?digest=${sha256(data)}`, data, bearer(src))).status).to.equal(201);
    const dstOnly = await ts.sign([{ type: 'repository', name: 'allowed/dst', actions: ['pull', 'push'] }]);
    const refused = await req(r.url, 'POST', `/v2/allowed/dst/blobs/uploads/?mount=${sha256(data)}&from=allowed/src`, undefined, bearer(dstOnly));
    expect(refused.status).to.equal(202); // a session, not a mount
    await expectError(req(r.url, 'HEAD', `/v2/allowed/dst/blobs/${sha256(data)}`, undefined, bearer(dstOnly)), 404, 'BLOB_UNKNOWN');
    const noFrom = await req(r.url, 'POST', `/v2/allowed/dst/blobs/uploads/?mount=${sha256(data)}`, undefined, bearer(dstOnly));
    expect(noFrom.status).to.equal(202);
    const both = await ts.sign([{ type: 'repository', name: 'allowed/dst', actions: ['pull', 'push'] }, { type: 'repository', name: 'allowed/src', actions: ['pull'] }]);
    expect((await req(r.url, 'POST', `/v2/allowed/dst/blobs/uploads/?mount=${sha256(data)}&from=allowed/src`, undefined, bearer(both))).status).to.equal(201);
  });

  it('skopeo pushes and pulls with tokens from the token server, and is denied outside its scope', async function () {
    if (!requireTool(this, 'skopeo')) return;
    const img = image(2, 'amd64', 3000);
    await writeLayout(join(dir, 'in'), img.manifest, imageBlobs(img), 'v1');
    const before = ts.issued;
    await skopeo('copy', '--dest-creds', 'alice:secret', `oci:${join(dir, 'in')}:v1`, `docker://${hostOf(r.url)}/allowed/img:v1`);
    expect(ts.issued).to.be.greaterThan(before);
    await skopeo('copy', '--src-creds', 'alice:secret', `docker://${hostOf(r.url)}/allowed/img:v1`, `oci:${join(dir, 'out')}:v1`);
    for (const target of ['denied/img:v1', 'readonly/img:v1']) {
      try {
        await skopeo('copy', '--dest-creds', 'alice:secret', `oci:${join(dir, 'in')}:v1`, `docker://${hostOf(r.url)}/${target}`);
        expect.fail(`pushed to ${target}`);
      } catch (e) {
        expect((e as Error).message, target).to.match(/401|403|unauthorized|denied|authentication required/i);
      }
    }
    // And a pusher with no pull right elsewhere gets nothing from there.
    const token = await ts.sign([{ type: 'repository', name: 'allowed/img', actions: ['pull'] }]);
    await pushImageWith(r.url, 'allowed/img2', image(1), 'v1', bearer(await ts.sign([{ type: 'repository', name: 'allowed/img2', actions: ['pull', 'push'] }])));
    await expectError(req(r.url, 'GET', '/v2/allowed/img2/manifests/v1', undefined, bearer(token)), 401, 'UNAUTHORIZED');
  });
});

describe('auth: distribution\'s other behaviours', function () {
  this.timeout(60000);
  let dir: string;
  before(async () => { dir = await tempDir('auth-more-'); });
  after(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

  it('htpasswd: a missing file is created with user docker and a generated password, logged once', async () => {
    const file = join(dir, 'sub', 'htpasswd');
    const cap = capturingLogger('info');
    const r = await startTestRegistry(`auth:\n  htpasswd:\n    realm: r\n    path: ${file}\n`, { driver: 'inmemory', log: cap.log });
    try {
      const created = cap.records.filter((x) => String(x.msg).includes('htpasswd file was missing'));
      expect(created).to.have.length(1);
      expect(created[0]).to.include({ user: 'docker', path: file });
      const password = String(created[0].password);
      expect(password).to.match(/^[A-Za-z0-9_-]{40,}$/);
      expect((await readFile(file, 'utf8'))).to.match(/^docker:\$2[aby]\$/);
      expect((await stat(file)).mode & 0o777).to.equal(0o600);
      expect((await req(r.url, 'GET', '/v2/', undefined, basic('docker', password))).status).to.equal(200);
      await expectError(req(r.url, 'GET', '/v2/', undefined, basic('docker', 'guess')), 401, 'UNAUTHORIZED');
    } finally {
      await r.stop();
    }
    // A second start finds the file: nothing is created or logged.
    const cap2 = capturingLogger('info');
    const again = await startTestRegistry(`auth:\n  htpasswd:\n    realm: r\n    path: ${file}\n`, { driver: 'inmemory', log: cap2.log });
    await again.stop();
    expect(cap2.records.filter((x) => String(x.msg).includes('htpasswd file was missing'))).to.have.length(0);
  });

  it('htpasswd: a path that cannot be read is logged as an error, and every request is refused with 401', async () => {
    // Debian's and distribution's example configs point path at a directory.
    const cap = capturingLogger('info');
    const r = await startTestRegistry(`auth:\n  htpasswd:\n    realm: r\n    path: ${dir}\n`, { driver: 'inmemory', log: cap.log });
    try {
      expect(cap.records.some((x) => x.level === 'error' && String(x.msg).includes('htpasswd file cannot be read'))).to.equal(true);
      for (const headers of [{}, basic('docker', 'x')]) {
        const res = await expectError(req(r.url, 'GET', '/v2/x/tags/list', undefined, headers), 401, 'UNAUTHORIZED');
        expect(res.headers.get('www-authenticate')).to.equal('Basic realm="r"');
      }
    } finally {
      await r.stop();
    }
  });

  it('silly: any Authorization header passes; without one, a Bearer challenge with realm, service and scope', async () => {
    const r = await startTestRegistry('auth:\n  silly:\n    realm: silly-realm\n    service: silly-service\n', { driver: 'inmemory' });
    try {
      const res = await expectError(req(r.url, 'GET', '/v2/some/repo/tags/list'), 401, 'UNAUTHORIZED');
      expect(res.headers.get('www-authenticate')).to.equal('Bearer realm="silly-realm",service="silly-service",scope="repository:some/repo:pull"');
      const data = randomBytes(100);
      expect((await req(r.url, 'POST', `/v2/some/repo/blobs/uploads/?digest=${sha256(data)}`, data, { Authorization: 'anything' })).status).to.equal(201);
    } finally {
      await r.stop();
    }
  });

  it('token: autoredirect builds the realm from the request, and signingalgorithms limits the accepted algorithms', async function () {
    if (!requireTool(this, 'openssl')) return;
    const ts = await startTokenServer(dir, (_u, _t, _n, actions) => actions);
    const section = (extra: string) => `auth:\n  token:\n    service: ${ts.service}\n    issuer: ${ts.issuer}\n    rootcertbundle: ${ts.certFile}\n${extra}`;
    const auto = await startTestRegistry(section('    autoredirect: true\n    autoredirectpath: /jwt/auth\n'), { driver: 'inmemory' });
    const only = await startTestRegistry(section(`    realm: ${ts.realm}\n    signingalgorithms: [ES256]\n`), { driver: 'inmemory' });
    try {
      // fetch cannot set Host: a raw request can.
      const challenge = (path: string, headers: Record<string, string>) => new Promise<string>((resolve, reject) => {
        const u = new URL(auto.url);
        http.get({ host: u.hostname, port: u.port, path, headers }, (res) => { res.resume(); resolve(String(res.headers['www-authenticate'])); }).on('error', reject);
      });
      expect(await challenge('/v2/a/b/tags/list', { Host: 'registry.example.com', 'X-Forwarded-Proto': 'http' }))
        .to.equal(`Bearer realm="http://registry.example.com/jwt/auth",service="${ts.service}",scope="repository:a/b:pull"`);
      expect(await challenge('/v2/', { Host: 'registry.example.com' })).to.include('realm="https://registry.example.com/jwt/auth"');
      // The token server signs RS256: with only ES256 allowed, its tokens are refused.
      const token = await ts.sign([{ type: 'repository', name: 'a/b', actions: ['pull'] }]);
      expect((await req(auto.url, 'GET', '/v2/a/b/tags/list', undefined, bearer(token))).status).to.equal(404);
      await expectError(req(only.url, 'GET', '/v2/a/b/tags/list', undefined, bearer(token)), 401, 'UNAUTHORIZED');
    } finally {
      await auto.stop();
      await only.stop();
      await ts.stop();
    }
  });
});
