// azurite (Microsoft's Azure Storage emulator, from npm), started and stopped by the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { REPO_ROOT, freePort, waitForHttp } from './registry.js';
import { killGroup, track } from './children.js';

async function waitForPort(port: number, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => { s.destroy(); r(true); });
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} did not open in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const AZURITE_ACCOUNT = 'devstoreaccount1';
// azurite's published development key (not a secret).
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Azurite { serviceurl: string; stop(): Promise<void> }

/** tls: serve HTTPS with this certificate and accept OAuth bearer tokens (azurite checks issuer, audience and lifetime, not signatures). */
export async function startAzurite(tls?: { cert: string; key: string }): Promise<Azurite> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'azurite-'));
  const extra = tls ? ['--cert', tls.cert, '--key', tls.key, '--oauth', 'basic'] : [];
  const proc: ChildProcess = track(spawn(join(REPO_ROOT, 'node_modules/.bin/azurite-blob'),
    ['--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', dir, '--silent', '--skipApiVersionCheck', '--loose', ...extra],
    { stdio: 'ignore', detached: true }));
  const serviceurl = `${tls ? 'https' : 'http'}://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  if (tls) await waitForPort(port); else await waitForHttp(serviceurl);
  return {
    serviceurl,
    async stop() {
      await killGroup(proc);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
