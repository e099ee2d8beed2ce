// The redis section's other shapes, on real redis-servers the test starts:
// TLS with a client certificate (3.x's tls files), a 3-node Redis Cluster
// (addrs with several addresses), and Sentinel (3.x's mastername, Harbor's
// addr + sentinelMasterSet). In each the registry pushes, pulls, caches and
// locks through Redis without a single Redis error.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import type { RedisDescriptorCache } from '../../lib/cache/redisDescriptorCache.js';
import { type TestRegistry, capturingLogger, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { startRedisCluster, startRedisWith, startSentinel } from '../helpers/redis.js';
import { GcJournal, gcReference } from '../../lib/cache/gcJournal.js';
import { pushBlob, pushManifest, req } from '../helpers/http.js';
import { image } from '../helpers/ociLayout.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function roundTrip(r: TestRegistry, repo: string) {
  const img = image(2);
  for (const b of [img.config, ...img.layers]) await pushBlob(r.url, repo, b.data, b.digest);
  await pushManifest(r.url, repo, 'v1', img.manifest.data, OCI_MANIFEST);
  const m = await req(r.url, 'GET', `/v2/${repo}/manifests/v1`, undefined, { Accept: OCI_MANIFEST });
  expect(m.status).to.equal(200);
  expect(m.body.equals(img.manifest.data)).to.equal(true);
  for (const l of img.layers) {
    expect((await req(r.url, 'HEAD', `/v2/${repo}/blobs/${l.digest}`)).status).to.equal(200);
    expect((await req(r.url, 'GET', `/v2/${repo}/blobs/${l.digest}`)).body.equals(l.data)).to.equal(true);
  }
  return img;
}

const errorsOf = (r: TestRegistry) => (r.registry.cache as RedisDescriptorCache).errors;

describe('cache: redis over TLS, as a Cluster, and through Sentinel', function () {
  this.timeout(120000);
  let dir: string;

  before(async function () {
    requireTool(this, 'redis-server');
    requireTool(this, 'redis-cli');
    requireTool(this, 'openssl');
    dir = await tempDir('redis-topo-');
  });
  after(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

  it('TLS with a client certificate, from 3.x\'s tls.certificate, key and clientcas; clientname is used', async () => {
    const f = (n: string) => join(dir, n);
    const ossl = (...a: string[]) => execFileSync('openssl', a, { stdio: 'ignore' });
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=test-ca');
    for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1'], ['client', 'extendedKeyUsage=clientAuth']]) {
      ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`);
      execFileSync('sh', ['-c', `printf '%s\\n' '${ext}' > ${f(`${name}.ext`)}`]);
      ossl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '1', '-extfile', f(`${name}.ext`));
    }
    const node = await startRedisWith(['--tls-cert-file', f('server.pem'), '--tls-key-file', f('server.key'), '--tls-ca-cert-file', f('ca.pem'), '--tls-auth-clients', 'yes'], dir, { tlsOnly: true });
    const tls = { ca: execFileSync('cat', [f('ca.pem')]), cert: execFileSync('cat', [f('client.pem')]), key: execFileSync('cat', [f('client.key')]) };
    const check = new Redis({ port: node.port, host: '127.0.0.1', tls, maxRetriesPerRequest: 1 });
    check.on('error', () => {});
    const yaml = `redis:\n  addrs: [127.0.0.1:${node.port}]\n  clientname: registry-tls\n  tls:\n    certificate: ${f('client.pem')}\n    key: ${f('client.key')}\n    clientcas: [${f('ca.pem')}]\n`;
    const r = await startTestRegistry(yaml, { cache: 'redis', secret: 's' });
    // A registry without the tls section cannot talk to this server: TLS really is on.
    const plain = await startTestRegistry(`redis:\n  addrs: [127.0.0.1:${node.port}]\n`, { cache: 'redis', secret: 's' });
    try {
      const img = await roundTrip(r, 'tls/app');
      expect(await check.hget(`blobs::${img.layers[0].digest}`, 'size')).to.equal(String(img.layers[0].size));
      expect(String(await check.client('LIST'))).to.include('name=registry-tls');
      expect(errorsOf(r)).to.equal(0);
      await roundTrip(plain, 'tls/plain');
      expect(errorsOf(plain)).to.be.above(0);
    } finally {
      check.disconnect();
      await r.stop();
      await plain.stop();
      await node.stop();
    }
  });

  it('a 3-node Redis Cluster from addrs: cache and manifest locks across slots, two registries, the collection journal', async () => {
    const cluster = await startRedisCluster(dir, 3);
    const yaml = `redis:\n  addrs: [${cluster.addrs.join(', ')}]\n  dialtimeout: 2s\n  readtimeout: 1s\n  writetimeout: 1s\n`;
    const root = join(dir, 'cluster-store');
    const logs = capturingLogger('warn');
    const a = await startTestRegistry(yaml, { cache: 'redis', secret: 's', root, log: logs.log });
    const b = await startTestRegistry(yaml, { cache: 'redis', secret: 's', root, log: logs.log });
    const check = new Cluster(cluster.addrs.map((x) => ({ host: '127.0.0.1', port: Number(x.split(':')[1]) })));
    check.on('error', () => {});
    try {
      const img = await roundTrip(a, 'cluster/app');
      expect((await req(b.url, 'GET', `/v2/cluster/app/manifests/${img.manifest.digest}`)).status).to.equal(200);
      // distribution's keys, spread over the cluster's slots.
      expect(await check.hget(`blobs::${img.layers[0].digest}`, 'size')).to.equal(String(img.layers[0].size));
      expect(await check.sismember('repository::cluster/app::blobs', img.layers[0].digest)).to.equal(1);
      // A push and a delete of one digest through the two nodes: serialised by the cluster lock.
      for (let i = 0; i < 10; i++) {
        await pushManifest(a.url, 'cluster/app', 'base', img.manifest.data, OCI_MANIFEST);
        const [del, put] = await Promise.all([
          req(a.url, 'DELETE', `/v2/cluster/app/manifests/${img.manifest.digest}`),
          req(b.url, 'PUT', `/v2/cluster/app/manifests/t${i}`, img.manifest.data, { 'Content-Type': OCI_MANIFEST }),
        ]);
        expect(del.status, del.body.toString()).to.be.oneOf([202, 404]);
        expect(put.status).to.equal(201);
        const byTag = await req(a.url, 'GET', `/v2/cluster/app/manifests/t${i}`);
        if (byTag.status === 200) expect((await req(b.url, 'GET', `/v2/cluster/app/manifests/${img.manifest.digest}`)).status).to.equal(200);
      }
      // The collection journal's scripts: all their keys in one slot.
      const journal = new GcJournal(check);
      await journal.begin();
      expect(await gcReference(check, ['sha256:j'])).to.equal('go');
      expect([...await journal.sweep(['sha256:d', 'sha256:r'])]).to.deep.equal(['sha256:j']);
      expect(await gcReference(check, ['sha256:r'])).to.equal('go');
      expect(await journal.claim(['sha256:d', 'sha256:r'])).to.deep.equal(['sha256:d']);
      expect(await gcReference(check, ['sha256:d'])).to.equal('wait');
      await journal.release(['sha256:d']);
      await journal.end();
      expect(errorsOf(a) + errorsOf(b), JSON.stringify(logs.records.slice(0, 5))).to.equal(0);
    } finally {
      check.disconnect();
      await a.stop();
      await b.stop();
      await cluster.stop();
    }
  });

  it('Sentinel: 3.x\'s addrs + mastername, and Harbor\'s addr + sentinelMasterSet', async () => {
    const master = await startRedisWith([], dir);
    const sentinel = await startSentinel(dir, master.port, 'regmaster');
    const check = new Redis({ port: master.port, host: '127.0.0.1' });
    check.on('error', () => {});
    const three = await startTestRegistry(`redis:\n  addrs: [127.0.0.1:${sentinel.port}]\n  mastername: regmaster\n`, { cache: 'redis', secret: 's' });
    const harbor = await startTestRegistry(`redis:\n  addr: 127.0.0.1:${sentinel.port}\n  sentinelMasterSet: regmaster\n  readtimeout: 10s\n  writetimeout: 10s\n  dialtimeout: 10s\n  db: 0\n  pool:\n    maxidle: 100\n    maxactive: 500\n    idletimeout: 60s\n`, { cache: 'redis', secret: 's' });
    try {
      for (const [r, repo] of [[three, 'sentinel/three'], [harbor, 'sentinel/harbor']] as const) {
        const img = await roundTrip(r, repo);
        expect(await check.sismember(`repository::${repo}::blobs`, img.layers[0].digest), repo).to.equal(1);
        expect(errorsOf(r), repo).to.equal(0);
      }
    } finally {
      check.disconnect();
      await three.stop();
      await harbor.stop();
      await sentinel.stop();
      await master.stop();
    }
  });
});
