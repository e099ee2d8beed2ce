// The azure driver without an account key: DefaultAzureCredential. The test
// plays the managed-identity endpoint of App Service (IDENTITY_ENDPOINT and
// IDENTITY_HEADER, which the credential chain reads), handing out bearer
// tokens that azurite, in OAuth mode over HTTPS, accepts. Redirects are then
// signed with a user delegation key instead of the account key.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChildRegistry, REPO_ROOT, requireTool, spawnRegistry, tempDir } from '../helpers/registry.js';
import { type Azurite, AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../helpers/azurite.js';
import { expectError, pushBlob, req } from '../helpers/http.js';
import { sha256 } from '../helpers/ociLayout.js';

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** A token shaped like Entra ID's (azurite checks issuer, audience and times; not the signature). */
function token(): { jwt: string; exp: number } {
  const now = Math.floor(Date.now() / 1000);
  const tid = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const exp = now + 3600;
  const jwt = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({
    aud: 'https://storage.azure.com', iss: `https://sts.windows.net/${tid}/`, iat: now - 60, nbf: now - 60, exp,
    oid: '11059fcc-5514-4800-b5f8-49808b9cfab6', tid, sub: 'registry',
  })}.${randomBytes(32).toString('base64url')}`;
  return { jwt, exp };
}

function httpsGet(url: string, ca: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts) }));
    }).on('error', reject);
  });
}

describe('storage: azure with DefaultAzureCredential (managed identity, azurite over HTTPS)', function () {
  this.timeout(120000);
  let dir: string;
  let azurite: Azurite;
  let identity: http.Server;
  let tokenRequests = 0;
  let reg: ChildRegistry;
  let ca: string;

  before(async function () {
    if (!requireTool(this, 'openssl')) return;
    dir = await tempDir('azure-identity-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    ca = await readFile(join(dir, 'cert.pem'), 'utf8');
    azurite = await startAzurite({ cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') });
    const container = `c${randomBytes(6).toString('hex')}`;
    // The container is made with the account key, from a process that trusts the certificate.
    execFileSync(process.execPath, ['--input-type=module', '-e', `
      import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
      await new BlobServiceClient(${JSON.stringify(azurite.serviceurl)}, new StorageSharedKeyCredential(${JSON.stringify(AZURITE_ACCOUNT)}, ${JSON.stringify(AZURITE_KEY)}))
        .getContainerClient(${JSON.stringify(container)}).create();
    `], { cwd: REPO_ROOT, env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') }, stdio: 'inherit' });
    identity = http.createServer((rq, rs) => {
      const u = new URL(rq.url!, 'http://x');
      if (rq.headers['x-identity-header'] !== 'identity-secret' || !u.searchParams.get('resource')?.startsWith('https://storage.azure.com')) {
        rs.writeHead(400).end('{"error":"bad request"}');
        return;
      }
      tokenRequests++;
      const t = token();
      rs.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({
        access_token: t.jwt, expires_on: String(t.exp), resource: 'https://storage.azure.com', token_type: 'Bearer',
      }));
    });
    await new Promise<void>((r) => identity.listen(0, '127.0.0.1', r));
    const cfg = join(dir, 'registry.yml');
    await writeFile(cfg, `version: 0.1\nlog:\n  level: warn\nstorage:\n  azure:\n    accountname: ${AZURITE_ACCOUNT}\n    container: ${container}\n    serviceurl: ${azurite.serviceurl}\n    rootdirectory: /reg\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: s\n`);
    const clean = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('AZURE_') || k.startsWith('MSI_') || k === 'IDENTITY_ENDPOINT').map((k) => [k, '']));
    reg = await spawnRegistry(cfg, {
      ...clean,
      NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'),
      IDENTITY_ENDPOINT: `http://127.0.0.1:${(identity.address() as { port: number }).port}/msi/token`,
      IDENTITY_HEADER: 'identity-secret',
    });
  });
  after(async () => {
    await reg?.stop();
    await new Promise((r) => (identity ? identity.close(r) : r(null)));
    await azurite?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pushes and pulls with managed-identity tokens, and redirects with a user delegation SAS', async () => {
    const data = randomBytes(200000);
    const d = sha256(data);
    await pushBlob(reg.url, 'idn/repo', data, d);
    expect(tokenRequests, reg.output()).to.be.greaterThan(0);
    const res = await req(reg.url, 'GET', `/v2/idn/repo/blobs/${d}`);
    expect(res.status, reg.output()).to.equal(307);
    const location = res.headers.get('location')!;
    expect(location).to.include('skoid=').and.include('sig='); // signed by a delegation key, not the account key
    const followed = await httpsGet(location, ca);
    expect(followed.status, followed.body.toString()).to.equal(200);
    expect(followed.body.equals(data)).to.equal(true);
    expect((await req(reg.url, 'HEAD', `/v2/idn/repo/blobs/${d}`)).headers.get('content-length')).to.equal(String(data.length));
    await expectError(req(reg.url, 'GET', `/v2/idn/repo/blobs/${sha256('missing')}`), 404, 'BLOB_UNKNOWN');
  });
});
