// Config options that change the API: read-only mode, path prefix, URLs in Location.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { expectError, req } from '../helpers/http.js';
import { sha256 } from '../helpers/ociLayout.js';

describe('API: config options', () => {
  const started: TestRegistry[] = [];
  after(async () => { await Promise.all(started.map((r) => r.stop())); });
  const start = async (yaml: string, storageYaml?: string) => {
    const r = await startTestRegistry(yaml, { driver: 'inmemory', secret: 's', storageYaml });
    started.push(r);
    return r;
  };

  it('storage.maintenance.readonly refuses pushes and deletes with 405, serves reads', async () => {
    const r = await start('', '  inmemory: {}\n  maintenance:\n    readonly:\n      enabled: true\n');
    const data = randomBytes(10);
    await expectError(req(r.url, 'POST', `/v2/ro/blobs/uploads/?digest=${sha256(data)}`, data), 405, 'UNSUPPORTED');
    await expectError(req(r.url, 'POST', '/v2/ro/blobs/uploads/'), 405, 'UNSUPPORTED');
    await expectError(req(r.url, 'PUT', '/v2/ro/manifests/v1', '{}', { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }), 405, 'UNSUPPORTED');
    await expectError(req(r.url, 'DELETE', '/v2/ro/manifests/v1'), 405, 'UNSUPPORTED');
    await expectError(req(r.url, 'DELETE', `/v2/ro/blobs/${sha256(data)}`), 405, 'UNSUPPORTED');
    await expectError(req(r.url, 'DELETE', '/v2/ro/blobs/uploads/00000000-0000-0000-0000-000000000000'), 405, 'UNSUPPORTED');
    expect((await req(r.url, 'GET', '/v2/')).status).to.equal(200);
    await expectError(req(r.url, 'GET', '/v2/ro/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
  });

  it('http.prefix serves the API under the prefix, in Location and Link too', async () => {
    const r = await start('  prefix: /registry/\n');
    expect((await req(r.url, 'GET', '/registry/v2/')).status).to.equal(200);
    expect((await req(r.url, 'GET', '/v2/')).status).to.equal(404);
    const data = randomBytes(10);
    const res = await req(r.url, 'POST', `/registry/v2/p/blobs/uploads/?digest=${sha256(data)}`, data);
    expect(res.status).to.equal(201);
    expect(res.headers.get('location')).to.equal(`${r.url}/registry/v2/p/blobs/${sha256(data)}`);
  });

  it('http.relativeurls and http.host shape Location headers; X-Forwarded-* are honoured', async () => {
    const rel = await start('  relativeurls: true\n');
    const host = await start('  host: https://registry.example.com\n');
    const plain = await start('');
    const data = randomBytes(10);
    const d = sha256(data);
    expect((await req(rel.url, 'POST', `/v2/u/blobs/uploads/?digest=${d}`, data)).headers.get('location')).to.equal(`/v2/u/blobs/${d}`);
    expect((await req(host.url, 'POST', `/v2/u/blobs/uploads/?digest=${d}`, data)).headers.get('location')).to.equal(`https://registry.example.com/v2/u/blobs/${d}`);
    const fwd = await req(plain.url, 'POST', `/v2/u/blobs/uploads/?digest=${d}`, data, { 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'lb.example.com' });
    expect(fwd.headers.get('location')).to.equal(`https://lb.example.com/v2/u/blobs/${d}`);
  });

  it('http.headers are added to every response', async () => {
    const r = await start('  headers:\n    X-Frame-Options: [DENY]\n');
    const res = await req(r.url, 'GET', '/v2/nope/tags/list');
    expect(res.headers.get('x-frame-options')).to.equal('DENY');
    expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
  });
});
