// Counts storage requests on the object-store drivers: a counting proxy sits
// between the registry and the stand-in (s3rver, azurite, the GCS emulator)
// and names every request. Three operations on a 3-layer image: a push by
// skopeo, a pull by skopeo (registry freshly started: nothing cached), and one
// manifest GET by tag (fresh registry, then the same GET again, cached).
// Blob GETs that clients make themselves, following a redirect, are counted
// apart: they are storage requests, but not the registry's.
// distribution 2.8.2 is measured on s3rver for the pull and the manifest GET
// (it cannot push there: it needs ListMultipartUploads). Last, an offline
// garbage-collect sweeps ORPHANS unreferenced blobs (and their layer links)
// on each store: the delete requests it makes show the batching.
// Usage: npm run bench:requests   (needs skopeo; docker-registry for the comparison)
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { REGISTRY_BIN, freePort, spawnRegistry, waitForHttp } from '../test/helpers/registry.js';
import { S3RVER_KEY, S3RVER_SECRET, startS3rver } from '../test/helpers/s3rver.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../test/helpers/azurite.js';
import { startGcsEmulator } from '../test/helpers/gcs.js';
import { image, imageBlobs, writeLayout } from '../test/helpers/ociLayout.js';
import { skopeo } from '../test/helpers/skopeo.js';
import { type Classifier, type Counts, s3Kind, startStorageProxy } from '../test/helpers/storageProxy.js';
import { track } from '../test/helpers/children.js';



const azureKind: Classifier = (m, u, h) => {
  const comp = u.searchParams.get('comp');
  if (m === 'GET' && comp === 'list') return 'List Blobs';
  if (m === 'GET') return 'Get Blob';
  if (m === 'HEAD') return 'Get Blob Properties';
  if (m === 'PUT' && comp === 'appendblock') return 'Append Block';
  if (m === 'PUT' && h['x-ms-copy-source']) return 'Copy Blob';
  if (m === 'PUT' && h['x-ms-blob-type'] === 'AppendBlob') return 'Put Blob (append)';
  if (m === 'PUT') return 'Put Blob';
  if (m === 'DELETE') return 'Delete Blob';
  return `${m} ${comp ?? ''}`;
};

const gcsKind: Classifier = (m, u) => {
  const p = u.pathname;
  if (m === 'POST' && p.startsWith('/upload/')) return 'objects.insert';
  if (m === 'POST' && p === '/batch/storage/v1') return 'batch (delete)';
  if (m === 'POST' && p.endsWith('/compose')) return 'objects.compose';
  if (m === 'POST' && /\/(rewriteTo|copyTo)\//.test(p)) return 'objects.rewrite';
  if (m === 'GET' && /\/b\/[^/]+\/o$/.test(p)) return 'objects.list';
  if (m === 'GET' && (u.searchParams.get('alt') === 'media' || p.startsWith('/download/'))) return 'objects.get (media)';
  if (m === 'GET' && /\/b\/[^/]+\/o\/[^/]+$/.test(p)) return 'objects.get (metadata)';
  if (m === 'GET') return 'objects.get (signed URL)';
  if (m === 'DELETE') return 'objects.delete';
  return `${m} ${p}`;
};

interface Backend { name: string; classify: Classifier; start(): Promise<{ target: string; storageYaml(proxy: string): string; distributionYaml?(proxy: string): string; stop(): Promise<void> }> }

const only = process.env.ONLY;
const backends: Backend[] = ([
  {
    name: 's3 (s3rver)', classify: s3Kind,
    async start() {
      const s3 = await startS3rver();
      const bucket = await s3.bucket();
      return {
        target: s3.endpoint,
        storageYaml: (proxy) => `  s3:\n    region: us-east-1\n    regionendpoint: ${proxy}\n    bucket: ${bucket}\n    accesskey: ${S3RVER_KEY}\n    secretkey: ${S3RVER_SECRET}\n    rootdirectory: /reg\n`,
        distributionYaml: (proxy) => `  s3:\n    region: us-east-1\n    regionendpoint: ${proxy}\n    bucket: ${bucket}\n    accesskey: ${S3RVER_KEY}\n    secretkey: ${S3RVER_SECRET}\n    rootdirectory: /reg\n    secure: false\n    v4auth: true\n`,
        stop: () => s3.stop(),
      };
    },
  },
  {
    name: 'azure (azurite)', classify: azureKind,
    async start() {
      const az = await startAzurite();
      const container = `c${Date.now().toString(36)}`;
      await new BlobServiceClient(az.serviceurl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).getContainerClient(container).create();
      const target = new URL(az.serviceurl).origin;
      return {
        target,
        storageYaml: (proxy) => `  azure:\n    accountname: ${AZURITE_ACCOUNT}\n    accountkey: ${AZURITE_KEY}\n    container: ${container}\n    serviceurl: ${proxy}/${AZURITE_ACCOUNT}\n    rootdirectory: /reg\n`,
        stop: () => az.stop(),
      };
    },
  },
  {
    name: 'gcs (Cloud Storage emulator)', classify: gcsKind,
    async start() {
      const emu = await startGcsEmulator();
      const bucket = await emu.bucket();
      const creds = `      client_email: ${emu.credentials.client_email}\n      private_key: ${JSON.stringify(emu.credentials.private_key)}\n`;
      return {
        target: emu.endpoint,
        storageYaml: (proxy) => `  gcs:\n    bucket: ${bucket}\n    endpoint: ${proxy}\n    rootdirectory: /reg\n    credentials:\n${creds}`,
        stop: () => emu.stop(),
      };
    },
  },
] as Backend[]).filter((b) => !only || b.name.startsWith(only));

async function startDistributionOn(storage: string, dir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const cfg = join(dir, 'distribution.yml');
  await writeFile(cfg, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n${storage}  cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: s\n`);
  // AWS_CA_BUNDLE (set on some machines) makes distribution's old aws-sdk-go panic at start.
  const { AWS_CA_BUNDLE: _ca, ...env } = process.env;
  const proc: ChildProcess = track(spawn('docker-registry', ['serve', cfg], { stdio: 'ignore', detached: true, env }));
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`);
  return {
    url,
    async stop() {
      const exited = new Promise((r) => proc.once('exit', r));
      try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
      await exited;
    },
  };
}

const ORPHANS = 1000;

/** Pushes ORPHANS small blobs no manifest references, 8 at a time, each in one POST ?digest=. */
async function pushOrphans(url: string): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < ORPHANS) {
      const body = Buffer.from(`orphan ${next++} ${Date.now()}`);
      const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      const r = await fetch(`${url}/v2/bench/orphans/blobs/uploads/?digest=${digest}`, { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' } });
      await r.arrayBuffer();
      if (r.status !== 201) throw new Error(`orphan push answered ${r.status}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** Not spawnSync: the counting proxy runs in this process and must go on answering. */
async function collect(cfg: string): Promise<void> {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [REGISTRY_BIN, 'garbage-collect', '--offline', '--grace', '0s', cfg], { encoding: 'utf8', maxBuffer: 64 << 20 },
      (e, out, err) => (e ? reject(new Error(`garbage-collect failed: ${e.message} ${err}`)) : resolve(out)));
  });
  const eligible = (stdout.match(/^blob eligible for deletion/gm) ?? []).length;
  if (eligible !== ORPHANS) throw new Error(`garbage-collect named ${eligible} blobs, not ${ORPHANS}`);
}

const fmt = (m: Map<string, number>) => {
  const total = [...m.values()].reduce((a, b) => a + b, 0);
  return { total, detail: [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v} ${k}`).join(', ') || '-' };
};

async function main(): Promise<void> {
  if (spawnSync('sh', ['-c', 'command -v skopeo']).status !== 0) throw new Error('skopeo is needed (apt-get install skopeo)');
  const hasDistribution = spawnSync('sh', ['-c', 'command -v docker-registry']).status === 0;
  const dir = await mkdtemp(join(tmpdir(), 'bench-requests-'));
  const img = image(3, 'amd64', 1 << 20);
  await writeLayout(join(dir, 'img'), img.manifest, imageBlobs(img), 'v1');
  const rows: string[] = [];
  const row = (who: string, op: string, c: Counts) => {
    const r = fmt(c.registry);
    const cl = fmt(c.client);
    rows.push(`| ${who} | ${op} | ${r.total} | ${r.detail} | ${cl.total ? `${cl.total}: ${cl.detail}` : '-'} |`);
  };
  try {
    for (const b of backends) {
      const be = await b.start();
      const proxy = await startStorageProxy(be.target, b.classify, Boolean(process.env.TRACE));
      const cfg = join(dir, 'registry.yml');
      await writeFile(cfg, `version: 0.1\nlog:\n  level: error\nstorage:\n${be.storageYaml(proxy.url)}  cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:0\n  secret: s\n`);
      try {
        let reg = await spawnRegistry(cfg);
        proxy.take();
        await skopeo('copy', `oci:${join(dir, 'img')}:v1`, `docker://${new URL(reg.url).host}/bench/img:v1`);
        row(`ours, ${b.name}`, 'push (skopeo)', proxy.take());
        await reg.stop();

        reg = await spawnRegistry(cfg);
        proxy.take();
        await skopeo('copy', `docker://${new URL(reg.url).host}/bench/img:v1`, `oci:${join(dir, `out-${b.classify.name}`)}:v1`);
        row(`ours, ${b.name}`, 'pull (skopeo), uncached', proxy.take());
        await reg.stop();

        reg = await spawnRegistry(cfg, { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' });
        proxy.take();
        await skopeo('copy', `docker://${new URL(reg.url).host}/bench/img:v1`, `oci:${join(dir, `out-nr-${b.classify.name}`)}:v1`);
        row(`ours, ${b.name}`, 'pull (skopeo), uncached, redirects off', proxy.take());
        await reg.stop();

        reg = await spawnRegistry(cfg);
        proxy.take();
        const get = () => fetch(`${reg.url}/v2/bench/img/manifests/v1`, { headers: { Accept: img.manifest.mediaType } }).then((r) => r.arrayBuffer());
        await get();
        row(`ours, ${b.name}`, 'manifest GET by tag, uncached', proxy.take());
        await get();
        row(`ours, ${b.name}`, 'manifest GET by tag, again', proxy.take());
        await reg.stop();

        reg = await spawnRegistry(cfg);
        await pushOrphans(reg.url);
        await reg.stop();
        proxy.take();
        await collect(cfg);
        row(`ours, ${b.name}`, `garbage-collect (offline) of ${ORPHANS.toLocaleString('en')} unreferenced blobs`, proxy.take());

        if (hasDistribution && be.distributionYaml) {
          const dist = await startDistributionOn(be.distributionYaml(proxy.url), dir);
          try {
            proxy.take();
            await skopeo('copy', `docker://${new URL(dist.url).host}/bench/img:v1`, `oci:${join(dir, 'out-dist')}:v1`);
            row(`distribution 2.8.2, ${b.name}`, 'pull (skopeo), uncached', proxy.take());
            await dist.stop();
            const distNR = await startDistributionOn(`${be.distributionYaml(proxy.url)}  redirect:\n    disable: true\n`, dir);
            proxy.take();
            await skopeo('copy', `docker://${new URL(distNR.url).host}/bench/img:v1`, `oci:${join(dir, 'out-dist-nr')}:v1`);
            row(`distribution 2.8.2, ${b.name}`, 'pull (skopeo), uncached, redirects off', proxy.take());
            await distNR.stop();
            const dist2 = await startDistributionOn(be.distributionYaml(proxy.url), dir);
            proxy.take();
            await fetch(`${dist2.url}/v2/bench/img/manifests/v1`, { headers: { Accept: img.manifest.mediaType } }).then((r) => r.arrayBuffer());
            row(`distribution 2.8.2, ${b.name}`, 'manifest GET by tag, uncached', proxy.take());
            await fetch(`${dist2.url}/v2/bench/img/manifests/v1`, { headers: { Accept: img.manifest.mediaType } }).then((r) => r.arrayBuffer());
            row(`distribution 2.8.2, ${b.name}`, 'manifest GET by tag, again', proxy.take());
            await dist2.stop();
          } catch (e) {
            await dist.stop();
            throw e;
          }
        }
      } finally {
        await proxy.close();
        await be.stop();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log('| registry, storage | operation | requests by the registry | by kind | by clients following redirects |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

await main();
