// The azure driver's distribution 3 parameters, on azurite: the container is
// created at start (and a start that cannot create it fails, saying so),
// connectionstring, skipverify against azurite over HTTPS with a self-signed
// certificate, and the credentials types.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AccountSASPermissions, AccountSASResourceTypes, AccountSASServices, BlobServiceClient, StorageSharedKeyCredential, generateAccountSASQueryParameters,
} from '@azure/storage-blob';
import { ClientSecretCredential } from '@azure/identity';
import { AZURITE_ACCOUNT, AZURITE_KEY, type Azurite, startAzurite } from '../helpers/azurite.js';
import { requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { pushBlob, req } from '../helpers/http.js';
import { sha256 } from '../helpers/ociLayout.js';
import { AzureDriver } from '../../drivers/azure/driver.js';

describe('storage: azure parameters (azurite)', function () {
  this.timeout(120000);
  let azurite: Azurite;
  let service: BlobServiceClient;
  before(async () => {
    azurite = await startAzurite();
    service = new BlobServiceClient(azurite.serviceurl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
  });
  after(async () => { await azurite?.stop(); });

  const yaml = (container: string, extra = '') => `  azure:\n    accountname: ${AZURITE_ACCOUNT}\n    container: ${container}\n    serviceurl: ${azurite.serviceurl}\n${extra}`;

  it('creates a missing container at start, as distribution does', async () => {
    const container = `new${randomBytes(5).toString('hex')}`;
    expect(await service.getContainerClient(container).exists()).to.equal(false);
    const r = await startTestRegistry('', { storageYaml: yaml(container, `    accountkey: ${AZURITE_KEY}\n`) });
    try {
      expect(await service.getContainerClient(container).exists()).to.equal(true);
      const data = randomBytes(1000);
      await pushBlob(r.url, 'az/new', data, sha256(data));
      expect((await req(r.url, 'HEAD', `/v2/az/new/blobs/${sha256(data)}`)).status).to.equal(200);
    } finally {
      await r.stop();
    }
  });

  it('reads a connection string; a start whose credentials may not create the missing container fails, naming it', async () => {
    const cs = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${azurite.serviceurl};`;
    const container = `cs${randomBytes(5).toString('hex')}`;
    const r = await startTestRegistry('', { storageYaml: `  azure:\n    connectionstring: "${cs}"\n    container: ${container}\n  redirect:\n    disable: false\n` });
    try {
      const data = randomBytes(3000);
      await pushBlob(r.url, 'az/cs', data, sha256(data));
      // Shared-key signing from the connection string: redirects are SAS URLs that work.
      const res = await req(r.url, 'GET', `/v2/az/cs/blobs/${sha256(data)}`);
      expect(res.status).to.equal(307);
      expect(Buffer.from(await (await fetch(res.headers.get('location')!)).arrayBuffer()).equals(data)).to.equal(true);
    } finally {
      await r.stop();
    }
    // An account SAS that may see containers and read blobs, but not create anything.
    const sas = generateAccountSASQueryParameters({
      services: AccountSASServices.parse('b').toString(), resourceTypes: AccountSASResourceTypes.parse('co').toString(),
      permissions: AccountSASPermissions.parse('rl'), expiresOn: new Date(Date.now() + 3600e3),
    }, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).toString();
    const limited = `BlobEndpoint=${azurite.serviceurl};SharedAccessSignature=${sas}`;
    const missing = `ro${randomBytes(5).toString('hex')}`;
    let err: Error | undefined;
    try {
      const bad = await startTestRegistry('', { storageYaml: `  azure:\n    connectionstring: "${limited}"\n    container: ${missing}\n` });
      await bad.stop();
    } catch (e) { err = e as Error; }
    expect(err?.message).to.match(new RegExp(`storage\\.azure: azure: container ${missing} does not exist, and creating it failed \\(403`));
    // The same SAS with a container that exists starts and serves what is there.
    await service.getContainerClient(missing).create();
    const data = randomBytes(500);
    const writer = await startTestRegistry('', { storageYaml: `  azure:\n    connectionstring: "${cs}"\n    container: ${missing}\n` });
    await pushBlob(writer.url, 'az/sas', data, sha256(data));
    await writer.stop();
    const ok = await startTestRegistry('', { storageYaml: `  azure:\n    connectionstring: "${limited}"\n    container: ${missing}\n  redirect:\n    disable: true\n` });
    try {
      expect((await req(ok.url, 'GET', `/v2/az/sas/blobs/${sha256(data)}`)).body.equals(data)).to.equal(true);
    } finally {
      await ok.stop();
    }
  });

  it('skipverify talks to an endpoint with a self-signed certificate; without it the start fails', async function () {
    if (!requireTool(this, 'openssl')) return;
    const dir = await tempDir('azure-skipverify-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const secure = await startAzurite({ cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') });
    try {
      const container = `tls${randomBytes(5).toString('hex')}`;
      const y = (extra: string) => `  azure:\n    accountname: ${AZURITE_ACCOUNT}\n    accountkey: ${AZURITE_KEY}\n    container: ${container}\n    serviceurl: ${secure.serviceurl}\n    max_retries: 0\n${extra}  redirect:\n    disable: true\n`;
      let err: Error | undefined;
      try { await (await startTestRegistry('', { storageYaml: y('') })).stop(); } catch (e) { err = e as Error; }
      expect(err?.message).to.match(/self-signed certificate|certificate/i);
      const r = await startTestRegistry('', { storageYaml: y('    skipverify: true\n    retry_delay: 50ms\n') });
      try {
        const data = randomBytes(2000);
        await pushBlob(r.url, 'az/tls', data, sha256(data));
        expect((await req(r.url, 'GET', `/v2/az/tls/blobs/${sha256(data)}`)).body.equals(data)).to.equal(true);
      } finally {
        await r.stop();
      }
    } finally {
      await secure.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('builds the credential distribution 3 names: client_secret, shared_key, default', () => {
    const credOf = (d: AzureDriver) => (d as unknown as { service: { credential: unknown } }).service.credential;
    const secret = new AzureDriver({ accountname: 'a', container: 'c', credentials: { type: 'client_secret', tenantid: 't', clientid: 'id', secret: 's' } });
    expect(credOf(secret)).to.be.instanceOf(ClientSecretCredential);
    const shared = new AzureDriver({ accountname: 'a', accountkey: AZURITE_KEY, container: 'c', credentials: { type: 'shared_key' } });
    expect(credOf(shared)).to.be.instanceOf(StorageSharedKeyCredential);
    expect(() => new AzureDriver({ accountname: 'a', container: 'c', credentials: { type: 'client_secret', tenantid: 't' } })).to.throw(/needs tenantid, clientid and secret/);
    expect(() => new AzureDriver({ accountname: 'a', container: 'c', credentials: { type: 'shared_key' } })).to.throw(/needs storage\.azure\.accountkey/);
  });
});
