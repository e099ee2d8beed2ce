// The blob push and pull clients the benches share (bench/run.ts,
// bench/profile.ts): curl for monolithic pushes and pulls, one keep-alive
// Python connection for chunked pushes, a server that stores nothing for the
// client's own ceiling, and the generated blob they all send.
import { type ChildProcess, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import * as http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The chunk size of chunked pushes. */
export const CHUNK = 16 << 20;

export interface Target { name: string; url: string; proc?: ChildProcess; server?: http.Server; dir: string }

/** The config both registries run with: filesystem, in-memory descriptor
 *  cache, no access log, no upload purging; `extra` is appended (YAML). */
export function registryConfig(dir: string, port: number, extra = ''): string {
  return `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: bench\n${extra}`;
}

/** A server that takes bytes and stores nothing: what the push client itself
 *  can do (curl, one process per request), the ceiling for any registry here. */
export async function startCeiling(base: string): Promise<Target> {
  const server = http.createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
      res.statusCode = req.method === 'PUT' ? 201 : 202;
      res.setHeader('Location', '/v2/ceiling/blobs/uploads/x');
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { name: 'ceiling', url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server, dir: base };
}

/** Writes `size` bytes of deterministic data to a file, chunk by chunk (never
 *  held whole), and returns its digest. Clients then stream from the file. */
export async function makeBlob(file: string, size: number): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(file, 'w');
  const block = Buffer.alloc(1 << 20);
  for (let o = 0; o < block.length; o += 64) createHash('sha512').update(String(o)).digest().copy(block, o);
  for (let off = 0, i = 0; off < size; off += block.length, i++) {
    block.writeUInt32LE(i, 0);
    const part = block.subarray(0, Math.min(block.length, size - off));
    h.update(part);
    await fh.write(part);
  }
  await fh.close();
  return `sha256:${h.digest('hex')}`;
}

export function abs(base: string, loc: string): string { return new URL(loc, base).toString(); }

/** curl as the client: it streams files at ~1 GB/s here, so the registry is what is measured. */
export function curl(args: string[]): Promise<{ status: number; headers: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-S', '-D', '-', '-o', '/dev/null', ...args], { encoding: 'utf8' }, (e, stdout, stderr) => {
      if (e) { reject(new Error(`curl ${args.join(' ')}: ${stderr}`)); return; }
      const blocks = stdout.trim().split(/\r?\n\r?\n/);
      const lines = blocks[blocks.length - 1].split(/\r?\n/);
      const status = Number(lines[0].split(' ')[1]);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) { const i = l.indexOf(':'); if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim(); }
      resolve({ status, headers });
    });
  });
}

const withDigest = (loc: string, dgst: string) => `${loc}${loc.includes('?') ? '&' : '?'}digest=${dgst}`;

async function startUpload(t: Target, repo: string): Promise<string> {
  const post = await curl(['-X', 'POST', '-H', 'Content-Length: 0', `${t.url}/v2/${repo}/blobs/uploads/`]);
  if (post.status !== 202) throw new Error(`${t.name} POST: ${post.status}`);
  return abs(t.url, post.headers.location);
}

/** POST a session, then one PUT ?digest= with the whole file: seconds taken. */
export async function pushMonolithic(t: Target, repo: string, file: string, dgst: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const loc = await startUpload(t, repo);
  const put = await curl(['-X', 'PUT', '-H', 'Content-Type: application/octet-stream', '-T', file, withDigest(loc, dgst)]);
  if (put.status !== 201) throw new Error(`${t.name} monolithic push: ${put.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** POST, a PATCH per CHUNK, PUT ?digest=, over one keep-alive connection
 *  (bench/chunked_push.py): a curl process per chunk would cost more than the
 *  registries do. Seconds taken. */
export async function pushChunked(t: Target, repo: string, file: string, dgst: string): Promise<number> {
  const script = join(REPO_ROOT, 'bench', 'chunked_push.py');
  const out = await new Promise<string>((resolve, reject) => {
    execFile('python3', [script, t.url, repo, file, String(CHUNK), dgst], { encoding: 'utf8' }, (e, stdout, stderr) => (e ? reject(new Error(`${t.name} chunked push: ${stderr}`)) : resolve(stdout)));
  });
  return Number(out.trim());
}

/** GET of the blob, body discarded: seconds taken. */
export async function pull(t: Target, repo: string, dgst: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const res = await curl([`${t.url}/v2/${repo}/blobs/${dgst}`]);
  if (res.status !== 200) throw new Error(`${t.name} pull: ${res.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** CPU seconds (user + system) a process has used, from /proc. */
export async function cpuSeconds(pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (100 a second)
}
