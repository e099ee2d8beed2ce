// The registry on the azure driver (azurite): the API, redirects to SAS URLs,
// and a skopeo round trip; a second registry on the same container serves it.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { type TestRegistry, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type Azurite, AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../helpers/azurite.js';
import { expectError, pushBlob, req } from '../helpers/http.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';
import { image, imageBlobs, sha256, writeLayout } from '../helpers/ociLayout.js';

describe('storage: the registry on azure (azurite)', function () {
  this.timeout(120000);
  let azurite: Azurite;
  let container: string;
  let r: TestRegistry;
  let streaming: TestRegistry;
  let dir: string;
  const section = (redirect: boolean) => `  azure:\n    accountname: ${AZURITE_ACCOUNT}\n    accountkey: ${AZURITE_KEY}\n    container: ${container}\n    serviceurl: ${azurite.serviceurl}\n    rootdirectory: /reg\n  redirect:\n    disable: ${!redirect}\n`;

  before(async () => {
    azurite = await startAzurite();
    container = `c${randomBytes(6).toString('hex')}`;
    await new BlobServiceClient(azurite.serviceurl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).getContainerClient(container).create();
    r = await startTestRegistry('', { storageYaml: section(true), secret: 's' });
    streaming = await startTestRegistry('', { storageYaml: section(false), secret: 's' });
    dir = await tempDir('azure-skopeo-');
  });
  after(async () => {
    await r?.stop();
    await streaming?.stop();
    await azurite?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('redirects blob GETs to a SAS URL that serves the bytes; streams when redirects are off', async () => {
    const data = randomBytes(300000);
    const d = sha256(data);
    await pushBlob(r.url, 'az/blob', data, d);
    const res = await req(r.url, 'GET', `/v2/az/blob/blobs/${d}`);
    expect(res.status).to.equal(307);
    const location = res.headers.get('location')!;
    expect(location).to.include(azurite.serviceurl).and.include('sig=');
    const followed = Buffer.from(await (await fetch(location)).arrayBuffer());
    expect(followed.equals(data)).to.equal(true);
    expect((await req(r.url, 'HEAD', `/v2/az/blob/blobs/${d}`)).status).to.equal(200); // HEAD is answered here
    const direct = await req(streaming.url, 'GET', `/v2/az/blob/blobs/${d}`);
    expect(direct.status).to.equal(200);
    expect(direct.body.equals(data)).to.equal(true);
    const ranged = await req(streaming.url, 'GET', `/v2/az/blob/blobs/${d}`, undefined, { Range: 'bytes=10-19' });
    expect(ranged.status).to.equal(206);
    expect(ranged.body.equals(data.subarray(10, 20))).to.equal(true);
  });

  it('takes chunked uploads, resumed by the other registry process', async () => {
    const data = randomBytes(3 << 20);
    const post = await req(r.url, 'POST', '/v2/az/chunks/blobs/uploads/');
    const loc = new URL(post.headers.get('location')!);
    expect((await req(r.url, 'PATCH', loc.pathname + loc.search, data.subarray(0, 1 << 20), { 'Content-Range': `0-${(1 << 20) - 1}` })).status).to.equal(202);
    const res = await req(streaming.url, 'PATCH', loc.pathname + loc.search, data.subarray(1 << 20), { 'Content-Range': `${1 << 20}-${data.length - 1}` });
    expect(res.status).to.equal(202);
    const next = new URL(res.headers.get('location')!);
    const put = await req(streaming.url, 'PUT', `${next.pathname}${next.search}&digest=${sha256(data)}`);
    expect(put.status, put.body.toString()).to.equal(201);
    await expectError(req(r.url, 'PUT', `${next.pathname}${next.search}&digest=${sha256(data)}`), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('skopeo copies an image in through one registry and out through the other', async function () {
    if (!requireTool(this, 'skopeo')) return;
    const img = image(3, 'amd64', 100000);
    await writeLayout(join(dir, 'in'), img.manifest, imageBlobs(img), 'v1');
    await skopeo('copy', `oci:${join(dir, 'in')}:v1`, `docker://${hostOf(r.url)}/az/img:v1`);
    expect(sha256(Buffer.from(await skopeo('inspect', '--raw', `docker://${hostOf(streaming.url)}/az/img:v1`)))).to.equal(img.manifest.digest);
    await skopeo('copy', `docker://${hostOf(r.url)}/az/img:v1`, `oci:${join(dir, 'out')}:v1`); // blobs via SAS redirects
    expect(JSON.parse(await skopeo('list-tags', `docker://${hostOf(streaming.url)}/az/img`)).Tags).to.deep.equal(['v1']);
  });
});
