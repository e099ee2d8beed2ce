// The configs operators run today start unchanged: distribution's
// config-example.yml, config-dev.yml and config-cache.yml, the registry:3
// image's config, Debian's, Harbor's and Omnibus GitLab's (test/fixtures/
// configs). Only paths, ports and hosts are given, by REGISTRY_* variables,
// so the files are the shipped bytes. Each is checked by `registry config
// check` (with the warnings it should have), served by `registry serve`,
// probed on its debug listener where it has one, and used by skopeo for a
// push and a pull. config-cache.yml is a pull-through cache: its remoteurl
// (Docker Hub) is pointed at a registry the test starts, the image is pushed
// there and pulled through it, and a push to the cache is refused (405).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { REGISTRY_BIN, REPO_ROOT, type TestRegistry, freePort, requireTool, spawnRegistry, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type TestRedis, startRedis } from '../helpers/redis.js';
import { type TokenServer, startTokenServer } from '../helpers/tokenServer.js';
import { req } from '../helpers/http.js';
import { image, imageBlobs, writeLayout } from '../helpers/ociLayout.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';

interface Case {
  file: string;
  /** Warnings `config check` must report (substrings), in order of appearance; none means exit 0. */
  warnings: string[];
  /** Credentials skopeo needs: 'htpasswd' (the generated user), 'token' (the token server's). */
  auth?: 'htpasswd' | 'token';
  redis?: 'addrs' | 'addr';
  debug?: boolean;
  metrics?: boolean;
  /** A pull-through cache: its upstream is a registry the test starts. */
  proxy?: boolean;
  /** The start is refused with this message. */
  refused?: RegExp;
}

const cases: Case[] = [
  { file: 'dist-config-example.yml', warnings: [], auth: 'htpasswd' },
  { file: 'dist-config-dev.yml', warnings: [], debug: true, metrics: true },
  { file: 'image-config-example.yml', warnings: [], debug: true, metrics: true },
  { file: 'debian-config.yml', warnings: [], auth: 'htpasswd' },
  { file: 'harbor.yml', warnings: ['compatibility.schema1.enabled: schema1 manifests are still refused'], auth: 'htpasswd', redis: 'addr', debug: true },
  { file: 'gitlab-omnibus.yml', warnings: ['profiling: unknown key, ignored', 'reporting.sentry: unknown key, ignored'], auth: 'token' },
  { file: 'dist-config-cache.yml', warnings: [], redis: 'addrs', debug: true, proxy: true },
];

describe('the configs operators run start unchanged and serve skopeo', function () {
  this.timeout(180000);
  let dir: string;
  let redis: TestRedis;
  let tokens: TokenServer;
  let upstream: TestRegistry;
  const img = image(2, 'amd64', 20000);

  before(async function () {
    requireTool(this, 'skopeo');
    requireTool(this, 'redis-server');
    requireTool(this, 'openssl');
    dir = await tempDir('configs-');
    redis = await startRedis();
    upstream = await startTestRegistry('', { driver: 'inmemory' });
    // GitLab's names for the registry and its token issuer.
    tokens = await startTokenServer(dir, (_u, _t, _n, actions) => actions, { service: 'container_registry', issuer: 'omnibus-gitlab-issuer' });
    await writeLayout(join(dir, 'img'), img.manifest, imageBlobs(img), 'v1');
  });
  after(async () => {
    await redis?.stop();
    await tokens?.stop();
    await upstream?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const c of cases) {
    it(c.file, async () => {
      const file = join(REPO_ROOT, 'test/fixtures/configs', c.file);
      const work = join(dir, c.file.replace(/\W/g, '-'));
      const debugPort = await freePort();
      // Paths, ports and hosts only (spawnRegistry gives REGISTRY_HTTP_ADDR).
      const env: Record<string, string> = {
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, 'store'),
        ...(c.debug ? { REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${debugPort}` } : {}),
        ...(c.auth === 'htpasswd' ? { REGISTRY_AUTH_HTPASSWD_PATH: join(work, 'htpasswd') } : {}),
        ...(c.auth === 'token' ? { REGISTRY_AUTH_TOKEN_REALM: tokens.realm, REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE: tokens.certFile } : {}),
        ...(c.redis === 'addrs' ? { REGISTRY_REDIS_ADDRS: `[${redis.addr}]` } : {}),
        ...(c.redis === 'addr' ? { REGISTRY_REDIS_ADDR: redis.addr } : {}),
        ...(c.proxy ? { REGISTRY_PROXY_REMOTEURL: upstream.url } : {}),
      };
      const check = spawnSync(process.execPath, [REGISTRY_BIN, 'config', 'check', file], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30000 });
      if (c.refused) {
        expect(check.status, check.stderr).to.equal(1);
        expect(check.stderr).to.match(c.refused);
        const serve = spawnSync(process.execPath, [REGISTRY_BIN, 'serve', file], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30000 });
        expect(serve.status).to.equal(1);
        expect(serve.stderr).to.match(c.refused);
        return;
      }
      expect(check.status, check.stderr).to.equal(c.warnings.length ? 2 : 0);
      const warned = check.stderr.split('\n').filter((l) => l.startsWith('warning: '));
      expect(warned.length, check.stderr).to.equal(c.warnings.length);
      c.warnings.forEach((w, i) => expect(warned[i]).to.include(w));
      expect(check.stdout).to.include(`rootdirectory: ${join(work, 'store')}`);
      if (/secret:/.test(check.stdout)) expect(check.stdout).to.match(/secret: "\*\*\*\*\*\*"/);

      const reg = await spawnRegistry(file, env);
      try {
        let creds: string[] = [];
        if (c.auth === 'htpasswd') {
          // distribution's behaviour: the missing file was made, and its password logged once.
          const pw = /password=([A-Za-z0-9_-]{20,})/.exec(reg.output())?.[1];
          expect(pw, reg.output()).to.be.a('string');
          creds = [`docker:${pw}`];
        }
        if (c.auth === 'token') creds = ['alice:secret'];
        const host = hostOf(reg.url);
        if (c.proxy) {
          await mkdir(work, { recursive: true });
          // Pushed upstream; the cache refuses pushes, as distribution's does.
          await skopeo('copy', `oci:${join(dir, 'img')}:v1`, `docker://${hostOf(upstream.url)}/configs/app:v1`);
          const refused = await skopeo('copy', `oci:${join(dir, 'img')}:v1`, `docker://${host}/configs/other:v1`).then(() => '', (e: Error) => e.message);
          expect(refused).to.match(/405|UNSUPPORTED|unsupported/i);
        } else {
          await skopeo('copy', ...(creds.length ? ['--dest-creds', creds[0]] : []), `oci:${join(dir, 'img')}:v1`, `docker://${host}/configs/app:v1`);
        }
        await skopeo('copy', ...(creds.length ? ['--src-creds', creds[0]] : []), `docker://${host}/configs/app:v1`, `oci:${join(work, 'out')}:v1`);
        const inspect = JSON.parse(await skopeo('inspect', ...(creds.length ? ['--creds', creds[0]] : []), '--raw', `docker://${host}/configs/app:v1`)) as { layers: { digest: string }[] };
        expect(inspect.layers.map((l) => l.digest)).to.deep.equal(img.layers.map((l) => l.digest));
        if (c.debug) {
          const dbg = `http://127.0.0.1:${debugPort}`;
          const health = await req(dbg, 'GET', '/debug/health');
          expect(health.status, health.body.toString()).to.equal(200);
          expect(health.json()).to.deep.equal({});
          expect((await req(dbg, 'GET', '/metrics')).status).to.equal(c.metrics ? 200 : 404);
        }
        expect(reg.output()).to.not.match(/"level":"error"|level=error/);
      } finally {
        expect(await reg.stop()).to.equal(0);
      }
    });
  }
});
