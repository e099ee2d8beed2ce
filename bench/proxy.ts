// Pull-through mode against docker-registry 2.8.2's proxy mode, side by side
// in one run, on the same upstream (docker-registry 2.8.2 serving a 3-layer,
// 256 MiB image from its filesystem). Each proxy reaches the upstream through
// its own counting front, so upstream requests and bytes are counted per
// proxy. Measured per round, on fresh proxies with empty storage:
//   - a cold pull (nothing cached) and a warm pull (all cached), wall time
//     and upstream requests; a pull from the upstream directly for reference;
//   - 16 concurrent cold pulls: wall time and upstream bytes fetched.
// Each fresh proxy first pulls another image twice (JIT warm-up), then
// its upstream counters are reset. A pull is what a client does: manifest GET by tag, then the config and the
// layers at once, each body read to the end (and discarded).
// Needs docker-registry (apt-get install docker-registry).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForHttp } from '../test/helpers/registry.js';
import { track } from '../test/helpers/children.js';
import { benchArgs } from './args.js';

const args = benchArgs(
  'npm run bench:proxy [-- --reps 3 --size-mib 256 --clients 16 --dir /tmp]',
  ['clients', 'dir', 'reps', 'size-mib'],
);
const REPS = Number(args.get('reps') ?? 3);
const SIZE = Number(args.get('size-mib') ?? 256) << 20;
const CLIENTS = Number(args.get('clients') ?? 16);
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

interface Blob { digest: string; size: number; file: string }
interface Proc { url: string; proc: ChildProcess }

/** Deterministic bytes (incompressible), written chunk by chunk. */
async function makeBlob(file: string, size: number, seed: number): Promise<Blob> {
  const h = createHash('sha256');
  const fh = await open(file, 'w');
  const block = Buffer.alloc(1 << 20);
  for (let o = 0; o < block.length; o += 64) createHash('sha512').update(`${seed}:${o}`).digest().copy(block, o);
  for (let off = 0, i = 0; off < size; off += block.length, i++) {
    block.writeUInt32LE(i, 0);
    const part = block.subarray(0, Math.min(block.length, size - off));
    h.update(part);
    await fh.write(part);
  }
  await fh.close();
  return { digest: `sha256:${h.digest('hex')}`, size, file };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function request(url: string, method: string, headers: Record<string, string> = {}, body?: NodeJS.ReadableStream | Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; bytes: number }> {
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method, headers, agent }, (res) => {
      let bytes = 0;
      const keep: Buffer[] = [];
      res.on('data', (d: Buffer) => { bytes += d.length; if (bytes <= 1 << 20) keep.push(d); });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(keep), bytes }));
      res.on('error', reject);
    });
    r.on('error', reject);
    if (Buffer.isBuffer(body)) r.end(body);
    else if (body) body.pipe(r);
    else r.end();
  });
}

async function pushBlob(base: string, repo: string, b: Blob): Promise<void> {
  const post = await request(`${base}/v2/${repo}/blobs/uploads/`, 'POST', { 'Content-Length': '0' });
  const loc = new URL(post.headers.location!, base);
  loc.searchParams.set('digest', b.digest);
  const put = await request(loc.toString(), 'PUT', { 'Content-Length': String(b.size), 'Content-Type': 'application/octet-stream' }, createReadStream(b.file));
  if (put.status !== 201) throw new Error(`push of ${b.digest} answered ${put.status}`);
}

/** A client's pull: the manifest by tag, then the config and every layer at once. */
async function pull(base: string, repo: string, tag: string): Promise<{ seconds: number; bytes: number }> {
  const t0 = performance.now();
  const m = await request(`${base}/v2/${repo}/manifests/${tag}`, 'GET', { Accept: OCI_MANIFEST });
  if (m.status !== 200) throw new Error(`manifest GET on ${base} answered ${m.status}: ${m.body.toString().slice(0, 200)}`);
  const man = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
  const got = await Promise.all([man.config, ...man.layers].map(async (d) => {
    const r = await request(`${base}/v2/${repo}/blobs/${d.digest}`, 'GET');
    if (r.status !== 200) throw new Error(`blob GET on ${base} answered ${r.status}`);
    return r.bytes;
  }));
  return { seconds: (performance.now() - t0) / 1000, bytes: got.reduce((a, b) => a + b, 0) };
}

/** Forwards to the upstream, counting requests and the bytes the upstream sent. */
function countingFront(upstream: string): Promise<{ url: string; server: http.Server; counts: { requests: number; blobGets: number; bytes: number }; reset(): void }> {
  const target = new URL(upstream);
  const counts = { requests: 0, blobGets: 0, bytes: 0 };
  const fwdAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const server = http.createServer((rq, rs) => {
    counts.requests++;
    if (rq.method === 'GET' && /\/blobs\/sha256:/.test(rq.url ?? '')) counts.blobGets++;
    const fwd = http.request({ host: target.hostname, port: target.port, method: rq.method, path: rq.url, headers: rq.headers, agent: fwdAgent }, (up) => {
      rs.writeHead(up.statusCode!, up.headers);
      up.on('data', (d: Buffer) => { counts.bytes += d.length; });
      up.pipe(rs);
    });
    fwd.on('error', () => rs.destroy());
    rq.pipe(fwd);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server, counts,
    reset() { counts.requests = 0; counts.blobGets = 0; counts.bytes = 0; },
  })));
}

async function startRegistry(kind: 'ours' | 'distribution' | 'upstream', dir: string, remote?: string): Promise<Proc> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const cfg = join(dir, 'config.yml');
  const proxy = remote ? `proxy:\n  remoteurl: ${remote}\n` : '';
  await writeFile(cfg, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: bench\n${proxy}`);
  const proc = kind === 'ours'
    ? track(spawn(process.execPath, [join(REPO_ROOT, 'dist/cmd/registry.js'), 'serve', cfg], { stdio: 'ignore', detached: true }))
    : track(spawn('docker-registry', ['serve', cfg], { stdio: 'ignore', detached: true }));
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`);
  return { url, proc };
}

function kill(p: Proc): void { try { process.kill(-p.proc.pid!, 'SIGKILL'); } catch { /* gone */ } }

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;

async function main(): Promise<void> {
  const version = spawnSync('docker-registry', ['--version'], { encoding: 'utf8' }).stdout.trim();
  if (!version) throw new Error('docker-registry is not installed (apt-get install docker-registry)');
  const base = await mkdtemp(join(args.get('dir') ?? tmpdir(), 'bench-proxy-'));
  const cleanup: (() => void)[] = [];
  try {
    // The image: three layers (1/2, 3/8, 1/8 of SIZE) and a config.
    const sizes = [SIZE / 2, (SIZE * 3) / 8, SIZE / 8].map(Math.floor);
    const layers = await Promise.all(sizes.map((s, i) => makeBlob(join(base, `layer${i}`), s, i)));
    const cfgBody = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
    await writeFile(join(base, 'config'), cfgBody);
    const config: Blob = { digest: `sha256:${createHash('sha256').update(cfgBody).digest('hex')}`, size: cfgBody.length, file: join(base, 'config') };
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size })),
    }));
    const upstream = await startRegistry('upstream', join(base, 'upstream'));
    cleanup.push(() => kill(upstream));
    for (const b of [config, ...layers]) await pushBlob(upstream.url, 'library/app', b);
    const put = await request(`${upstream.url}/v2/library/app/manifests/v1`, 'PUT', { 'Content-Type': OCI_MANIFEST }, manifest);
    if (put.status !== 201) throw new Error(`manifest PUT answered ${put.status}`);
    const imageBytes = config.size + layers.reduce((a, l) => a + l.size, 0);
    // A second image, pulled through each fresh proxy before the measured
    // pulls: "cold" means nothing cached, not a process whose code has not
    // run yet (the JIT warms up on this one, for both registries alike).
    const warmLayer = await makeBlob(join(base, 'warm'), Math.floor(SIZE / 4), 99);
    const warmCfgBody = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [warmLayer.digest] } }));
    await writeFile(join(base, 'warm-config'), warmCfgBody);
    const warmConfig: Blob = { digest: `sha256:${createHash('sha256').update(warmCfgBody).digest('hex')}`, size: warmCfgBody.length, file: join(base, 'warm-config') };
    await pushBlob(upstream.url, 'library/warmup', warmConfig);
    await pushBlob(upstream.url, 'library/warmup', warmLayer);
    const warmManifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: warmConfig.digest, size: warmConfig.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: warmLayer.digest, size: warmLayer.size }],
    }));
    if ((await request(`${upstream.url}/v2/library/warmup/manifests/v1`, 'PUT', { 'Content-Type': OCI_MANIFEST }, warmManifest)).status !== 201) throw new Error('warm-up manifest PUT failed');
    const warmUp = async (url: string, front: { reset(): void }) => {
      for (let i = 0; i < 2; i++) await pull(url, 'library/warmup', 'v1');
      await new Promise((res) => setTimeout(res, 1000));
      front.reset();
    };

    const results: Record<string, { cold: number[]; warm: number[]; coldRequests: number[]; warmRequests: number[]; fanoutSeconds: number[]; fanoutBytes: number[]; fanoutBlobGets: number[] }> = {};
    const direct: number[] = [];
    const viaFront: number[] = [];
    const front0 = await countingFront(upstream.url);
    cleanup.push(() => { front0.server.close(); front0.server.closeAllConnections(); });
    for (const kind of ['ours', 'distribution'] as const) results[kind] = { cold: [], warm: [], coldRequests: [], warmRequests: [], fanoutSeconds: [], fanoutBytes: [], fanoutBlobGets: [] };
    await pull(upstream.url, 'library/app', 'v1'); // the upstream's page cache, warm for everyone
    for (let rep = 0; rep < REPS; rep++) {
      direct.push((await pull(upstream.url, 'library/app', 'v1')).seconds);
      viaFront.push((await pull(front0.url, 'library/app', 'v1')).seconds);
      for (const kind of ['ours', 'distribution'] as const) {
        const r = results[kind];
        // Cold, then warm, on a fresh proxy.
        const front = await countingFront(upstream.url);
        const p = await startRegistry(kind, join(base, `${kind}-${rep}`), front.url);
        try {
          await warmUp(p.url, front);
          const cold = await pull(p.url, 'library/app', 'v1');
          if (cold.bytes !== imageBytes) throw new Error(`${kind}: cold pull got ${cold.bytes} bytes, not ${imageBytes}`);
          r.cold.push(cold.seconds);
          r.coldRequests.push(front.counts.requests);
          // distribution stores in the background after serving: let both settle.
          await new Promise((res) => setTimeout(res, 1500));
          front.reset();
          const warm = await pull(p.url, 'library/app', 'v1');
          r.warm.push(warm.seconds);
          r.warmRequests.push(front.counts.requests);
        } finally {
          kill(p);
          front.server.close();
          front.server.closeAllConnections();
          await rm(join(base, `${kind}-${rep}`), { recursive: true, force: true });
        }
        // CLIENTS concurrent cold pulls on a fresh proxy.
        const front2 = await countingFront(upstream.url);
        const p2 = await startRegistry(kind, join(base, `${kind}-fan-${rep}`), front2.url);
        try {
          await warmUp(p2.url, front2);
          const t0 = performance.now();
          const all = await Promise.all(Array.from({ length: CLIENTS }, () => pull(p2.url, 'library/app', 'v1')));
          r.fanoutSeconds.push((performance.now() - t0) / 1000);
          if (all.some((a) => a.bytes !== imageBytes)) throw new Error(`${kind}: a concurrent pull got the wrong byte count`);
          r.fanoutBytes.push(front2.counts.bytes);
          r.fanoutBlobGets.push(front2.counts.blobGets);
        } finally {
          kill(p2);
          front2.server.close();
          front2.server.closeAllConnections();
          await rm(join(base, `${kind}-fan-${rep}`), { recursive: true, force: true });
        }
      }
      console.error(`round ${rep + 1}/${REPS} done`);
    }
    const o = results.ours;
    const d = results.distribution;
    const mib = (b: number) => (b / 1048576).toFixed(0);
    const lines = [
      `Pull-through, ${mib(imageBytes)} MiB image (3 layers), upstream docker-registry ${version.split(' ')[2] ?? version} on the filesystem; ${REPS} rounds, median (min-max); node ${process.version}; ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
      '',
      '| measure | ours | docker-registry 2.8.2 proxy | ratio (theirs/ours) |',
      '|---|---|---|---|',
      `| cold pull, s | ${median(o.cold).toFixed(2)} (${spread(o.cold)}) | ${median(d.cold).toFixed(2)} (${spread(d.cold)}) | ${(median(d.cold) / median(o.cold)).toFixed(2)}x |`,
      `| warm pull, s | ${median(o.warm).toFixed(2)} (${spread(o.warm)}) | ${median(d.warm).toFixed(2)} (${spread(d.warm)}) | ${(median(d.warm) / median(o.warm)).toFixed(2)}x |`,
      `| pull from the upstream directly, s | ${median(direct).toFixed(2)} (${spread(direct)}) | | cold/direct ours ${(median(o.cold) / median(direct)).toFixed(2)}, theirs ${(median(d.cold) / median(direct)).toFixed(2)} |`,
      `| pull from the upstream through a counting front, s | ${median(viaFront).toFixed(2)} (${spread(viaFront)}) | | cold/this ours ${(median(o.cold) / median(viaFront)).toFixed(2)}, theirs ${(median(d.cold) / median(viaFront)).toFixed(2)} |`,
      `| upstream requests, cold pull | ${median(o.coldRequests)} | ${median(d.coldRequests)} | |`,
      `| upstream requests, warm pull | ${median(o.warmRequests)} | ${median(d.warmRequests)} | |`,
      `| ${CLIENTS} concurrent cold pulls, s | ${median(o.fanoutSeconds).toFixed(2)} (${spread(o.fanoutSeconds)}) | ${median(d.fanoutSeconds).toFixed(2)} (${spread(d.fanoutSeconds)}) | ${(median(d.fanoutSeconds) / median(o.fanoutSeconds)).toFixed(2)}x |`,
      `| ${CLIENTS} concurrent cold pulls: upstream MiB (image: ${mib(imageBytes)}) | ${mib(median(o.fanoutBytes))} | ${mib(median(d.fanoutBytes))} | |`,
      `| ${CLIENTS} concurrent cold pulls: upstream blob GETs (image: 4 blobs) | ${median(o.fanoutBlobGets)} | ${median(d.fanoutBlobGets)} | |`,
    ];
    console.log(lines.join('\n'));
    await mkdir(join(REPO_ROOT, 'bench/results'), { recursive: true });
    await writeFile(join(REPO_ROOT, 'bench/results/proxy-latest.json'), JSON.stringify({ node: process.version, distribution: version, imageBytes, reps: REPS, clients: CLIENTS, direct, viaFront, results }, null, 2));
  } finally {
    for (const c of cleanup) c();
    agent.destroy();
    await rm(base, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
