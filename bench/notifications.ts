// What a durable notification queue costs a push, side by side with
// docker-registry 2.8.2 (whose queue is in memory) in one run: small blob
// pushes (POST and PUT, as clients push; one event each), answered by a receiver that
// accepts at once, one client in a row and 8 at a time; latency per push,
// median and p90, with no endpoint and with one endpoint on each queue:
// the disk spool with fsync (the default), without fsync, and Redis.
// Needs docker-registry and redis-server (apt-get install docker-registry redis-server).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForHttp } from '../test/helpers/registry.js';
import { track } from '../test/helpers/children.js';
import { startRedis } from '../test/helpers/redis.js';
import { benchArgs } from './args.js';

const args = benchArgs(
  'npm run bench:notifications [-- --pushes 500 --reps 3]',
  ['pushes', 'reps'],
);
const PUSHES = Number(args.get('pushes') ?? 500);
const REPS = Number(args.get('reps') ?? 3);
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function send(url: string, method: string, body?: Buffer): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method, agent, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body?.length ?? 0) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, location: res.headers.location }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

/** A blob push as docker and skopeo make it: POST a session, PUT the bytes with the digest. */
async function pushBlob(base: string, data: Buffer, digest: string): Promise<number> {
  const s = await send(`${base}/v2/bench/notify/blobs/uploads/`, 'POST');
  if (s.status !== 202 || !s.location) throw new Error(`POST answered ${s.status}`);
  const loc = new URL(s.location, base);
  loc.searchParams.set('digest', digest);
  return (await send(loc.href, 'PUT', data)).status;
}

async function pushes(base: string, n: number, parallel: number): Promise<number[]> {
  const times: number[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < n) {
      next++;
      const data = randomBytes(1024);
      const d = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      const t = performance.now();
      const status = await pushBlob(base, data, d);
      times.push(performance.now() - t);
      if (status !== 201) throw new Error(`push answered ${status}`);
    }
  }));
  return times.sort((a, b) => a - b);
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))];

async function start(cmd: string, argv: string[], url: string): Promise<ChildProcess> {
  const proc = track(spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit'], detached: true }));
  await waitForHttp(`${url}/v2/`);
  return proc;
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  try { process.kill(-p.pid!, 'SIGTERM'); } catch { /* gone */ }
  const t = setTimeout(() => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
  await exited;
  clearTimeout(t);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-notify-'));
  const receiver = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end()); });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  const hook = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
  const redis = await startRedis();
  const version = spawnSync('docker-registry', ['--version'], { encoding: 'utf8' }).stdout.trim();
  const endpoint = (extra = '') => `notifications:\n${extra}  endpoints:\n    - name: bench\n      url: ${hook}\n      timeout: 1s\n      threshold: 10\n      backoff: 1s\n`;
  const setups: { name: string; yaml: (n: number) => string; ours: boolean }[] = [
    { name: 'ours, no endpoint', ours: true, yaml: () => '' },
    { name: 'ours, disk queue (fsync)', ours: true, yaml: (n) => endpoint(`  queue:\n    directory: ${join(dir, `q${n}`)}\n`) },
    { name: 'ours, disk queue (fsync: false)', ours: true, yaml: (n) => endpoint(`  queue:\n    directory: ${join(dir, `q${n}`)}\n    fsync: false\n`) },
    { name: 'ours, Redis stream', ours: true, yaml: () => `${endpoint()}redis:\n  addr: ${redis.addr}\n` },
    { name: 'docker-registry, no endpoint', ours: false, yaml: () => '' },
    { name: 'docker-registry, in-memory queue', ours: false, yaml: () => endpoint() },
  ];
  const results: Record<string, { serial: number[][]; parallel: number[][] }> = {};
  let n = 0;
  try {
    for (let rep = 0; rep < REPS; rep++) {
      for (const s of setups) {
        n++;
        const port = await freePort();
        const cfg = join(dir, `c${n}.yml`);
        await writeFile(cfg, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, `root${n}`)}\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: bench\n${s.yaml(n)}`);
        const url = `http://127.0.0.1:${port}`;
        const proc = s.ours ? await start(process.execPath, [join(REPO_ROOT, 'dist/cmd/registry.js'), 'serve', cfg], url) : await start('docker-registry', ['serve', cfg], url);
        try {
          await pushes(url, 100, 4); // warm-up
          const serial = await pushes(url, PUSHES, 1);
          const parallel = await pushes(url, PUSHES, 8);
          (results[s.name] ??= { serial: [], parallel: [] }).serial.push(serial);
          results[s.name].parallel.push(parallel);
          console.log(`${s.name} (round ${rep + 1}): 1 client median ${pct(serial, 0.5).toFixed(2)} ms p90 ${pct(serial, 0.9).toFixed(2)} ms; 8 clients median ${pct(parallel, 0.5).toFixed(2)} ms p90 ${pct(parallel, 0.9).toFixed(2)} ms`);
        } finally {
          await stop(proc);
        }
      }
    }
  } finally {
    receiver.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const cell = (runs: number[][], p: number) => { const v = runs.map((r) => pct(r, p)); return `${med(v).toFixed(2)} (${Math.min(...v).toFixed(2)}-${Math.max(...v).toFixed(2)})`; };
  console.log(`\nNode ${process.version}, ${version}, ${cpus().length} CPUs, ${PUSHES} pushes of 1 KiB per client mode, ${REPS} rounds; ms per push, median of rounds (min-max)\n`);
  console.log('| setup | 1 client, median | 1 client, p90 | 8 clients, median | 8 clients, p90 |');
  console.log('|---|---|---|---|---|');
  for (const [name, r] of Object.entries(results)) console.log(`| ${name} | ${cell(r.serial, 0.5)} | ${cell(r.serial, 0.9)} | ${cell(r.parallel, 0.5)} | ${cell(r.parallel, 0.9)} |`);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
