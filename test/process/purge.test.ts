// Upload purging: the one-shot command and the timer inside serve.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REGISTRY_BIN, requireTool, spawnRegistry, tempDir } from '../helpers/registry.js';
import { startRedis } from '../helpers/redis.js';
import { req } from '../helpers/http.js';

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [REGISTRY_BIN, ...args], { encoding: 'utf8' }, (e, stdout, stderr) => {
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('upload purging', function () {
  this.timeout(60000);
  let dir: string;
  let root: string;
  let cfg: string;
  beforeEach(async () => {
    dir = await tempDir('registry-purge-');
    root = join(dir, 'store');
    cfg = join(dir, 'config.yml');
  });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  const uploads = (repo: string) => join(root, 'docker/registry/v2/repositories', repo, '_uploads');

  /** Three uploads: stale, fresh, and started long ago but written just now. */
  async function makeUploads(url: string): Promise<{ stale: string; fresh: string; active: string }> {
    const ids: string[] = [];
    for (const repo of ['a/stale', 'b/fresh', 'c/active']) {
      const post = await req(url, 'POST', `/v2/${repo}/blobs/uploads/`);
      const loc = new URL(post.headers.get('location')!);
      await req(url, 'PATCH', loc.pathname + loc.search, randomBytes(5000));
      ids.push(post.headers.get('docker-upload-uuid')!);
    }
    const old = new Date(Date.now() - 10 * 24 * 3600e3);
    for (const [repo, id, touchData] of [['a/stale', ids[0], true], ['c/active', ids[2], false]] as const) {
      const up = join(uploads(repo), id);
      await writeFile(join(up, 'startedat'), old.toISOString());
      if (touchData) await utimes(join(up, 'data'), old, old);
    }
    return { stale: ids[0], fresh: ids[1], active: ids[2] };
  }

  it('registry purge-uploads: dry run, then removes only stale uploads, with a summary', async () => {
    await writeFile(cfg, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  secret: s\n`);
    const r = await spawnRegistry(cfg);
    let ids;
    try { ids = await makeUploads(r.url); } finally { await r.stop(); }
    const dry = await run(['purge-uploads', cfg, '--dry-run']);
    expect(dry.code, dry.stderr).to.equal(0);
    expect(dry.stdout).to.match(/would purge 1 of 3 uploads \(4\.9 KiB\), kept 2, errors 0/);
    expect(await readdir(uploads('a/stale'))).to.deep.equal([ids.stale]);
    const real = await run(['purge-uploads', cfg]);
    expect(real.code, real.stderr).to.equal(0);
    expect(real.stdout).to.match(/^purged 1 of 3 uploads/);
    expect(await readdir(uploads('a/stale'))).to.deep.equal([]);
    expect(await readdir(uploads('b/fresh'))).to.deep.equal([ids.fresh]);
    expect(await readdir(uploads('c/active'))).to.deep.equal([ids.active]);
    // --older-than overrides the configured age: now everything is old enough
    const all = await run(['purge-uploads', cfg, '--older-than', '0s']);
    expect(all.stdout).to.match(/^purged 2 of 2 uploads/);
    const bad = await run(['purge-uploads', cfg, '--older-than', 'soon']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('--older-than must be a duration');
  });

  it('in a cluster, only the node holding the Redis lock purges', async function () {
    if (!requireTool(this, 'redis-server')) return;
    const redis = await startRedis();
    try {
      await writeFile(cfg, `version: 0.1\nlog:\n  level: info\n  formatter: json\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 168h\n      interval: 200ms\nredis:\n  addr: ${redis.addr}\nhttp:\n  secret: s\n`);
      // Another node holds the lock.
      await redis.client.set('registry::maintenance::uploadpurging::lock', 'other-node', 'PX', 60000);
      const r = await spawnRegistry(cfg);
      try {
        const ids = await makeUploads(r.url);
        await new Promise((s) => setTimeout(s, 1500));
        expect(await readdir(uploads('a/stale'))).to.deep.equal([ids.stale]);
        expect(r.output()).to.include('another node holds the lock');
        const cli = await run(['purge-uploads', cfg]);
        expect(cli.code).to.equal(3);
        expect(cli.stderr).to.include('another registry node is purging uploads');
        await redis.client.del('registry::maintenance::uploadpurging::lock');
        const deadline = Date.now() + 10000;
        while ((await readdir(uploads('a/stale'))).length > 0) {
          if (Date.now() > deadline) throw new Error(`stale upload not purged after the lock was freed:\n${r.output()}`);
          await new Promise((s) => setTimeout(s, 100));
        }
        // released after each run (runs come every 200 ms: poll for a gap)
        let released = false;
        for (let i = 0; i < 50 && !released; i++) {
          released = (await redis.client.get('registry::maintenance::uploadpurging::lock')) === null;
          if (!released) await new Promise((s) => setTimeout(s, 20));
        }
        expect(released).to.equal(true);
      } finally {
        await r.stop();
      }
    } finally {
      await redis.stop();
    }
  });

  it('serve purges stale uploads on its timer', async () => {
    await writeFile(cfg, `version: 0.1\nlog:\n  level: info\n  formatter: json\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 168h\n      interval: 300ms\nhttp:\n  secret: s\n`);
    const r = await spawnRegistry(cfg);
    try {
      const ids = await makeUploads(r.url);
      const deadline = Date.now() + 10000;
      while ((await readdir(uploads('a/stale'))).length > 0) {
        if (Date.now() > deadline) throw new Error(`stale upload not purged; log:\n${r.output()}`);
        await new Promise((s) => setTimeout(s, 100));
      }
      expect(await readdir(uploads('b/fresh'))).to.deep.equal([ids.fresh]);
      expect(await readdir(uploads('c/active'))).to.deep.equal([ids.active]);
      // The summary line follows the last deletion.
      while (!r.output().includes('upload purge finished') && Date.now() < deadline) await new Promise((s) => setTimeout(s, 50));
      expect(r.output()).to.include('upload purge finished');
    } finally {
      await r.stop();
    }
  });
});
