// A redis-server of the test's own, on a free port, stopped by the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './registry.js';
import { track } from './children.js';

export interface TestRedis {
  port: number; addr: string; proc: ChildProcess; client: Redis; stop(): Promise<void>; restart(): Promise<void>;
  /** Killed (connections refused) until up(): it comes back empty, as a Redis without persistence does. */
  down(): Promise<void>; up(): Promise<void>;
}

async function launch(port: number): Promise<ChildProcess> {
  const proc = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore', detached: true }));
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  probe.on('error', () => {});
  const end = Date.now() + 10000;
  for (;;) {
    try { await probe.connect(); await probe.ping(); probe.disconnect(); return proc; } catch {
      probe.disconnect();
      if (Date.now() > end) { try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } throw new Error('redis-server did not start'); }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
  await exited;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const t: TestRedis = {
    port, addr: `127.0.0.1:${port}`,
    proc: await launch(port),
    client: new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 }),
    async stop() { t.client.disconnect(); await kill(t.proc); },
    async restart() { await kill(t.proc); t.proc = await launch(port); },
    async down() { await kill(t.proc); },
    async up() { t.proc = await launch(port); },
  };
  t.client.on('error', () => {});
  return t;
}

export interface RedisNode { port: number; proc: ChildProcess; stop(): Promise<void> }

/** A redis-server with arbitrary extra arguments (TLS, cluster mode), waited for by its log line. */
export async function startRedisWith(args: string[], dir: string, opts: { port?: number; tlsOnly?: boolean } = {}): Promise<RedisNode> {
  const port = opts.port ?? await freePort();
  const portArgs = opts.tlsOnly ? ['--port', '0', '--tls-port', String(port)] : ['--port', String(port)];
  const proc = track(spawn('redis-server', [...portArgs, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10000);
    const onData = (d: Buffer) => {
      out += d;
      if (out.includes('Ready to accept connections')) { clearTimeout(t); resolve(); }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (c) => { clearTimeout(t); reject(new Error(`redis-server exited ${c}: ${out}`)); });
  });
  proc.stdout!.resume();
  proc.stderr!.resume();
  return { port, proc, stop: () => kill(proc) };
}

/** A Redis Cluster of `n` masters (no replicas), made with redis-cli --cluster create. */
export async function startRedisCluster(dir: string, n = 3): Promise<{ nodes: RedisNode[]; addrs: string[]; stop(): Promise<void> }> {
  const nodes: RedisNode[] = [];
  try {
    for (let i = 0; i < n; i++) nodes.push(await startRedisWith(['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${i}-${Date.now()}.conf`, '--cluster-node-timeout', '15000'], dir));
    const addrs = nodes.map((x) => `127.0.0.1:${x.port}`);
    await new Promise<void>((resolve, reject) => {
      const p = spawn('redis-cli', ['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout!.on('data', (d) => { out += d; });
      p.stderr!.on('data', (d) => { out += d; });
      p.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`redis-cli --cluster create failed: ${out}`))));
    });
    // Every node must see all slots covered before clients can use it.
    const end = Date.now() + 15000;
    for (const x of nodes) {
      const c = new Redis({ port: x.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
      c.on('error', () => {});
      await c.connect();
      while (!String(await c.cluster('INFO')).includes('cluster_state:ok')) {
        if (Date.now() > end) throw new Error('cluster did not come up');
        await new Promise((r) => setTimeout(r, 100));
      }
      c.disconnect();
    }
    return { nodes, addrs, async stop() { await Promise.all(nodes.map((x) => x.stop())); } };
  } catch (e) {
    await Promise.all(nodes.map((x) => x.stop()));
    throw e;
  }
}

/** A sentinel (redis-server --sentinel) watching the master at masterPort under `name`. */
export async function startSentinel(dir: string, masterPort: number, name = 'mymaster'): Promise<RedisNode> {
  const port = await freePort();
  const conf = join(dir, `sentinel-${port}.conf`);
  await writeFile(conf, `port ${port}\nbind 127.0.0.1\nsentinel monitor ${name} 127.0.0.1 ${masterPort} 1\nsentinel down-after-milliseconds ${name} 2000\n`);
  const proc = track(spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
  let out = '';
  proc.stdout!.on('data', (d) => { out += d; });
  proc.stderr!.on('data', (d) => { out += d; });
  const end = Date.now() + 10000;
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  probe.on('error', () => {});
  for (;;) {
    try {
      await probe.connect();
      const m = await probe.call('SENTINEL', 'get-master-addr-by-name', name) as string[] | null;
      if (m && Number(m[1]) === masterPort) break;
      probe.disconnect();
    } catch { probe.disconnect(); }
    if (Date.now() > end) { await kill(proc); throw new Error(`sentinel did not come up: ${out}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  probe.disconnect();
  return { port, proc, stop: () => kill(proc) };
}
