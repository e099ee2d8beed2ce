// CPU profiles of our upload path: the registry runs under `node --cpu-prof`
// while it takes monolithic pushes (one process) and chunked pushes (another)
// of a generated blob, with the clients of bench/run.ts, after a warm-up push
// that the graph leaves out (as it leaves out start-up); each profile becomes
// a flame graph (docs/flame-push-monolithic.png, docs/flame-push-chunked.png)
// and a list of the functions by self time (bench/results/profile-latest.json).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForHttp } from '../test/helpers/registry.js';
import { track } from '../test/helpers/children.js';
import { type Target, cpuSeconds, makeBlob, pushChunked, pushMonolithic, registryConfig } from './blobPush.js';
import { renderFlameGraph } from './flameGraph.js';
import { benchArgs } from './args.js';

const args = benchArgs(
  'npm run bench:profile [-- --size-mib 512 --reps 3 --dir /var/tmp]',
  ['dir', 'reps', 'size-mib'],
);
const SIZE = Number(args.get('size-mib') ?? 512) << 20;
const REPS = Number(args.get('reps') ?? 3);
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

type Mode = 'monolithic' | 'chunked';

/** Our registry under the profiler; the profile is written when it exits on SIGTERM. */
async function startProfiled(base: string, mode: Mode): Promise<Target & { profDir: string }> {
  const dir = join(base, mode);
  const profDir = join(dir, 'prof');
  await mkdir(profDir, { recursive: true });
  const port = await freePort();
  const cfg = join(dir, 'config.yml');
  await writeFile(cfg, registryConfig(dir, port));
  const proc = track(spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, join(REPO_ROOT, 'dist/cmd/registry.js'), 'serve', cfg], { stdio: 'ignore', detached: true }));
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`);
  return { name: 'ours', url, proc, dir, profDir };
}

async function main(): Promise<void> {
  const base = await mkdtemp(join(args.get('dir') ?? tmpdir(), 'registry-profile-'));
  const out: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, machine: `${cpus().length} x ${cpus()[0]?.model}`, sizeMiB: SIZE >> 20, reps: REPS };
  try {
    const blob = join(base, 'blob');
    const dgst = await makeBlob(blob, SIZE);
    for (const mode of ['monolithic', 'chunked'] as Mode[]) {
      const t = await startProfiled(base, mode);
      const mbs: number[] = [];
      // The window the graph is drawn from: the measured pushes, after one
      // warm-up push (start-up and the JIT's first compiles left out).
      const now = () => Number(process.hrtime.bigint() / 1000n);
      const w = { from: 0, to: 0 };
      let cpu0 = 0;
      let cpuMs = 0;
      try {
        await (mode === 'monolithic' ? pushMonolithic(t, 'prof/warm', blob, dgst) : pushChunked(t, 'prof/warm', blob, dgst));
        w.from = now();
        cpu0 = await cpuSeconds(t.proc!.pid!);
        for (let i = 0; i < REPS; i++) {
          await rm(join(t.dir, 'data', 'docker/registry/v2/blobs'), { recursive: true, force: true });
          const s = mode === 'monolithic' ? await pushMonolithic(t, `prof/m${i}`, blob, dgst) : await pushChunked(t, `prof/c${i}`, blob, dgst);
          mbs.push((SIZE >> 20) / s);
        }
        w.to = now();
        cpuMs = ((await cpuSeconds(t.proc!.pid!)) - cpu0) * 1000;
      } finally {
        const exited = once(t.proc!, 'exit');
        process.kill(t.proc!.pid!, 'SIGTERM');
        await exited;
      }
      const file = (await readdir(t.profDir)).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error(`${mode}: no profile written in ${t.profDir}`);
      const png = join(REPO_ROOT, `docs/flame-push-${mode}.png`);
      const title = `Our registry taking ${REPS} ${mode} pushes of ${SIZE >> 20} MiB (node --cpu-prof, Node ${process.version})`;
      const r = await renderFlameGraph(join(t.profDir, file), png, title, w);
      // The profile samples the main thread only; /proc counts every thread
      // (the hashing and the writes run on libuv's pool).
      out[mode] = { MBps: mbs, processCpuMs: cpuMs, ...r };
      const mib = REPS * (SIZE >> 20);
      console.log(`\n${mode}: ${mbs.map((x) => x.toFixed(0)).join(', ')} MB/s; main thread ${r.busyMs.toFixed(0)} ms on a CPU, ${r.idleMs.toFixed(0)} ms idle; the process (all threads) ${cpuMs.toFixed(0)} ms, ${(cpuMs / mib).toFixed(2)} ms/MiB, main thread ${(r.busyMs / mib).toFixed(2)} ms/MiB; ${png}`);
      console.log('| function | code | self ms | share of CPU time |\n|---|---|---:|---:|');
      for (const f of r.top) console.log(`| \`${f.name}\` | ${f.kind} | ${(f.us / 1000).toFixed(0)} | ${(f.share * 100).toFixed(1)}% |`);
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  await mkdir(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(join(REPO_ROOT, 'bench', 'results', 'profile-latest.json'), JSON.stringify(out, null, 2));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
