import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { abortedRequest, expectError, pushBlob, req } from '../helpers/http.js';
import { sha256 } from '../helpers/ociLayout.js';

describe('API: blob uploads', () => {
  let r: TestRegistry;
  let u: string;
  before(async () => { r = await startTestRegistry(); u = r.url; });
  after(async () => { await r.stop(); });

  async function start(name: string): Promise<string> {
    const res = await req(u, 'POST', `/v2/${name}/blobs/uploads/`);
    expect(res.status).to.equal(202);
    expect(res.headers.get('range')).to.equal('0-0');
    expect(res.headers.get('docker-upload-uuid')).to.match(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('location')).to.match(new RegExp(`^${u}/v2/${name}/blobs/uploads/${res.headers.get('docker-upload-uuid')}\\?_state=`));
    return new URL(res.headers.get('location')!).pathname;
  }

  it('POST then PUT with the whole body', async () => {
    const data = randomBytes(3000);
    const loc = await start('up/mono');
    const res = await req(u, 'PUT', `${loc}?digest=${sha256(data)}`, data);
    expect(res.status).to.equal(201);
    expect(res.headers.get('docker-content-digest')).to.equal(sha256(data));
    expect((await req(u, 'GET', `/v2/up/mono/blobs/${sha256(data)}`)).body.equals(data)).to.equal(true);
  });

  it('chunked PATCH with Content-Range, status, then PUT', async () => {
    const data = randomBytes(2500);
    const loc = await start('up/chunks');
    let res = await req(u, 'PATCH', loc, data.subarray(0, 1000), { 'Content-Range': '0-999', 'Content-Type': 'application/octet-stream' });
    expect(res.status).to.equal(202);
    expect(res.headers.get('range')).to.equal('0-999');
    res = await req(u, 'PATCH', loc, data.subarray(1000, 2000), { 'Content-Range': '1000-1999' });
    expect(res.headers.get('range')).to.equal('0-1999');
    res = await req(u, 'GET', loc);
    expect(res.status).to.equal(204);
    expect(res.headers.get('range')).to.equal('0-1999');
    expect(res.headers.get('docker-upload-uuid')).to.equal(loc.split('/').pop());
    res = await req(u, 'PUT', `${loc}?digest=${sha256(data)}`, data.subarray(2000), { 'Content-Range': '2000-2499' });
    expect(res.status, res.body.toString()).to.equal(201);
    expect((await req(u, 'GET', `/v2/up/chunks/blobs/${sha256(data)}`)).body.equals(data)).to.equal(true);
  });

  it('refuses an out-of-order chunk with 416 and keeps the upload intact', async () => {
    const data = randomBytes(2000);
    const loc = await start('up/ooo');
    await req(u, 'PATCH', loc, data.subarray(0, 1000), { 'Content-Range': '0-999' });
    let res = await expectError(req(u, 'PATCH', loc, data.subarray(1500), { 'Content-Range': '1500-1999' }), 416, 'RANGE_INVALID');
    expect(res.headers.get('range')).to.equal('0-999');
    expect(res.headers.get('location')).to.include(loc);
    res = await expectError(req(u, 'PATCH', loc, data.subarray(0, 1000), { 'Content-Range': '0-999' }), 416, 'RANGE_INVALID');
    res = await req(u, 'PATCH', loc, data.subarray(1000), { 'Content-Range': '1000-1999' });
    expect(res.status).to.equal(202);
    res = await req(u, 'PUT', `${loc}?digest=${sha256(data)}`);
    expect(res.status).to.equal(201);
  });

  it('refuses a Content-Range that disagrees with Content-Length', async () => {
    const loc = await start('up/badlen');
    await expectError(req(u, 'PATCH', loc, randomBytes(10), { 'Content-Range': '0-99' }), 400, 'SIZE_INVALID');
    await expectError(req(u, 'PATCH', loc, randomBytes(10), { 'Content-Range': 'garbage' }), 416, 'RANGE_INVALID');
  });

  it('streamed PATCH without Content-Range appends', async () => {
    const data = randomBytes(300000);
    const loc = await start('up/stream');
    await req(u, 'PATCH', loc, data.subarray(0, 100000));
    const res = await req(u, 'PATCH', loc, data.subarray(100000));
    expect(res.headers.get('range')).to.equal('0-299999');
    expect((await req(u, 'PUT', `${loc}?digest=${sha256(data)}`)).status).to.equal(201);
  });

  it('a wrong digest on PUT is 400 DIGEST_INVALID, stores nothing and ends the upload', async () => {
    const data = randomBytes(100);
    const loc = await start('up/wrong');
    const wrong = sha256(Buffer.from('something else'));
    await expectError(req(u, 'PUT', `${loc}?digest=${wrong}`, data), 400, 'DIGEST_INVALID');
    await expectError(req(u, 'HEAD', `/v2/up/wrong/blobs/${wrong}`), 404, 'BLOB_UNKNOWN');
    await expectError(req(u, 'GET', loc), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('PUT without or with a malformed digest is 400 DIGEST_INVALID and keeps the upload', async () => {
    const loc = await start('up/nodigest');
    await expectError(req(u, 'PUT', loc), 400, 'DIGEST_INVALID');
    await expectError(req(u, 'PUT', `${loc}?digest=sha256:123`), 400, 'DIGEST_INVALID');
    expect((await req(u, 'GET', loc)).status).to.equal(204);
  });

  it('monolithic POST with a wrong digest stores nothing', async () => {
    const data = randomBytes(100);
    const wrong = sha256(Buffer.from('x'));
    await expectError(req(u, 'POST', `/v2/up/monowrong/blobs/uploads/?digest=${wrong}`, data), 400, 'DIGEST_INVALID');
    await expectError(req(u, 'HEAD', `/v2/up/monowrong/blobs/${wrong}`), 404, 'BLOB_UNKNOWN');
    await expectError(req(u, 'HEAD', `/v2/up/monowrong/blobs/${sha256(data)}`), 404, 'BLOB_UNKNOWN');
  });

  it('DELETE cancels an upload; unknown uploads are 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const loc = await start('up/cancel');
    await req(u, 'PATCH', loc, randomBytes(10));
    expect((await req(u, 'DELETE', loc)).status).to.equal(204);
    await expectError(req(u, 'GET', loc), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(req(u, 'PATCH', loc, randomBytes(10)), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(req(u, 'DELETE', loc), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(req(u, 'GET', '/v2/up/cancel/blobs/uploads/not-a-uuid'), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(req(u, 'PUT', `/v2/up/cancel/blobs/uploads/00000000-0000-0000-0000-000000000000?digest=${sha256('')}`), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('an aborted PATCH keeps what arrived; the client resumes from the reported offset', async () => {
    const data = randomBytes(3 << 20);
    const loc = await start('up/aborted');
    await abortedRequest(u, 'PATCH', loc, data.length, data.subarray(0, 1 << 20));
    const st = await req(u, 'GET', loc);
    expect(st.status).to.equal(204);
    const end = Number(st.headers.get('range')!.split('-')[1]);
    const have = end === 0 ? 0 : end + 1;
    expect(have).to.be.at.most(1 << 20);
    const res = await req(u, 'PATCH', loc, data.subarray(have), { 'Content-Range': `${have}-${data.length - 1}` });
    expect(res.status).to.equal(202);
    const put = await req(u, 'PUT', `${loc}?digest=${sha256(data)}`);
    expect(put.status, put.body.toString()).to.equal(201);
    expect((await req(u, 'GET', `/v2/up/aborted/blobs/${sha256(data)}`)).body.equals(data)).to.equal(true);
  });

  it('an aborted monolithic push stores no blob', async () => {
    const data = randomBytes(2 << 20);
    await abortedRequest(u, 'POST', `/v2/up/abortmono/blobs/uploads/?digest=${sha256(data)}`, data.length, data.subarray(0, 1 << 20));
    await expectError(req(u, 'HEAD', `/v2/up/abortmono/blobs/${sha256(data)}`), 404, 'BLOB_UNKNOWN');
  });

  it('mounts from another repository, falls back to a session when it cannot', async () => {
    const data = randomBytes(64);
    const d = sha256(data);
    await pushBlob(u, 'mount/src', data, d);
    let res = await req(u, 'POST', `/v2/mount/dst/blobs/uploads/?mount=${d}&from=mount/src`);
    expect(res.status).to.equal(201);
    expect(res.headers.get('location')).to.equal(`${u}/v2/mount/dst/blobs/${d}`);
    expect(res.headers.get('docker-content-digest')).to.equal(d);
    expect((await req(u, 'GET', `/v2/mount/dst/blobs/${d}`)).body.equals(data)).to.equal(true);
    // not in "from": a session instead
    res = await req(u, 'POST', `/v2/mount/dst2/blobs/uploads/?mount=${d}&from=mount/elsewhere`);
    expect(res.status).to.equal(202);
    expect(res.headers.get('docker-upload-uuid')).to.be.a('string');
    // unknown blob: a session
    res = await req(u, 'POST', `/v2/mount/dst2/blobs/uploads/?mount=${sha256('nope')}&from=mount/src`);
    expect(res.status).to.equal(202);
    // no "from": the registry may mount any blob it holds
    res = await req(u, 'POST', `/v2/mount/dst3/blobs/uploads/?mount=${d}`);
    expect(res.status).to.equal(201);
    await expectError(req(u, 'POST', '/v2/mount/dst3/blobs/uploads/?mount=sha256:bad'), 400, 'DIGEST_INVALID');
  });

  it('concurrent pushes of the same blob end in one good blob', async () => {
    const data = randomBytes(1 << 20);
    const d = sha256(data);
    await Promise.all(Array.from({ length: 6 }, (_, i) => pushBlob(u, `conc/r${i % 2}`, data, d)));
    for (const n of ['conc/r0', 'conc/r1']) expect((await req(u, 'GET', `/v2/${n}/blobs/${d}`)).body.equals(data)).to.equal(true);
  });

  it('signs the upload state in Location and refuses a tampered or foreign one', async () => {
    const data = randomBytes(3000);
    const post = await req(u, 'POST', '/v2/up/state/blobs/uploads/');
    const first = new URL(post.headers.get('location')!);
    const state = first.searchParams.get('_state')!;
    const json = JSON.parse(Buffer.from(state.replace(/-/g, '+').replace(/_/g, '/'), 'base64').subarray(32).toString());
    expect(json).to.include({ Name: 'up/state', UUID: post.headers.get('docker-upload-uuid'), Offset: 0 });
    const patch = await req(u, 'PATCH', first.pathname + first.search, data.subarray(0, 1000), { 'Content-Range': '0-999' });
    expect(patch.status).to.equal(202);
    const next = new URL(patch.headers.get('location')!);
    expect(next.searchParams.get('_state')).to.not.equal(state); // the offset moved
    // tampered: one byte of the JSON changed
    const raw = Buffer.from(state.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    raw[raw.length - 3] ^= 1;
    const bad = raw.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
    await expectError(req(u, 'PATCH', `${first.pathname}?_state=${encodeURIComponent(bad)}`, data.subarray(1000), { 'Content-Range': '1000-2999' }), 400, 'BLOB_UPLOAD_INVALID');
    await expectError(req(u, 'GET', `${first.pathname}?_state=garbage`), 400, 'BLOB_UPLOAD_INVALID');
    // a valid state used on another upload or repository
    const other = await req(u, 'POST', '/v2/up/state2/blobs/uploads/');
    const otherLoc = new URL(other.headers.get('location')!);
    await expectError(req(u, 'GET', `${otherLoc.pathname}${next.search}`), 400, 'BLOB_UPLOAD_INVALID');
    // a registry with another secret refuses it
    const stranger = await startTestRegistry('', { driver: 'inmemory', secret: 'another-secret' });
    try {
      await expectError(req(stranger.url, 'GET', next.pathname.replace('up/state', 'up/state') + next.search), 400, 'BLOB_UPLOAD_INVALID');
    } finally {
      await stranger.stop();
    }
    const put = await req(u, 'PUT', `${next.pathname}${next.search}&digest=${sha256(data)}`, data.subarray(1000), { 'Content-Range': '1000-2999' });
    expect(put.status, put.body.toString()).to.equal(201);
  });

  it('accepts an empty blob', async () => {
    const d = sha256(Buffer.alloc(0));
    const res = await req(u, 'POST', `/v2/up/empty/blobs/uploads/?digest=${d}`, Buffer.alloc(0));
    expect(res.status).to.equal(201);
    const head = await req(u, 'HEAD', `/v2/up/empty/blobs/${d}`);
    expect(head.headers.get('content-length')).to.equal('0');
  });
});
