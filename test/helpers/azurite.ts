// azurite (Microsoft's Azure Storage emulator, from npm), started and stopped by the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, freePort, waitForHttp } from './registry.js';

export const AZURITE_ACCOUNT = 'devstoreaccount1';
// azurite's published development key (not a secret).
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Azurite { serviceurl: string; stop(): Promise<void> }

export async function startAzurite(): Promise<Azurite> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'azurite-'));
  const proc: ChildProcess = spawn(join(REPO_ROOT, 'node_modules/.bin/azurite-blob'),
    ['--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', dir, '--silent', '--skipApiVersionCheck', '--loose'],
    { stdio: 'ignore', detached: true });
  const serviceurl = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  await waitForHttp(serviceurl);
  return {
    serviceurl,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
