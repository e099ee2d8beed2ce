// A redis-server of the test's own, on a free port, stopped by the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort } from './registry.js';
import { track } from './children.js';

export interface TestRedis { port: number; addr: string; proc: ChildProcess; client: Redis; stop(): Promise<void>; restart(): Promise<void> }

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
  };
  t.client.on('error', () => {});
  return t;
}
