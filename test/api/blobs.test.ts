import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { expectError, pushBlob, req } from '../helpers/http.js';
import { sha256 } from '../helpers/ociLayout.js';

describe('API: base, blobs, ranges, caching headers', () => {
  let r: TestRegistry;
  let u: string;
  before(async () => { r = await startTestRegistry(); u = r.url; });
  after(async () => { await r.stop(); });

  it('GET and HEAD /v2/ answer 200 with the API version header', async () => {
    for (const m of ['GET', 'HEAD']) {
      const res = await req(u, m, '/v2/');
      expect(res.status).to.equal(200);
      expect(res.headers.get('docker-distribution-api-version')).to.equal('registry/2.0');
    }
    expect((await req(u, 'GET', '/v2/')).json()).to.deep.equal({});
  });

  it('stores a blob monolithically at distribution\'s paths and serves it', async () => {
    const data = randomBytes(5000);
    const d = sha256(data);
    const res = await req(u, 'POST', `/v2/lib/alpine/blobs/uploads/?digest=${d}`, data);
    expect(res.status).to.equal(201);
    expect(res.headers.get('location')).to.equal(`${u}/v2/lib/alpine/blobs/${d}`);
    expect(res.headers.get('docker-content-digest')).to.equal(d);
    const hex = d.slice(7);
    const v2 = join(r.root!, 'docker/registry/v2');
    expect((await readFile(join(v2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'))).equals(data)).to.equal(true);
    expect((await readFile(join(v2, 'repositories/lib/alpine/_layers/sha256', hex, 'link'))).toString()).to.equal(d);

    const head = await req(u, 'HEAD', `/v2/lib/alpine/blobs/${d}`);
    expect(head.status).to.equal(200);
    expect(head.headers.get('content-length')).to.equal('5000');
    expect(head.headers.get('docker-content-digest')).to.equal(d);
    expect(head.headers.get('etag')).to.equal(`"${d}"`);
    expect(head.headers.get('cache-control')).to.equal('max-age=604800');
    expect(head.body.length).to.equal(0);
    const get = await req(u, 'GET', `/v2/lib/alpine/blobs/${d}`);
    expect(get.status).to.equal(200);
    expect(get.headers.get('content-type')).to.equal('application/octet-stream');
    expect(get.body.equals(data)).to.equal(true);
  });

  it('answers 404 BLOB_UNKNOWN for a blob not linked into the repository', async () => {
    const data = randomBytes(100);
    const d = sha256(data);
    await pushBlob(u, 'repo/a', data, d);
    await expectError(req(u, 'GET', `/v2/repo/b/blobs/${d}`), 404, 'BLOB_UNKNOWN');
    const head = await req(u, 'HEAD', `/v2/repo/b/blobs/${d}`);
    expect(head.status).to.equal(404);
    expect(head.body.length).to.equal(0);
    await expectError(req(u, 'GET', `/v2/repo/a/blobs/sha256:${'0'.repeat(64)}`), 404, 'BLOB_UNKNOWN');
  });

  it('answers 400 DIGEST_INVALID for a malformed digest', async () => {
    for (const bad of ['sha256:abc', 'md5:d41d8cd98f00b204e9800998ecf8427e', `sha256:${'G'.repeat(64)}`, 'nodigest']) {
      await expectError(req(u, 'GET', `/v2/repo/a/blobs/${bad}`), 400, 'DIGEST_INVALID');
    }
  });

  it('serves byte ranges with 206 and refuses unsatisfiable ones with 416 RANGE_INVALID', async () => {
    const data = randomBytes(1000);
    const d = sha256(data);
    await pushBlob(u, 'ranges', data, d);
    const cases: [string, number, number][] = [['bytes=0-9', 0, 9], ['bytes=990-', 990, 999], ['bytes=-5', 995, 999], ['bytes=500-5000', 500, 999]];
    for (const [h, s, e] of cases) {
      const res = await req(u, 'GET', `/v2/ranges/blobs/${d}`, undefined, { Range: h });
      expect(res.status, h).to.equal(206);
      expect(res.headers.get('content-range')).to.equal(`bytes ${s}-${e}/1000`);
      expect(res.headers.get('content-length')).to.equal(String(e - s + 1));
      expect(res.body.equals(data.subarray(s, e + 1))).to.equal(true);
    }
    for (const h of ['bytes=1000-', 'bytes=5-2', 'bytes=1000-1001,2000-', 'items=0-1']) {
      const res = await expectError(req(u, 'GET', `/v2/ranges/blobs/${d}`, undefined, { Range: h }), 416, 'RANGE_INVALID');
      expect(res.headers.get('content-range')).to.equal('bytes */1000');
    }
  });

  it('serves several ranges as multipart/byteranges, and the whole body when If-Range fails', async () => {
    const data = randomBytes(1000);
    const d = sha256(data);
    await pushBlob(u, 'ranges', data, d);
    for (const method of ['GET', 'HEAD']) {
      const res = await req(u, method, `/v2/ranges/blobs/${d}`, undefined, { Range: 'bytes=0-1, 5-6, 990-, 2000-3000' });
      expect(res.status).to.equal(206);
      const boundary = /^multipart\/byteranges; boundary=(\w+)$/.exec(res.headers.get('content-type') ?? '')?.[1];
      expect(boundary, res.headers.get('content-type') ?? '').to.be.a('string');
      if (method === 'HEAD') { expect(res.body.length).to.equal(0); continue; }
      expect(res.headers.get('content-length')).to.equal(String(res.body.length));
      // Parse the parts back: each names its range and holds exactly those bytes (the unsatisfiable one is dropped).
      const parts = res.body.toString('latin1').split(`--${boundary}`).slice(1, -1);
      expect(parts).to.have.length(3);
      const want = [[0, 1], [5, 6], [990, 999]];
      parts.forEach((p, i) => {
        const [head, body] = p.replace(/^\r\n/, '').split('\r\n\r\n');
        expect(head).to.include(`Content-Range: bytes ${want[i][0]}-${want[i][1]}/1000`);
        expect(Buffer.from(body.replace(/\r\n$/, ''), 'latin1').equals(data.subarray(want[i][0], want[i][1] + 1)), `part ${i}`).to.equal(true);
      });
      expect(res.body.toString('latin1').endsWith(`--${boundary}--\r\n`)).to.equal(true);
    }
    // If-Range: the strong ETag keeps the range; anything else means the whole body.
    const keep = await req(u, 'GET', `/v2/ranges/blobs/${d}`, undefined, { Range: 'bytes=0-9', 'If-Range': `"${d}"` });
    expect(keep.status).to.equal(206);
    for (const ifRange of ['"sha256:other"', `W/"${d}"`, 'Wed, 21 Oct 2015 07:28:00 GMT']) {
      const whole = await req(u, 'GET', `/v2/ranges/blobs/${d}`, undefined, { Range: 'bytes=0-9', 'If-Range': ifRange });
      expect(whole.status, ifRange).to.equal(200);
      expect(whole.body.equals(data)).to.equal(true);
    }
    // More ranges than are served as parts: the whole body (RFC 9110 lets a server ignore Range).
    const many = Array.from({ length: 20 }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',');
    const all = await req(u, 'GET', `/v2/ranges/blobs/${d}`, undefined, { Range: `bytes=${many}` });
    expect(all.status).to.equal(200);
    expect(all.body.equals(data)).to.equal(true);
  });

  it('answers If-None-Match with 304', async () => {
    const data = randomBytes(10);
    const d = sha256(data);
    await pushBlob(u, 'etag', data, d);
    const res = await req(u, 'GET', `/v2/etag/blobs/${d}`, undefined, { 'If-None-Match': `"${d}"` });
    expect(res.status).to.equal(304);
    expect(res.body.length).to.equal(0);
    expect((await req(u, 'GET', `/v2/etag/blobs/${d}`, undefined, { 'If-None-Match': '"other"' })).status).to.equal(200);
    // Weak comparison (RFC 9110 §13.1.2): W/"x" matches "x"; a list matches if any does.
    expect((await req(u, 'GET', `/v2/etag/blobs/${d}`, undefined, { 'If-None-Match': `"a", W/"${d}"` })).status).to.equal(304);
  });

  it('deletes a blob link with 202, then reports it unknown', async () => {
    const data = randomBytes(10);
    const d = sha256(data);
    await pushBlob(u, 'del', data, d);
    const res = await req(u, 'DELETE', `/v2/del/blobs/${d}`);
    expect(res.status).to.equal(202);
    await expectError(req(u, 'HEAD', `/v2/del/blobs/${d}`), 404, 'BLOB_UNKNOWN');
    await expectError(req(u, 'DELETE', `/v2/del/blobs/${d}`), 404, 'BLOB_UNKNOWN');
  });

  it('streams a blob larger than one buffer and hashes it right', async () => {
    const data = randomBytes(24 << 20);
    const d = sha256(data);
    await pushBlob(u, 'big', data, d);
    const res = await fetch(`${u}/v2/big/blobs/${d}`);
    const h = createHash('sha256');
    for await (const c of res.body!) h.update(c);
    expect(`sha256:${h.digest('hex')}`).to.equal(d);
  });

  it('survives clients that drop a download midway', async () => {
    const data = randomBytes(16 << 20);
    const d = sha256(data);
    await pushBlob(u, 'dropped', data, d);
    for (let i = 0; i < 5; i++) {
      const ac = new AbortController();
      const res = await fetch(`${u}/v2/dropped/blobs/${d}`, { signal: ac.signal });
      const reader = res.body!.getReader();
      await reader.read();
      ac.abort();
      await reader.cancel().catch(() => {});
    }
    const full = await req(u, 'GET', `/v2/dropped/blobs/${d}`);
    expect(sha256(full.body)).to.equal(d);
  });

  it('refuses invalid repository names with 400 NAME_INVALID', async () => {
    for (const name of ['UPPER/case', 'a/-b', 'a__-b', `${'a'.repeat(256)}`, 'a%20b', 'trailing-']) {
      await expectError(req(u, 'GET', `/v2/${name}/tags/list`), 400, 'NAME_INVALID');
    }
  });

  it('answers 405 UNSUPPORTED for a method the route does not have', async () => {
    const res = await expectError(req(u, 'PUT', '/v2/repo/blobs/sha256:' + '0'.repeat(64)), 405, 'UNSUPPORTED');
    expect(res.headers.get('allow')).to.include('GET');
  });
});

describe('API: deletes disabled', () => {
  let r: TestRegistry;
  before(async () => { r = await startTestRegistry('', { driver: 'inmemory', deleteEnabled: false }); });
  after(async () => { await r.stop(); });

  it('answers 405 UNSUPPORTED to blob and manifest deletes and keeps the content', async () => {
    const data = randomBytes(10);
    const d = sha256(data);
    await pushBlob(r.url, 'nodel', data, d);
    await expectError(req(r.url, 'DELETE', `/v2/nodel/blobs/${d}`), 405, 'UNSUPPORTED');
    await expectError(req(r.url, 'DELETE', '/v2/nodel/manifests/latest'), 405, 'UNSUPPORTED');
    expect((await req(r.url, 'HEAD', `/v2/nodel/blobs/${d}`)).status).to.equal(200);
  });
});
