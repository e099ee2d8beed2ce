// The Cloud Storage emulator (firebase-tools), started and stopped by the test
// through gcs-emulator.cjs. It keeps object bytes under TMPDIR, which we give
// it and remove.
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Storage } from '@google-cloud/storage';
import { REPO_ROOT, freePort, waitForHttp } from './registry.js';
import { killGroup, track } from './children.js';

export interface GcsEmulator {
  endpoint: string;
  /** A service-account key of our own: the emulator checks no signature, but signing needs one. */
  credentials: { client_email: string; private_key: string };
  bucket(): Promise<string>;
  stop(): Promise<void>;
}

/** batch: false leaves out the batch endpoint, as on an endpoint without batches. */
export async function startGcsEmulator(opts: { batch?: boolean } = {}): Promise<GcsEmulator> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'gcs-emulator-'));
  const proc: ChildProcess = track(spawn(process.execPath, [join(REPO_ROOT, 'test/helpers/gcs-emulator.cjs'), String(port)],
    { stdio: 'ignore', detached: true, env: { ...process.env, TMPDIR: dir, GCS_EMULATOR_BATCH: opts.batch === false ? '0' : '1' } }));
  const endpoint = `http://127.0.0.1:${port}`;
  await waitForHttp(`${endpoint}/storage/v1/b`, 30000);
  const storage = new Storage({ apiEndpoint: endpoint, projectId: 'test-project' });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let n = 0;
  return {
    endpoint,
    credentials: { client_email: 'registry@test-project.iam.gserviceaccount.com', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
    async bucket() {
      // The emulator has no bucket-insert endpoint: a bucket exists once a request names it.
      const name = `b${process.pid}-${Date.now().toString(36)}-${n++}`;
      await storage.bucket(name).getFiles({ maxResults: 1, autoPaginate: false });
      return name;
    },
    async stop() {
      await killGroup(proc);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
