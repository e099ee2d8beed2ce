// Runs docker/distribution's registry (Debian's docker-registry 2.8.2) beside ours.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, waitForHttp } from './registry.js';
import { track } from './children.js';

export interface Distribution { url: string; proc: ChildProcess; stop(): Promise<void> }

export async function startDistribution(root: string, dir: string, secret = 'interop-secret', extra = ''): Promise<Distribution> {
  const port = await freePort();
  const cfg = join(dir, `distribution-${port}.yml`);
  await writeFile(cfg, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n${extra}http:\n  addr: 127.0.0.1:${port}\n  secret: ${secret}\n`);
  const proc = track(spawn('docker-registry', ['serve', cfg], { stdio: ['ignore', 'ignore', 'pipe'], detached: true }));
  let err = '';
  proc.stderr!.on('data', (d) => { err += d; });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([waitForHttp(`${url}/v2/`), exited.then(() => { throw new Error(`docker-registry exited: ${err}`); })]);
  } catch (e) {
    try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
    throw e;
  }
  return {
    url, proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      try { process.kill(-proc.pid!, 'SIGTERM'); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
