// Starts registries for tests: in-process (fast) or as a child `registry
// serve` process (for restarts and signals). Every start is stopped by its test.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Logger, pino } from 'pino';
import { Writable } from 'node:stream';
import { parseConfig } from '../../lib/config/config.js';
import { type RunningRegistry, startRegistry } from '../../lib/server.js';
import { track } from './children.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const REGISTRY_BIN = join(REPO_ROOT, 'dist', 'cmd', 'registry.js');

export interface TestRegistry extends RunningRegistry { root?: string; stop(): Promise<void> }

export async function tempDir(prefix = 'registry-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** An in-process registry on a free port; filesystem under a temp dir unless yaml says otherwise. */
export async function startTestRegistry(extraYaml = '', opts: { driver?: 'filesystem' | 'inmemory'; root?: string; deleteEnabled?: boolean; secret?: string; cache?: 'inmemory' | 'redis'; storageYaml?: string; httpExtra?: string; log?: Logger; accessLog?: NodeJS.WritableStream } = {}): Promise<TestRegistry> {
  const driver = opts.driver ?? 'filesystem';
  const root = driver === 'filesystem' && !opts.storageYaml ? opts.root ?? await tempDir() : undefined;
  // storageYaml: another driver's section (indented two spaces), plus any storage keys.
  const storage = opts.storageYaml ?? (driver === 'filesystem' ? `  filesystem:\n    rootdirectory: ${root}\n` : '  inmemory: {}\n');
  const yaml = `version: 0.1\nlog:\n  level: error\nstorage:\n${storage}  cache:\n    blobdescriptor: ${opts.cache ?? 'inmemory'}\n  delete:\n    enabled: ${opts.deleteEnabled ?? true}\nhttp:\n  addr: 127.0.0.1:0\n${opts.secret ? `  secret: ${opts.secret}\n` : ''}${opts.httpExtra ?? ''}${extraYaml}`;
  const config = parseConfig(yaml, {});
  const r = await startRegistry(config, opts.log ?? pino({ level: 'silent' }), { accessLog: opts.accessLog ?? null, version: 'test' });
  return {
    ...r, root,
    async stop() {
      await r.close();
      if (root && !opts.root) await rm(root, { recursive: true, force: true });
    },
  };
}

/** A logger that keeps every record (parsed), for tests that check what is logged. */
export function capturingLogger(level = 'debug'): { log: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level, formatters: { level: (label) => ({ level: label }) } }, sink), records };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Waits until GET url answers (any status). */
/** Waits until url answers; with okOnly, until it answers 2xx (a readiness endpoint answers 503 while it starts). */
export async function waitForHttp(url: string, ms = 15000, okOnly = false): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    let status = 0;
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (!okOnly || res.ok) return;
      status = res.status;
    } catch { /* not listening yet */ }
    if (Date.now() > end) throw new Error(`${url} did not come up in ${ms} ms${status ? ` (last answer ${status})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface ChildRegistry { url: string; proc: ChildProcess; output: () => string; stdout: () => string; stop(signal?: NodeJS.Signals): Promise<number | null> }

/** Runs `registry serve` as a child process in its own process group; nofile lowers its open-file limit. */
export async function spawnRegistry(configFile: string, env: Record<string, string> = {}, opts: { nofile?: number } = {}): Promise<ChildRegistry> {
  const port = await freePort();
  const argv = [REGISTRY_BIN, 'serve', configFile];
  const [cmd, args] = opts.nofile
    ? ['sh', ['-c', `ulimit -n ${opts.nofile} && exec "$0" "$@"`, process.execPath, ...argv]]
    : [process.execPath, argv];
  const proc = track(spawn(cmd, args as string[], {
    env: { ...process.env, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  }));
  let out = '';
  let stdout = '';
  proc.stdout!.on('data', (d) => { out += d; stdout += d; });
  proc.stderr!.on('data', (d) => { out += d; });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([waitForHttp(`${url}/v2/`), exited.then((c) => { throw new Error(`registry exited with ${c}: ${out}`); })]);
  } catch (e) {
    try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
    throw e;
  }
  return {
    url, proc, output: () => out, stdout: () => stdout,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      try { process.kill(-proc.pid!, signal); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } }, 10000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** A tool the test needs: SKIP on a laptop, fail under CI (CI=true). */
export function requireTool(ctx: Mocha.Context, tool: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  if (found) return true;
  if (process.env.CI === 'true') throw new Error(`${tool} is required in CI but is not installed (.ci/run installs it)`);
  console.log(`    SKIP: ${tool} is not installed; install it to run this test`);
  ctx.skip();
  return false;
}
