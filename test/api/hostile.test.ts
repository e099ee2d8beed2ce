// Hostile input, generated against every endpoint: bad names, digests, tags,
// ranges, lengths, bodies and manifests, and connections cut mid-body. Every
// answer must be a 4xx with the right code (never a 5xx, never a crash), and
// afterwards every stored image is still there byte for byte and nothing
// partial is visible. Then the limits: concurrent uploads, stalled and slow
// connections, manifest size.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { pushBlob, pushManifest, req } from '../helpers/http.js';
import { blob, image, index, sha256 } from '../helpers/ociLayout.js';

/** A request whose path goes out exactly as written (fetch would normalise `..`). */
function raw(base: string, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = http.request({ host: u.hostname, port: u.port, method, path, headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts), headers: res.headers }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

/** Files outside upload sessions, with their content hashes. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(dir: string): Promise<void> {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name);
      if (e.isDirectory()) { if (e.name !== '_uploads') await walk(p); continue; }
      out.set(relative(root, p), createHash('sha256').update(await readFile(p)).digest('hex'));
    }
  }
  await walk(root);
  return out;
}

const codeOf = (b: Buffer) => { try { return (JSON.parse(b.toString()) as { errors: { code: string }[] }).errors[0].code; } catch { return '(no JSON error)'; } };

describe('hostile input against every endpoint', function () {
  this.timeout(120000);
  let r: TestRegistry;
  const img = image(2, 'amd64', 5000);
  const idx = index([{ img, arch: 'amd64' }]);
  let stored: Map<string, string>;

  before(async () => {
    r = await startTestRegistry();
    for (const b of [img.config, ...img.layers]) await pushBlob(r.url, 'good/app', b.data, b.digest);
    await pushManifest(r.url, 'good/app', 'v1', img.manifest.data, img.manifest.mediaType);
    await pushManifest(r.url, 'good/app', 'multi', idx.data, idx.mediaType);
    stored = await snapshot(r.root!);
  });
  after(async () => { await r?.stop(); });

  const expect4xx = async (what: string, res: Promise<{ status: number; body: Buffer }>, codes: string[]) => {
    const got = await res;
    expect(got.status, `${what}: ${got.body.toString().slice(0, 200)}`).to.be.within(400, 499);
    if (codes.length) expect(codes, `${what}: ${got.body.toString().slice(0, 200)}`).to.include(codeOf(got.body));
  };

  it('refuses bad names on every route with NAME_INVALID (or no route at all)', async () => {
    const d = img.layers[0].digest;
    const names = ['a/../b', 'a/%2e%2e/b', 'a%2Fb', 'Upper/case', 'a'.repeat(256), '%C3%BCn%C3%AFcode/x', 'a//b', '-lead/x', 'trail-/x', 'a/./b', 'a___b/c', 'a..b', '%00/x', 'a%20b'];
    const templates: [string, string, Buffer?][] = [
      ['GET', '/v2/{n}/tags/list'], ['GET', '/v2/{n}/manifests/v1'], ['HEAD', '/v2/{n}/manifests/v1'], ['PUT', '/v2/{n}/manifests/v1', img.manifest.data],
      ['DELETE', '/v2/{n}/manifests/v1'], ['GET', `/v2/{n}/blobs/${d}`], ['HEAD', `/v2/{n}/blobs/${d}`], ['DELETE', `/v2/{n}/blobs/${d}`],
      ['POST', '/v2/{n}/blobs/uploads/'], ['POST', `/v2/{n}/blobs/uploads/?mount=${d}&from=good/app`], ['GET', `/v2/{n}/referrers/${img.manifest.digest}`],
      ['PATCH', '/v2/{n}/blobs/uploads/00000000-0000-4000-8000-000000000000', Buffer.from('x')],
    ];
    for (const n of names) {
      for (const [m, t, body] of templates) {
        await expect4xx(`${m} ${n}`, raw(r.url, m, t.replace('{n}', n), body, body ? { 'Content-Type': img.manifest.mediaType } : {}), m === 'HEAD' ? [] : ['NAME_INVALID', 'NAME_UNKNOWN', 'UNSUPPORTED', 'MANIFEST_INVALID', 'BLOB_UPLOAD_UNKNOWN']);
      }
    }
    // Mount from a bad source name: never a mount, never a 5xx.
    const mount = await raw(r.url, 'POST', `/v2/good/other/blobs/uploads/?mount=${d}&from=../good/app`);
    expect(mount.status).to.equal(202);
  });

  it('refuses bad digests with DIGEST_INVALID wherever a digest goes', async () => {
    const bad = ['sha256:short', `sha256:${'g'.repeat(64)}`, `md5:${'a'.repeat(32)}`, `sha512:${'a'.repeat(64)}`, `SHA256:${'a'.repeat(64)}`,
      `sha256:${'a'.repeat(64)}extra`, 'sha256', ':', `sha256:${'A'.repeat(64)}`, '%00'];
    const upload = async () => new URL((await req(r.url, 'POST', '/v2/good/app/blobs/uploads/')).headers.get('location')!);
    for (const d of bad) {
      await expect4xx(`GET blob ${d}`, raw(r.url, 'GET', `/v2/good/app/blobs/${d}`), ['DIGEST_INVALID', 'BLOB_UNKNOWN']);
      await expect4xx(`HEAD blob ${d}`, raw(r.url, 'HEAD', `/v2/good/app/blobs/${d}`), []);
      await expect4xx(`DELETE blob ${d}`, raw(r.url, 'DELETE', `/v2/good/app/blobs/${d}`), ['DIGEST_INVALID', 'BLOB_UNKNOWN']);
      await expect4xx(`referrers ${d}`, raw(r.url, 'GET', `/v2/good/app/referrers/${d}`), ['DIGEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN']);
      await expect4xx(`POST ?digest=${d}`, raw(r.url, 'POST', `/v2/good/app/blobs/uploads/?digest=${encodeURIComponent(d)}`, Buffer.from('x')), ['DIGEST_INVALID']);
      await expect4xx(`POST ?mount=${d}`, raw(r.url, 'POST', `/v2/good/app/blobs/uploads/?mount=${encodeURIComponent(d)}&from=good/app`), ['DIGEST_INVALID']);
      const u = await upload();
      await expect4xx(`PUT ?digest=${d}`, raw(r.url, 'PUT', `${u.pathname}${u.search}&digest=${encodeURIComponent(d)}`, Buffer.from('abc')), ['DIGEST_INVALID']);
    }
    // A well-formed digest of other bytes: DIGEST_INVALID, and the session is gone.
    const u = await upload();
    await expect4xx('PUT with the wrong digest', raw(r.url, 'PUT', `${u.pathname}${u.search}&digest=${sha256('other')}`, Buffer.from('abc')), ['DIGEST_INVALID']);
    await expect4xx('the session after a wrong digest', raw(r.url, 'GET', `${u.pathname}${u.search}`), ['BLOB_UPLOAD_UNKNOWN']);
  });

  it('refuses bad tags, ranges and lengths', async () => {
    for (const t of ['-lead', 'a'.repeat(129), '.dot', 'sp%20ace', '%C3%BC']) {
      await expect4xx(`tag ${t}`, raw(r.url, 'PUT', `/v2/good/app/manifests/${t}`, img.manifest.data, { 'Content-Type': img.manifest.mediaType }), ['MANIFEST_INVALID', 'TAG_INVALID', 'NAME_INVALID']);
      await expect4xx(`GET tag ${t}`, raw(r.url, 'GET', `/v2/good/app/manifests/${t}`), ['MANIFEST_INVALID', 'TAG_INVALID', 'MANIFEST_UNKNOWN']);
    }
    const post = await req(r.url, 'POST', '/v2/good/app/blobs/uploads/');
    let u = new URL(post.headers.get('location')!);
    const ten = randomBytes(10);
    const ok = await raw(r.url, 'PATCH', u.pathname + u.search, ten, { 'Content-Range': '0-9' });
    expect(ok.status).to.equal(202);
    u = new URL(ok.headers.location as string);
    for (const [range, body] of [['garbage', 5], ['5-2', 5], ['0-9', 10], ['5-14', 10], ['100-109', 10], ['10-19', 5], ['10-', 5], ['-1-3', 5], ['10-99999999999999999999', 5]] as const) {
      await expect4xx(`Content-Range ${range}`, raw(r.url, 'PATCH', u.pathname + u.search, randomBytes(body), { 'Content-Range': range }), ['RANGE_INVALID', 'SIZE_INVALID', 'BLOB_UPLOAD_INVALID']);
    }
    // Nothing of the refused chunks was kept: the session still holds 10 bytes and finishes.
    const status = await raw(r.url, 'GET', u.pathname + u.search);
    expect(status.headers.range).to.equal('0-9');
    const done = await raw(r.url, 'PUT', `${u.pathname}${u.search}&digest=${sha256(ten)}`);
    expect(done.status).to.equal(201);
  });

  it('survives Content-Length lies and cut connections, keeping what was stored', async () => {
    const post = await req(r.url, 'POST', '/v2/good/app/blobs/uploads/');
    const u = new URL(post.headers.get('location')!);
    const host = new URL(r.url);
    // Declares 4 MiB, sends 1.5 MiB, hangs up.
    const sent = randomBytes(1536 << 10);
    await new Promise<void>((resolve) => {
      const s = net.connect(Number(host.port), host.hostname, () => {
        s.write(`PATCH ${u.pathname}${u.search} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${4 << 20}\r\n\r\n`);
        s.write(sent, () => setTimeout(() => { s.destroy(); resolve(); }, 150));
      });
      s.on('error', () => resolve());
    });
    await new Promise((res) => setTimeout(res, 200));
    // Declares 5 bytes and sends 50: the rest is a garbage next request, answered 400 by the HTTP parser.
    const answers = await new Promise<string>((resolve) => {
      let got = '';
      const s = net.connect(Number(host.port), host.hostname, () => {
        s.write(`POST /v2/good/lie/blobs/uploads/?digest=${sha256('12345')} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n12345${'z'.repeat(45)}\r\n\r\n`);
      });
      s.on('data', (c) => { got += c.toString(); });
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
      setTimeout(() => s.destroy(), 1500);
    });
    // Node answers the garbage with 400 and closes, perhaps before the first
    // answer: the blob is then either whole or absent, never partial.
    expect(answers).to.match(/^HTTP\/1\.1 (201|400)/);
    expect(answers).to.not.match(/HTTP\/1\.1 5\d\d/);
    await new Promise((res) => setTimeout(res, 300));
    const lie = await req(r.url, 'GET', `/v2/good/lie/blobs/${sha256('12345')}`);
    if (lie.status === 200) expect(lie.body.toString()).to.equal('12345');
    else expect(lie.status).to.equal(404);
    // The cut upload resumes from what was stored.
    const st = await raw(r.url, 'GET', u.pathname + u.search);
    expect(st.status).to.equal(204);
    const [, end] = String(st.headers.range).split('-').map(Number);
    const stored = end + 1;
    expect(stored).to.be.at.most(sent.length);
    expect(stored).to.be.greaterThan(1); // whole staging buffers were stored before the cut
    const fin = await raw(r.url, 'PUT', `${u.pathname}${u.search}&digest=${sha256(sent.subarray(0, stored))}`);
    expect(fin.status, fin.body.toString()).to.equal(201);
  });

  it('refuses manifests that are not JSON, of the wrong shape, mistyped, dangling or self-referencing', async () => {
    const mt = img.manifest.mediaType;
    const bodies: [string, Buffer, string, string[]][] = [
      ['not JSON', Buffer.from('{"schemaVersion": 2,'), mt, ['MANIFEST_INVALID']],
      ['a JSON array', Buffer.from('[1,2,3]'), mt, ['MANIFEST_INVALID']],
      ['layers not an array', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mt, config: JSON.parse(img.manifest.data.toString()).config, layers: {} })), mt, ['MANIFEST_INVALID']],
      ['schemaVersion 3', Buffer.from(JSON.stringify({ ...JSON.parse(img.manifest.data.toString()), schemaVersion: 3 })), mt, ['MANIFEST_INVALID']],
      ['mediaType against Content-Type', img.manifest.data, 'application/vnd.oci.image.index.v1+json', ['MANIFEST_INVALID']],
      ['a missing layer', Buffer.from(JSON.stringify({ ...JSON.parse(img.manifest.data.toString()), layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256('nowhere'), size: 7 }] })), mt, ['MANIFEST_BLOB_UNKNOWN']],
      ['a wrong layer size', Buffer.from(JSON.stringify({ ...JSON.parse(img.manifest.data.toString()), layers: [{ ...JSON.parse(img.manifest.data.toString()).layers[0], size: 1 }] })), mt, ['MANIFEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'SIZE_INVALID']],
      ['an index of a missing manifest', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: idx.mediaType, manifests: [{ mediaType: mt, digest: sha256('no manifest'), size: 10 }] })), idx.mediaType, ['MANIFEST_BLOB_UNKNOWN', 'MANIFEST_UNKNOWN']],
      ['an index of a layer, not a manifest', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: idx.mediaType, manifests: [{ mediaType: mt, digest: img.layers[0].digest, size: img.layers[0].size }] })), idx.mediaType, ['MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID', 'MANIFEST_UNKNOWN']],
      ['a schema1 manifest', Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'good/app', tag: 'x', fsLayers: [] })), 'application/vnd.docker.distribution.manifest.v1+prettyjws', ['MANIFEST_INVALID']],
      ['5 MiB of JSON', Buffer.from(JSON.stringify({ schemaVersion: 2, pad: 'x'.repeat(5 << 20) })), mt, ['MANIFEST_INVALID', 'SIZE_INVALID']],
    ];
    for (const [what, body, ct, codes] of bodies) {
      await expect4xx(what, raw(r.url, 'PUT', '/v2/good/app/manifests/hostile', body, { 'Content-Type': ct }), codes);
    }
    // An index that names itself cannot exist (its digest covers its list), so: one whose child is put by digest under a different body.
    const self = blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: idx.mediaType, manifests: [] })), idx.mediaType);
    await expect4xx('a manifest PUT under a digest that is not its own', raw(r.url, 'PUT', `/v2/good/app/manifests/${self.digest}`, idx.data, { 'Content-Type': idx.mediaType }), ['DIGEST_INVALID']);
  });

  it('still serves every stored image byte for byte, with nothing partial visible', async () => {
    expect((await req(r.url, 'GET', '/v2/')).status).to.equal(200);
    const after = await snapshot(r.root!);
    // New blobs from the accepted uploads above are fine; nothing that was there changed, and no manifest or tag appeared.
    for (const [p, h] of stored) expect(after.get(p), p).to.equal(h);
    const added = [...after.keys()].filter((p) => !stored.has(p));
    expect(added.filter((p) => p.includes('/_manifests/')), 'manifests or tags appeared').to.deep.equal([]);
    expect((await req(r.url, 'GET', '/v2/good/app/tags/list')).json()).to.deep.equal({ name: 'good/app', tags: ['multi', 'v1'] });
    const m = await req(r.url, 'GET', '/v2/good/app/manifests/v1', undefined, { Accept: img.manifest.mediaType });
    expect(m.body.equals(img.manifest.data)).to.equal(true);
    for (const b of [img.config, ...img.layers]) expect((await req(r.url, 'GET', `/v2/good/app/blobs/${b.digest}`)).body.equals(b.data)).to.equal(true);
    expect((await req(r.url, 'GET', '/v2/good/app/manifests/multi', undefined, { Accept: idx.mediaType })).body.equals(idx.data)).to.equal(true);
    const catalog = (await req(r.url, 'GET', '/v2/_catalog')).json() as { repositories: string[] };
    expect(catalog.repositories.every((n) => /^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(n))).to.equal(true);
  });
});

describe('limits and timeouts', function () {
  this.timeout(60000);

  it('bounds concurrent uploads per node with 429 TOOMANYREQUESTS and Retry-After', async () => {
    const reg = await startTestRegistryWithHttp('  limits:\n    maxuploads: 1\n');
    try {
      const post = await req(reg.url, 'POST', '/v2/lim/app/blobs/uploads/');
      const u = new URL(post.headers.get('location')!);
      const host = new URL(reg.url);
      // One upload holds its slot: headers and part of the body, then silence.
      const s = net.connect(Number(host.port), host.hostname);
      await new Promise<void>((res) => s.on('connect', () => res()));
      s.write(`PATCH ${u.pathname}${u.search} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n`);
      s.write(randomBytes(1000));
      await new Promise((res) => setTimeout(res, 200));
      const busy = await req(reg.url, 'POST', '/v2/lim/app/blobs/uploads/');
      expect(busy.status).to.equal(429);
      expect(codeOf(busy.body)).to.equal('TOOMANYREQUESTS');
      expect(busy.headers.get('retry-after')).to.equal('5');
      expect((await req(reg.url, 'GET', '/v2/')).status).to.equal(200); // reads are not limited
      s.destroy();
      await new Promise((res) => setTimeout(res, 300));
      expect((await req(reg.url, 'POST', '/v2/lim/app/blobs/uploads/')).status).to.equal(202);
    } finally {
      await reg.stop();
    }
  });

  it('cuts a stalled request and a slow-header client; refuses manifests over the limit', async () => {
    const reg = await startTestRegistryWithHttp('  timeout:\n    read: 1s\n    stall: 1s\n  limits:\n    maxmanifestbytes: 1000\n');
    try {
      const host = new URL(reg.url);
      const closedAfter = (feed: (s: net.Socket) => void) => new Promise<number>((resolve) => {
        const started = Date.now();
        const s = net.connect(Number(host.port), host.hostname, () => feed(s));
        s.on('close', () => resolve(Date.now() - started));
        s.on('error', () => {});
        setTimeout(() => { s.destroy(); resolve(Infinity); }, 15000);
      });
      const post = await req(reg.url, 'POST', '/v2/lim/app/blobs/uploads/');
      const u = new URL(post.headers.get('location')!);
      // Body stalls after 10 bytes.
      const stalled = await closedAfter((s) => s.write(`PATCH ${u.pathname}${u.search} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789`));
      expect(stalled).to.be.below(10000);
      // Headers trickle in a byte every 300 ms: never stalled, but over the read timeout.
      const slow = await closedAfter((s) => {
        const line = 'GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(100);
        let i = 0;
        const t = setInterval(() => { if (s.destroyed || i >= line.length) { clearInterval(t); return; } s.write(line[i++]); }, 300);
      });
      expect(slow).to.be.below(10000);
      // What the stalled request stored is intact and the session resumes.
      const st = await req(reg.url, 'GET', u.pathname + u.search);
      expect(st.status).to.equal(204);
      const big = image(1);
      const fat = Buffer.from(JSON.stringify({ ...JSON.parse(big.manifest.data.toString()), annotations: { pad: 'x'.repeat(2000) } }));
      const res = await req(reg.url, 'PUT', '/v2/lim/app/manifests/v1', fat, { 'Content-Type': big.manifest.mediaType });
      expect(res.status).to.equal(413);
    } finally {
      await reg.stop();
    }
  });
});

function startTestRegistryWithHttp(httpExtra: string): Promise<TestRegistry> {
  return startTestRegistry('', { driver: 'inmemory', httpExtra });
}
