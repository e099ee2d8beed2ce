// Benchmarks us against docker-registry 2.8.2, side by side in one run, on
// the filesystem driver: 512 MiB blob push (monolithic and 16 MiB chunks),
// pull, and manifest GET / blob HEAD at 64 connections.
// Needs docker-registry, ab, curl and python3 (apt-get install docker-registry apache2-utils curl python3).
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import * as http from 'node:http';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForHttp } from '../test/helpers/registry.js';
import { track } from '../test/helpers/children.js';
import { type Target, abs, cpuSeconds, registryConfig, makeBlob, pull, pushChunked as pushChunkedFile, pushMonolithic as pushMonolithicFile, startCeiling } from './blobPush.js';
import { benchArgs } from './args.js';

const args = benchArgs(
  'npm run bench [-- --size-mib 512 --reps 3 --seconds 10 --load-reps 5 --warmup 2 --dir /dev/shm --only small|push]',
  ['dir', 'load-reps', 'node-flags', 'only', 'reps', 'seconds', 'size-mib', 'warmup'],
);
const SIZE = Number(args.get('size-mib') ?? 512) << 20;
const REPS = Number(args.get('reps') ?? 3);
const SECONDS = Number(args.get('seconds') ?? 10);
const CONNECTIONS = 64;
const LOAD_REPS = args.get('only') === 'push' ? 0 : Number(args.get('load-reps') ?? 5);
// Seconds of load before each measured one, on every fresh process (JIT warm-up).
const WARMUP = Number(args.get('warmup') ?? 2);
// --only small: the manifest GET and blob HEAD part alone; --only push: the blob pushes and pull alone.
const ONLY = args.get('only') ?? 'all';
// Extra node flags for our registry, to price one (--node-flags=--max-semi-space-size=2: with '=', as a value that starts with '--' is otherwise taken for an option); none by default, as the registry command runs.
const NODE_FLAGS = (args.get('node-flags') ?? 'none').split(' ').filter((f) => f && f !== 'none');
const spreads: Record<string, number[]> = {};
let blobFile = '';
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function start(name: 'ours' | 'distribution' | 'ours-metrics', base: string): Promise<Target> {
  const dir = join(base, name);
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const cfg = join(dir, 'config.yml');
  // Same settings for both: filesystem, in-memory descriptor cache, no access log.
  // ours-metrics: the same with Prometheus metrics on (the debug listener), to price them.
  const debug = name === 'ours-metrics' ? `  debug:\n    addr: 127.0.0.1:${await freePort()}\n    prometheus:\n      enabled: true\n` : '';
  await writeFile(cfg, registryConfig(dir, port, debug));
  const proc = name !== 'distribution'
    ? track(spawn(process.execPath, [...NODE_FLAGS, join(REPO_ROOT, 'dist/cmd/registry.js'), 'serve', cfg], { stdio: 'ignore', detached: true }))
    : track(spawn('docker-registry', ['serve', cfg], { stdio: 'ignore', detached: true }));
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`);
  return { name, url, proc, dir };
}

function stop(t: Target): void {
  t.server?.close();
  t.server?.closeAllConnections();
  if (t.proc) try { process.kill(-t.proc.pid!, 'SIGKILL'); } catch { /* gone */ }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function request(url: string, method: string, headers: Record<string, string>, body?: NodeJS.ReadableStream): Promise<{ status: number; headers: http.IncomingHttpHeaders; bytes: number }> {
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method, headers, agent }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => { bytes += d.length; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, bytes }));
      res.on('error', reject);
    });
    r.on('error', reject);
    if (body) body.pipe(r);
    else r.end();
  });
}

function small(b: Buffer) { return Readable.from([b]); }

async function pushSmallImage(t: Target): Promise<{ blob: string }> {
  const layer = Buffer.from('layer-bytes-for-bench');
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const d = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  for (const b of [layer, config]) {
    const post = await request(`${t.url}/v2/bench/small/blobs/uploads/`, 'POST', { 'Content-Length': '0' });
    const loc = abs(t.url, post.headers.location!);
    await request(`${loc}${loc.includes('?') ? '&' : '?'}digest=${d(b)}`, 'PUT', { 'Content-Length': String(b.length) }, small(b));
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d(layer), size: layer.length }],
  }));
  const res = await request(`${t.url}/v2/bench/small/manifests/latest`, 'PUT', { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Length': String(manifest.length) }, small(manifest));
  if (res.status !== 201) throw new Error(`${t.name} manifest PUT: ${res.status}`);
  return { blob: d(layer) };
}

let lastCompleted = 0;

/** Requests per second from ApacheBench (C, keep-alive); HEAD with -i. */
async function load(url: string, method: 'GET' | 'HEAD', headers: Record<string, string> = {}, seconds = SECONDS): Promise<number> {
  const args = ['-q', '-k', '-c', String(CONNECTIONS), '-t', String(seconds), '-n', '10000000'];
  if (method === 'HEAD') args.push('-i');
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  const out = await new Promise<string>((resolve, reject) => {
    execFile('ab', [...args, url], { encoding: 'utf8', maxBuffer: 16 << 20 }, (e, stdout, stderr) => (e ? reject(new Error(`ab: ${e.message} ${stderr}`)) : resolve(stdout)));
  });
  const failed = Number(/Failed requests:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (failed > 0 || non2xx > 0) throw new Error(`${url}: ${failed} failed, ${non2xx} non-2xx`);
  lastCompleted = Number(/Complete requests:\s+(\d+)/.exec(out)![1]);
  return Number(/Requests per second:\s+([\d.]+)/.exec(out)![1]);
}

/** The blob measures that have per-round ratios. */
const blobMeasures = (sp: Record<string, number[]>) => Object.keys(sp).filter((k) => k.startsWith('ratio ')).map((k) => k.slice(6));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const pushMonolithic = (t: Target, repo: string, dgst: string) => pushMonolithicFile(t, repo, blobFile, dgst);
const pushChunked = (t: Target, repo: string, dgst: string) => pushChunkedFile(t, repo, blobFile, dgst);

async function main(): Promise<void> {
  const version = spawnSync('docker-registry', ['--version'], { encoding: 'utf8' }).stdout.trim();
  if (!version) throw new Error('docker-registry is not installed (apt-get install docker-registry)');
  const base = await mkdtemp(join(args.get('dir') ?? tmpdir(), 'registry-bench-'));
  blobFile = join(base, 'blob');
  const big = ONLY !== 'small';
  const dgst = big ? await makeBlob(blobFile, SIZE) : '';
  const targets = big ? [await start('ours', base), await start('distribution', base)] : [];
  const results: Record<string, Record<string, number>> = { ours: {}, distribution: {}, ceiling: {} };
  const ceiling = await startCeiling(base);
  try {
    if (big) {
      const mb = SIZE / (1 << 20);
      // Interleaved runs, each into an empty blob store, so background
      // writeback from one run burdens both registries alike.
      const times: Record<string, Record<string, number[]>> = { ours: {}, distribution: {} };
      // The registry's CPU time (every thread: hashing and writes run on the
      // thread pool) per MiB moved, beside the wall time.
      const run = async (t: Target, label: string, fn: () => Promise<number>) => {
        const c0 = await cpuSeconds(t.proc!.pid!);
        (times[t.name][label] ??= []).push(await fn());
        (spreads[`cpu ${t.name} ${label}`] ??= []).push(((await cpuSeconds(t.proc!.pid!)) - c0) * 1000 / mb);
      };
      // One warm-up push each, not counted: a registry in service is warm.
      for (const t of targets) await pushMonolithic(t, 'bench/warm', dgst);
      for (let i = 0; i < REPS; i++) {
        for (const t of i % 2 ? [...targets].reverse() : targets) {
          await rm(join(t.dir, 'data', 'docker/registry/v2/blobs'), { recursive: true, force: true });
          await run(t, 'push monolithic MB/s', () => pushMonolithic(t, `bench/mono${i}`, dgst));
          await rm(join(t.dir, 'data', 'docker/registry/v2/blobs'), { recursive: true, force: true });
          await run(t, 'push chunked 16 MiB MB/s', () => pushChunked(t, `bench/chunked${i}`, dgst));
          await run(t, 'pull MB/s', () => pull(t, `bench/chunked${i}`, dgst));
        }
      }
      for (const t of targets) for (const [label, ts] of Object.entries(times[t.name])) {
        results[t.name][label] = mb / median(ts);
        spreads[`${t.name} ${label}`] = ts.map((x) => mb / x);
      }
      // The ratio of each round (ours against docker-registry, back to back).
      for (const label of Object.keys(times.ours)) {
        spreads[`ratio ${label}`] = times.ours[label].map((x, i) => times.distribution[label][i] / x);
      }
      const ceilingRuns = async (fn: () => Promise<number>) => { const a = []; for (let i = 0; i < REPS; i++) a.push(mb / await fn()); return a; };
      spreads['ceiling push monolithic MB/s'] = await ceilingRuns(() => pushMonolithic(ceiling, 'c', dgst));
      spreads['ceiling push chunked 16 MiB MB/s'] = await ceilingRuns(() => pushChunked(ceiling, 'c', dgst));
      results.ceiling = {
        'push monolithic MB/s': median(spreads['ceiling push monolithic MB/s']),
        'push chunked 16 MiB MB/s': median(spreads['ceiling push chunked 16 MiB MB/s']),
      };
    }
    // Small requests, each round on fresh processes (a process that just
    // moved gigabytes serves small requests differently, and one process's
    // JIT luck can sway it by a third either way: a new process per round
    // puts that in the spread instead of in one side's median): ours, ours
    // with metrics, distribution, in turns, after a warm-up.
    targets.forEach(stop);
    targets.length = 0;
    results['ours-metrics'] = {};
    const rounds: Record<string, Record<string, number[]>> = {};
    // Throughput swings with whatever else the machine runs; the registry's
    // own CPU time per request does not, so the metrics' price is read there.
    const measured = async (t: Target, r: Record<string, number[]>, label: string, url: string, method: 'GET' | 'HEAD', headers: Record<string, string> = {}) => {
      await load(url, method, headers, WARMUP);
      const c0 = await cpuSeconds(t.proc!.pid!);
      (r[`${label} req/s`] ??= []).push(await load(url, method, headers));
      (r[`${label} CPU µs/req`] ??= []).push(((await cpuSeconds(t.proc!.pid!)) - c0) * 1e6 / lastCompleted);
    };
    const names = ['ours', 'ours-metrics', 'distribution'] as const;
    for (let i = 0; i < LOAD_REPS; i++) {
      for (const n of i % 2 ? [...names].reverse() : names) {
        await rm(join(base, n), { recursive: true, force: true });
        const t = await start(n, base);
        targets.push(t);
        try {
          const { blob } = await pushSmallImage(t);
          const r = (rounds[t.name] ??= {});
          await measured(t, r, 'manifest GET by tag', `${t.url}/v2/bench/small/manifests/latest`, 'GET', { Accept: 'application/vnd.oci.image.manifest.v1+json' });
          await measured(t, r, 'blob HEAD', `${t.url}/v2/bench/small/blobs/${blob}`, 'HEAD');
        } finally {
          stop(t);
          targets.splice(targets.indexOf(t), 1);
        }
      }
    }
    for (const n of names) for (const [k, xs] of Object.entries(rounds[n] ?? {})) {
      results[n][k] = median(xs);
      spreads[`${n} ${k}`] = xs;
    }
  } finally {
    targets.forEach(stop);
    stop(ceiling);
    await rm(base, { recursive: true, force: true });
  }
  const lines = [
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${version}`,
    `our node flags: ${NODE_FLAGS.join(' ') || 'none'}`,
    `${big ? `blob ${SIZE >> 20} MiB, ${REPS} runs (median), ` : ''}load ${CONNECTIONS} connections x ${SECONDS}s after ${WARMUP}s warm-up, ${LOAD_REPS} rounds on fresh processes (ApacheBench, keep-alive), storage under ${args.get('dir') ?? tmpdir()}`,
    '',
    '| measure | ours | docker-registry 2.8.2 | ratio | client ceiling |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const k of Object.keys(results.ours)) {
    const o = results.ours[k];
    const d = results.distribution[k];
    const c = results.ceiling[k];
    lines.push(`| ${k} | ${o.toFixed(0)} | ${d.toFixed(0)} | ${k.includes('CPU') ? `${(d / o).toFixed(2)}x less` : `${(o / d).toFixed(2)}x`} | ${c === undefined ? '' : c.toFixed(0)} |`);
  }
  if (big) {
    // The spread of the blob runs, and the share of the client's ceiling.
    const mm = (k: string, f = 0) => { const xs = spreads[k]; return xs ? `${Math.min(...xs).toFixed(f)}-${Math.max(...xs).toFixed(f)}` : ''; };
    lines.push('', `blob runs, spread min-max (${REPS} runs each; the ratio is each round's, ours against docker-registry back to back):`, '',
      '| measure | ours | docker-registry 2.8.2 | ratio, median | ratio, min-max | client ceiling | ours / ceiling | CPU ms/MiB, ours | CPU ms/MiB, docker-registry |', '|---|---|---|---:|---|---|---:|---:|---:|');
    for (const k of blobMeasures(spreads)) {
      const c = results.ceiling[k];
      const cpu = (n: string) => median(spreads[`cpu ${n} ${k}`]).toFixed(2);
      lines.push(`| ${k} | ${mm(`ours ${k}`)} | ${mm(`distribution ${k}`)} | ${median(spreads[`ratio ${k}`]).toFixed(2)}x | ${mm(`ratio ${k}`, 2)} | ${c === undefined ? '' : mm(`ceiling ${k}`)} | ${c === undefined ? '' : `${(results.ours[k] / c * 100).toFixed(0)}%`} | ${cpu('ours')} | ${cpu('distribution')} |`);
    }
  }
  if (LOAD_REPS > 0) lines.push('', `metrics on vs off (${LOAD_REPS} interleaved rounds each, median; spread min-max):`, '', '| measure | off | on | on/off | off spread | on spread |', '|---|---:|---:|---:|---|---|');
  for (const k of Object.keys(results['ours-metrics'])) {
    const off = results.ours[k];
    const on = results['ours-metrics'][k];
    const sp = (n: string) => { const xs = spreads[`${n} ${k}`]; return `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`; };
    lines.push(`| ${k} | ${off.toFixed(0)} | ${on.toFixed(0)} | ${(on / off).toFixed(3)} | ${sp('ours')} | ${sp('ours-metrics')} |`);
  }
  console.log(lines.join('\n'));
  await mkdir(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(join(REPO_ROOT, 'bench', 'results', ONLY === 'all' ? 'latest.json' : `latest-${ONLY}.json`), JSON.stringify({ date: new Date().toISOString(), node: process.version, nodeFlags: NODE_FLAGS, results, runs: spreads }, null, 2));
  agent.destroy();
}

main().catch((e) => { console.error(e); process.exit(1); });
