// s3rver (an S3 stand-in from npm), started and stopped by the test, through
// s3rver-main.cjs (which fixes its delimiter listing). Its list continuation
// tokens use DES, which Node 17+ only has with the legacy provider.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { REPO_ROOT, freePort, waitForHttp } from './registry.js';
import { killGroup, track } from './children.js';

// On Node 20 (CI's first run uses the machine's Node) the SDK warns once per
// process that its 2027 releases need Node 22; the project needs 22 anyway.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// s3rver's fixed development credentials (not secrets).
export const S3RVER_KEY = 'S3RVER';
export const S3RVER_SECRET = 'S3RVER';

export interface S3rver {
  endpoint: string;
  /** Its data folder: one folder per bucket (the scale bench copies a generated bucket there). */
  dir: string;
  /** Creates a bucket with a random name and returns it. */
  bucket(): Promise<string>;
  /** Stops the server and keeps its data: start() brings it back on the same port. */
  pause(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startS3rver(): Promise<S3rver> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 's3rver-'));
  const launch = () => track(spawn(process.execPath,
    ['--openssl-legacy-provider', join(REPO_ROOT, 'test/helpers/s3rver-main.cjs'), dir, String(port)],
    { stdio: 'ignore', detached: true }));
  let proc: ChildProcess = launch();
  const endpoint = `http://127.0.0.1:${port}`;
  await waitForHttp(endpoint);
  const client = new S3Client({
    region: 'us-east-1', endpoint, forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_SECRET },
  });
  let n = 0;
  return {
    endpoint,
    dir,
    async bucket() {
      const name = `b${process.pid}-${Date.now().toString(36)}-${n++}`;
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async pause() { await killGroup(proc); },
    async start() { proc = launch(); await waitForHttp(endpoint); },
    async stop() {
      client.destroy();
      await killGroup(proc);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
