// The `registry` command as operators run it: flags, config errors, signals,
// and uploads that continue in another process.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readdir, rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import { join } from 'node:path';
import { REGISTRY_BIN, spawnRegistry, tempDir } from '../helpers/registry.js';
import { req } from '../helpers/http.js';
import { sha256 } from '../helpers/ociLayout.js';

async function configFile(dir: string, root: string, extra = ''): Promise<string> {
  const f = join(dir, 'config.yml');
  await writeFile(f, `version: 0.1\nlog:\n  level: warn\n  formatter: json\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n${extra}http:\n  addr: 127.0.0.1:5000\n`);
  return f;
}

describe('registry command', function () {
  this.timeout(60000);
  let dir: string;
  beforeEach(async () => { dir = await tempDir('registry-proc-'); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('prints its version', () => {
    const r = spawnSync(process.execPath, [REGISTRY_BIN, '--version'], { encoding: 'utf8' });
    expect(r.status).to.equal(0);
    expect(r.stdout.trim()).to.match(/^\d+\.\d+\.\d+/);
  });

  it('refuses to start on a bad config, naming the key', async () => {
    const f = join(dir, 'bad.yml');
    await writeFile(f, 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /tmp/x\n  delete:\n    enabled: maybe\n');
    const r = spawnSync(process.execPath, [REGISTRY_BIN, 'serve', f], { encoding: 'utf8', timeout: 20000 });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.include('storage.delete.enabled: must be true or false');
    const env = spawnSync(process.execPath, [REGISTRY_BIN, 'serve', f.replace('bad', 'missing')], { encoding: 'utf8', timeout: 20000 });
    expect(env.status).to.equal(1);
    expect(env.stderr).to.include('cannot read');
  });

  it('finishes an upload in a second process from the saved hash state, without re-reading', async () => {
    const root = join(dir, 'store');
    const cfg = await configFile(dir, root);
    const data = randomBytes(3 << 20);
    const a = await spawnRegistry(cfg);
    let loc: string;
    try {
      const post = await req(a.url, 'POST', '/v2/x/blobs/uploads/');
      loc = new URL(post.headers.get('location')!).pathname;
      expect((await req(a.url, 'PATCH', loc, data.subarray(0, 2 << 20), { 'Content-Range': `0-${(2 << 20) - 1}` })).status).to.equal(202);
    } finally {
      expect(await a.stop()).to.equal(0);
    }
    const id = loc.split('/').pop()!;
    const upload = join(root, 'docker/registry/v2/repositories/x/_uploads', id);
    expect(await readdir(join(upload, 'hashstates/sha256'))).to.deep.equal([String(2 << 20)]);
    // Overwrite stored bytes (same length): only a hasher that trusts the
    // saved state, instead of re-reading, still arrives at the original digest.
    const fh = await open(join(upload, 'data'), 'r+');
    await fh.write(Buffer.alloc(4096), 0, 4096, 0);
    await fh.close();
    const b = await spawnRegistry(cfg);
    try {
      expect((await req(b.url, 'PATCH', loc, data.subarray(2 << 20), { 'Content-Range': `${2 << 20}-${data.length - 1}` })).status).to.equal(202);
      const put = await req(b.url, 'PUT', `${loc}?digest=${sha256(data)}`);
      expect(put.status, put.body.toString()).to.equal(201);
    } finally {
      await b.stop();
    }
  });

  it('re-reads the stored bytes when no hash state can be used (portable fallback)', async () => {
    const root = join(dir, 'store');
    const cfg = await configFile(dir, root);
    const data = randomBytes(3 << 20);
    const a = await spawnRegistry(cfg, { TSREGISTRY_NO_NATIVE_SHA256: '1' });
    let loc: string;
    try {
      const post = await req(a.url, 'POST', '/v2/x/blobs/uploads/');
      loc = new URL(post.headers.get('location')!).pathname;
      await req(a.url, 'PATCH', loc, data.subarray(0, 1 << 20));
      await req(a.url, 'PATCH', loc, data.subarray(1 << 20, 2 << 20));
    } finally {
      await a.stop();
    }
    const upload = join(root, 'docker/registry/v2/repositories/x/_uploads', loc.split('/').pop()!);
    await rm(join(upload, 'hashstates'), { recursive: true, force: true });
    const b = await spawnRegistry(cfg);
    try {
      await req(b.url, 'PATCH', loc, data.subarray(2 << 20));
      const put = await req(b.url, 'PUT', `${loc}?digest=${sha256(data)}`);
      expect(put.status, put.body.toString()).to.equal(201);
      expect((await req(b.url, 'GET', `/v2/x/blobs/${sha256(data)}`)).body.equals(data)).to.equal(true);
    } finally {
      await b.stop();
    }
  });

  it('a process killed mid-upload loses nothing: another resumes from what was stored', async () => {
    const root = join(dir, 'store');
    const cfg = await configFile(dir, root);
    const data = randomBytes(8 << 20);
    const a = await spawnRegistry(cfg);
    const post = await req(a.url, 'POST', '/v2/killed/blobs/uploads/');
    const loc = new URL(post.headers.get('location')!).pathname;
    expect((await req(a.url, 'PATCH', loc, data.subarray(0, 1 << 20))).status).to.equal(202);
    // Second chunk: send part of it, then SIGKILL the registry mid-request.
    await new Promise<void>((resolve) => {
      const rq = http.request({ host: '127.0.0.1', port: new URL(a.url).port, path: loc, method: 'PATCH', headers: { 'Content-Length': String(4 << 20) } });
      rq.on('error', () => resolve());
      rq.on('response', () => resolve());
      rq.write(data.subarray(1 << 20, 3 << 20), () => {
        setTimeout(() => { process.kill(-a.proc.pid!, 'SIGKILL'); }, 100);
      });
    });
    await a.stop();
    const b = await spawnRegistry(cfg);
    try {
      const st = await req(b.url, 'GET', loc);
      expect(st.status).to.equal(204);
      const end = Number(st.headers.get('range')!.split('-')[1]);
      const have = end + 1;
      expect(have).to.be.within(1 << 20, 3 << 20);
      const patch = await req(b.url, 'PATCH', loc, data.subarray(have), { 'Content-Range': `${have}-${data.length - 1}` });
      expect(patch.status).to.equal(202);
      const put = await req(b.url, 'PUT', `${loc}?digest=${sha256(data)}`);
      expect(put.status, put.body.toString()).to.equal(201);
      expect((await req(b.url, 'GET', `/v2/killed/blobs/${sha256(data)}`)).body.equals(data)).to.equal(true);
    } finally {
      await b.stop();
    }
  });

  it('on SIGTERM, cuts a stalled upload after http.draintimeout and exits 0', async () => {
    const f = await configFile(dir, join(dir, 'store'));
    await writeFile(f, (await import('node:fs')).readFileSync(f, 'utf8').replace('http:\n', 'http:\n  draintimeout: 300ms\n'));
    const r = await spawnRegistry(f);
    const post = await req(r.url, 'POST', '/v2/stall/blobs/uploads/');
    const loc = new URL(post.headers.get('location')!);
    const cut = new Promise<string>((resolve) => {
      const rq = http.request({ host: '127.0.0.1', port: new URL(r.url).port, path: loc.pathname + loc.search, method: 'PATCH', headers: { 'Content-Length': String(1 << 20) } });
      rq.on('error', (e) => resolve(e.message));
      rq.on('response', (res) => resolve(`status ${res.statusCode}`));
      rq.write(randomBytes(1000)); // then stall: never send the rest
    });
    await new Promise((s) => setTimeout(s, 200));
    // exit code 0 (not the helper's SIGKILL after 10 s): the drain timeout ended it
    expect(await r.stop('SIGTERM')).to.equal(0);
    expect(await cut).to.match(/socket hang up|ECONNRESET/);
  });

  it('drains an in-flight upload on SIGTERM, then exits 0', async () => {
    const cfg = await configFile(dir, join(dir, 'store'));
    const r = await spawnRegistry(cfg);
    try {
      const post = await req(r.url, 'POST', '/v2/drain/blobs/uploads/');
      const loc = new URL(post.headers.get('location')!);
      const parts = Array.from({ length: 5 }, () => randomBytes(64 << 10));
      const done = new Promise<number>((resolve, reject) => {
        const rq = http.request({ host: '127.0.0.1', port: new URL(r.url).port, path: loc.pathname, method: 'PATCH', headers: { 'Content-Length': String(5 * (64 << 10)) } }, (res) => { res.resume(); resolve(res.statusCode!); });
        rq.on('error', reject);
        (async () => {
          for (const [i, p] of parts.entries()) {
            rq.write(p);
            if (i === 0) { await new Promise((s) => setTimeout(s, 200)); process.kill(-r.proc.pid!, 'SIGTERM'); }
            await new Promise((s) => setTimeout(s, 150));
          }
          rq.end();
        })().catch(reject);
      });
      expect(await done).to.equal(202);
      expect(await r.stop()).to.equal(0);
    } finally {
      await r.stop('SIGKILL');
    }
  });
});
