// How costs grow with the registry's size, ours beside docker-registry 2.8.2
// on the same generated store in the same run (bench/scaleGenerate.ts):
// garbage-collect --dry-run, a real --delete-untagged collection on a copy,
// _catalog fully paged, tags/list of a repository with 10,000 tags, DELETE
// of a manifest there (on the collected copy, or for docker-registry when its
// collection was stopped, on the read copy), and a cold manifest GET by tag. Wall time, and peak
// RSS for the collections (VmHWM of the process, read from /proc).
// With --store s3 the store is a bucket on s3rver, behind a proxy that
// counts every storage request each registry makes (as bench/requests.ts).
// A run that passes --limit seconds is stopped there and reported as such;
// --limit-factor F stops docker-registry's collections once they have taken F
// times as long as ours did (enough to show a ratio of at least F, without
// waiting hours for the end).
// On the filesystem, each registry's dry run is timed again on the copy it
// collected: the run an operator's cron makes after the first.
// Needs docker-registry (apt-get install docker-registry).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForHttp } from '../test/helpers/registry.js';
import { track } from '../test/helpers/children.js';
import { S3RVER_KEY, S3RVER_SECRET, type S3rver, startS3rver } from '../test/helpers/s3rver.js';
import { type StorageProxy, s3Kind, startStorageProxy } from '../test/helpers/storageProxy.js';
import { startRedis } from '../test/helpers/redis.js';
import { type Generated, SIZES, dirSink, generate, s3rverSink } from './scaleGenerate.js';
import { benchArgs } from './args.js';

const args = benchArgs(
  'npm run bench:scale [-- --sizes small,medium --dir /tmp --store fs|s3 --limit 900 --limit-factor 10]',
  ['dir', 'limit', 'limit-factor', 'sizes', 'store'],
);
const SIZE_NAMES = (args.get('sizes') ?? 'small,medium').split(',');
const BASE = args.get('dir') ?? tmpdir();
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OURS = join(REPO_ROOT, 'dist/cmd/registry.js');
const STORE = args.get('store') ?? 'fs';
if (STORE !== 'fs' && STORE !== 's3') throw new Error('--store is fs or s3');
const LIMIT_S = Number(args.get('limit') ?? 0);
const LIMIT_FACTOR = Number(args.get('limit-factor') ?? 0);
// AWS_CA_BUNDLE (set on some machines) makes distribution's old aws-sdk-go panic at start.
const { AWS_CA_BUNDLE: _ca, ...ENV } = process.env;

interface Run { seconds: number; peakMiB: number; code: number | null; out: string; stopped: boolean; limitS: number }

/** Runs a command to its end (or to limitS seconds, 0: none), sampling its peak RSS. */
async function timed(cmd: string, argv: string[], limitS = LIMIT_S): Promise<Run> {
  const t = performance.now();
  const proc = track(spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: ENV }));
  let stopped = false;
  const limit = limitS > 0 ? setTimeout(() => { stopped = true; try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } }, limitS * 1000) : undefined;
  let out = '';
  proc.stdout!.on('data', (d) => { out += d; if (out.length > 1 << 20) out = out.slice(-(1 << 19)); });
  proc.stderr!.on('data', (d) => { out += d; if (out.length > 1 << 20) out = out.slice(-(1 << 19)); });
  let peak = 0;
  const sample = setInterval(() => {
    void readFile(`/proc/${proc.pid}/status`, 'utf8').then((s) => {
      const kb = Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0);
      if (kb > peak) peak = kb;
    }, () => {});
  }, 20);
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  clearInterval(sample);
  clearTimeout(limit);
  return { seconds: (performance.now() - t) / 1000, peakMiB: peak / 1024, code, out, stopped, limitS };
}

function get(url: string, method = 'GET'): Promise<{ status: number; link?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method, headers: { Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, link: res.headers.link as string | undefined, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

/** Follows Link headers to the end; returns the requests made and the entries seen. */
async function paged(base: string, first: string, key: 'repositories' | 'tags'): Promise<{ seconds: number; requests: number; entries: number }> {
  const t = performance.now();
  let url: string | null = `${base}${first}`;
  let requests = 0;
  let entries = 0;
  while (url) {
    const r = await get(url);
    requests++;
    if (r.status !== 200) throw new Error(`${url}: ${r.status} ${r.body.slice(0, 200)}`);
    entries += ((JSON.parse(r.body) as Record<string, string[] | null>)[key] ?? []).length;
    const next = r.link ? /<([^>]+)>/.exec(r.link)?.[1] : undefined;
    url = next ? new URL(next, base).href : null;
  }
  return { seconds: (performance.now() - t) / 1000, requests, entries };
}

interface Server { url: string; proc: ChildProcess }

async function serve(ours: boolean, cfg: string, port: number): Promise<Server> {
  const proc = track(spawn(ours ? process.execPath : 'docker-registry', ours ? [OURS, 'serve', cfg] : ['serve', cfg], { stdio: ['ignore', 'ignore', 'inherit'], detached: true, env: ENV }));
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`, 60000);
  return { url, proc };
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  try { process.kill(-p.pid!, 'SIGTERM'); } catch { /* gone */ }
  const t = setTimeout(() => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
  await exited;
  clearTimeout(t);
}

/** Where a copy of the store lives: a folder, or a bucket on s3rver reached through the counting proxy. */
type Place = { fs: string } | { bucket: string; endpoint: string };

function storageYaml(place: Place): string {
  if ('fs' in place) return `  filesystem:\n    rootdirectory: ${place.fs}\n`;
  return `  s3:\n    region: us-east-1\n    regionendpoint: ${place.endpoint}\n    bucket: ${place.bucket}\n    accesskey: ${S3RVER_KEY}\n    secretkey: ${S3RVER_SECRET}\n    rootdirectory: /reg\n    secure: false\n    v4auth: true\n`;
}

async function config(dir: string, name: string, place: Place, port: number, extra = ''): Promise<string> {
  const f = join(dir, `${name}.yml`);
  await writeFile(f, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n${storageYaml(place)}  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: scale\n${extra}`);
  return f;
}

function put(url: string, body: Buffer, contentType: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method: url.includes('/manifests/') ? 'PUT' : 'POST', headers: { 'Content-Type': contentType, 'Content-Length': String(body.length) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    r.on('error', reject);
    r.end(body);
  });
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : 0; };

/**
 * Our real collection, online: a serving node on the same store and a Redis
 * (started here), and manifest pushes one after the other for as long as the
 * collection runs, each referencing blobs that nothing else references and
 * that are older than the run (grace 0 s), so that only the journal keeps
 * them. What the gate costs a writer is the push latency during the run
 * against before it. The node talks to s3rver directly, so the counting
 * proxy counts the collector's requests only.
 */
async function onlineCollection(dir: string, gcPlace: Place, nodePlace: Place, row: Row): Promise<Run> {
  const redis = await startRedis();
  try {
    const extra = `redis:\n  addr: ${redis.addr}\n`;
    const port = await freePort();
    const gcCfg = await config(dir, 'ours-gc-online', gcPlace, port, extra);
    const debugPort = await freePort();
    const nodeCfg = await config(dir, 'ours-node', nodePlace, port, `  debug:\n    addr: 127.0.0.1:${debugPort}\n    prometheus:\n      enabled: true\n${extra}`);
    const node = await serve(true, nodeCfg, port);
    try {
      const blob = (s: string) => { const data = Buffer.from(s); return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, size: data.length }; };
      const cfgBlob = blob('{"architecture":"amd64","os":"linux"}');
      const layerBlob = blob(`gate layer ${Date.now()}`);
      for (const b of [cfgBlob, layerBlob]) {
        const st = await put(`${node.url}/v2/scale/gate/blobs/uploads/?digest=${b.digest}`, b.data, 'application/octet-stream');
        if (st !== 201) throw new Error(`gate blob upload: ${st}`);
      }
      const manifest = (i: number) => Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgBlob.digest, size: cfgBlob.size },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerBlob.digest, size: layerBlob.size }],
        annotations: { n: String(i) },
      }));
      let i = 0;
      const push = async (): Promise<number> => {
        const t = performance.now();
        const st = await put(`${node.url}/v2/scale/gate/manifests/g${i}`, manifest(i), 'application/vnd.oci.image.manifest.v1+json');
        i++;
        if (st !== 201) throw new Error(`push during the collection: ${st}`);
        return performance.now() - t;
      };
      const before: number[] = [];
      for (let k = 0; k < 20; k++) before.push(await push());
      const pushedBefore = i;
      await new Promise((r) => setTimeout(r, 20)); // the blobs are older than the run's cutoff
      const during: number[] = [];
      let done = false;
      const run = timed(process.execPath, [OURS, 'garbage-collect', gcCfg, '--delete-untagged', '--grace', '0s', '--settle', '0s']).finally(() => { done = true; });
      while (!done) during.push(await push());
      const r = await run;
      // Everything pushed during the run is whole: its blobs were kept.
      for (const b of [cfgBlob, layerBlob]) {
        const g = await get(`${node.url}/v2/scale/gate/blobs/${b.digest}`, 'HEAD');
        if (g.status !== 200) throw new Error(`a blob the pushes during the collection reference is gone: ${g.status}`);
      }
      // The gate itself, from the node's metrics: writes it held and for how
      // long (the latencies above also carry the machine's load).
      const m = (await get(`http://127.0.0.1:${debugPort}/metrics`)).body;
      const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(m)?.[1] ?? 0);
      row['writes held by the gc gate'] = metric('registry_gc_gate_held_writes_total');
      row['time writes were held, s'] = metric('registry_gc_gate_held_seconds_sum');
      row['pushes during the online gc'] = i - pushedBefore;
      row['push before the gc, median ms'] = median(before);
      row['push during the gc, median ms'] = median(during);
      row['push during the gc, max ms'] = Math.max(0, ...during);
      return r;
    } finally {
      await stop(node.proc);
    }
  } finally {
    await redis.stop();
  }
}

type Row = Record<string, number | string>;

async function measureSize(sizeName: string): Promise<{ size: string; gen: Generated; ours: Row; theirs: Row }> {
  const size = SIZES[sizeName];
  if (!size) throw new Error(`unknown size ${sizeName} (small, medium, large)`);
  const dir = await mkdtemp(join(BASE, `scale-${sizeName}-`));
  let s3: S3rver | undefined;
  let proxy: StorageProxy | undefined;
  let direct: string | undefined;
  /** The same copy for a serving node, past the counting proxy. */
  const nodePlace = (p: Place): Place => ('bucket' in p && direct ? { ...p, endpoint: direct } : p);
  try {
    let gen!: Generated;
    let places: Record<'read' | 'oursGc' | 'theirsGc', Place>;
    const tg = performance.now();
    // Three identical copies: one read-only, one for each registry's real collection.
    if (STORE === 'fs') {
      places = { read: { fs: join(dir, 'read') }, oursGc: { fs: join(dir, 'ours-gc') }, theirsGc: { fs: join(dir, 'theirs-gc') } };
      for (const r of Object.values(places)) gen = await generate(size, dirSink((r as { fs: string }).fs), 1);
    } else {
      s3 = await startS3rver();
      proxy = await startStorageProxy(s3.endpoint, s3Kind);
      const bucket = await s3.bucket();
      // Written in s3rver's own format (bench/scaleGenerate.ts, checked to
      // be byte for byte what the driver writes): through its HTTP API the
      // small size took 351 s.
      gen = await generate(size, s3rverSink(join(s3.dir, bucket), '/reg'), 1);
      // The copies are copies of s3rver's folder for the bucket (a bucket is a folder there).
      // cp(1): Node's fs.cp took minutes over s3rver's 100,000 small files.
      for (const b of [`${bucket}-ours`, `${bucket}-theirs`]) {
        const c = spawnSync('cp', ['-a', join(s3.dir, bucket), join(s3.dir, b)]);
        if (c.status !== 0) throw new Error(`cp: ${c.stderr}`);
      }
      const at = (b: string): Place => ({ bucket: b, endpoint: proxy!.url });
      direct = s3.endpoint;
      places = { read: at(bucket), oursGc: at(`${bucket}-ours`), theirsGc: at(`${bucket}-theirs`) };
    }
    console.log(`${sizeName}: generated ${gen.files} files per copy (${STORE}) in ${((performance.now() - tg) / 1000).toFixed(1)} s`);
    /** Storage requests since the last call (s3 only). */
    const requests = (row: Row, key: string) => {
      if (!proxy) return;
      const c = proxy.take().registry;
      row[`${key} requests`] = [...c.values()].reduce((a, b) => a + b, 0);
      const del = (c.get('DeleteObjects') ?? 0) + (c.get('DeleteObject') ?? 0);
      if (/gc --delete/.test(key)) row[`${key} delete requests`] = del;
    };
    const out: Record<'ours' | 'theirs', Row> = { ours: {}, theirs: {} };
    for (const who of ['ours', 'theirs'] as const) {
      const ours = who === 'ours';
      const row = out[who];
      const port = await freePort();
      const readCfg = await config(dir, `${who}-read`, places.read, port);
      const gcCfg = await config(dir, `${who}-gc`, ours ? places.oursGc : places.theirsGc, port);
      const record = (key: string, r: Run) => {
        if (r.stopped) { row[`${key}, s`] = `>${Math.round(r.limitS)} (stopped)`; console.log(`${who} ${key}: stopped at ${Math.round(r.limitS)} s`); } else {
          if (r.code !== 0) throw new Error(`${who} ${key} failed: ${r.out.slice(-2000)}`);
          row[`${key}, s`] = r.seconds;
        }
        row[`${key}, peak RSS MiB`] = r.peakMiB;
        requests(row, key);
      };
      /** docker-registry's limit for a measure: --limit, or --limit-factor times ours. */
      const limitFor = (key: string) => {
        const mine = out.ours[`${key}, s`];
        const byFactor = LIMIT_FACTOR > 0 && typeof mine === 'number' ? LIMIT_FACTOR * mine : 0;
        return [LIMIT_S, byFactor].filter((x) => x > 0).reduce((a, b) => Math.min(a, b), Infinity);
      };
      const theirLimit = (key: string) => { const l = limitFor(key); return Number.isFinite(l) ? l : 0; };
      proxy?.take();
      record('gc --dry-run', ours ? await timed(process.execPath, [OURS, 'garbage-collect', readCfg, '--dry-run', '--grace', '0s'])
        : await timed('docker-registry', ['garbage-collect', '--dry-run', readCfg], theirLimit('gc --dry-run')));
      const real = ours ? await onlineCollection(dir, places.oursGc, nodePlace(places.oursGc), row)
        : await timed('docker-registry', ['garbage-collect', '--delete-untagged', gcCfg], theirLimit('gc --delete-untagged'));
      record('gc --delete-untagged', real);
      // The next run on the same store, as a cron job makes it (on s3 this
      // would double an already long run, and s3 has no stray sweep).
      if (STORE === 'fs' && !real.stopped) {
        record('gc --dry-run after the collection', ours ? await timed(process.execPath, [OURS, 'garbage-collect', gcCfg, '--dry-run', '--grace', '0s'])
          : await timed('docker-registry', ['garbage-collect', '--dry-run', gcCfg]));
      }
      // Reads on the untouched copy, on a freshly started server each (cold caches).
      let s = await serve(ours, readCfg, port);
      try {
        proxy?.take();
        const t = performance.now();
        const r = await get(`${s.url}/v2/${gen.bigRepo}/manifests/${gen.bigTag}`);
        if (r.status !== 200) throw new Error(`${who} manifest GET: ${r.status} ${r.body.slice(0, 200)}`);
        row['cold manifest GET by tag, ms'] = performance.now() - t;
        requests(row, 'cold manifest GET by tag');
        const cat = await paged(s.url, '/v2/_catalog?n=100', 'repositories');
        row['_catalog (n=100, all pages), s'] = cat.seconds;
        row['_catalog pages'] = cat.requests;
        requests(row, '_catalog');
        const tags = await paged(s.url, `/v2/${gen.bigRepo}/tags/list?n=1000`, 'tags');
        row['tags/list of 10,000 tags (n=1000), s'] = tags.seconds;
        row['tags seen'] = tags.entries;
        requests(row, 'tags/list');
      } finally {
        await stop(s.proc);
      }
      // The DELETE (destructive) on the collected copy, or, where
      // docker-registry's collection was stopped, on the read copy: nothing
      // reads that after its own reads above. Its DELETE reads every tag
      // whether a collection ran or not; ours reads the manifest's tags once
      // a collection has completed the digest index.
      const delCfg = !real.stopped ? gcCfg : !ours ? readCfg : null;
      if (delCfg) {
        if (delCfg === readCfg) row['DELETE on'] = 'the uncollected copy';
        s = await serve(ours, delCfg, port);
        try {
          proxy?.take();
          const t = performance.now();
          const r = await get(`${s.url}/v2/${gen.bigRepo}/manifests/${gen.bigManifest}`, 'DELETE');
          if (r.status !== 202) throw new Error(`${who} DELETE: ${r.status} ${r.body.slice(0, 200)}`);
          row['DELETE manifest among 10,000 tags, s'] = (performance.now() - t) / 1000;
          requests(row, 'DELETE manifest');
        } finally {
          await stop(s.proc);
        }
      }
      console.log(`${sizeName} ${who}: ${JSON.stringify(row)}`);
    }
    return { size: sizeName, gen, ours: out.ours, theirs: out.theirs };
  } finally {
    await proxy?.close();
    await s3?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const version = spawnSync('docker-registry', ['--version'], { encoding: 'utf8' }).stdout.trim();
  const results = [];
  for (const s of SIZE_NAMES) results.push(await measureSize(s));
  console.log(`\nNode ${process.version}, ${version}, ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${STORE === 's3' ? 's3rver (counting proxy)' : 'filesystem'} under ${BASE}\n`);
  for (const r of results) {
    const z = SIZES[r.size];
    console.log(`### ${r.size}: ${z.repos} repositories, ${z.manifests} manifests, ${z.blobs} layer blobs, ${r.gen.files} files\n`);
    console.log('| measure | ours | docker-registry 2.8.2 | theirs / ours |');
    console.log('|---|---|---|---|');
    for (const k of new Set([...Object.keys(r.ours), ...Object.keys(r.theirs)])) {
      const fmt = (x: number | string | undefined) => (x === undefined ? '-' : typeof x === 'string' ? x
        : Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 3 : 1));
      const a = r.ours[k];
      const b = r.theirs[k];
      const stoppedAt = typeof b === 'string' ? Number(/^>(\d+)/.exec(b)?.[1]) : NaN;
      const ratio = typeof a === 'number' && typeof b === 'number' && !/seen|pages/.test(k) ? `${(b / a).toFixed(2)}x`
        : typeof a === 'number' && stoppedAt > 0 ? `>${(stoppedAt / a).toFixed(1)}x` : '';
      console.log(`| ${k} | ${fmt(a)} | ${fmt(b)} | ${ratio} |`);
    }
    console.log('');
  }
  await writeFile(join(REPO_ROOT, `bench/results/scale-${STORE}-latest.json`), JSON.stringify({ node: process.version, distribution: version, store: STORE, results }, null, 2));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
