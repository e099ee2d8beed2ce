// health: and http.debug: the storage driver check against an s3 stand-in
// that is stopped and brought back, file, http and tcp checks, distribution's
// threshold semantics, /debug/health and the API's 503 while a check fails,
// /debug/vars, and a debug listener that the API's listener does not serve.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { type TestRegistry, freePort, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type S3rver, S3RVER_KEY, S3RVER_SECRET, startS3rver } from '../helpers/s3rver.js';
import { expectError, req } from '../helpers/http.js';
import { HealthChecks } from '../../lib/health/checks.js';

async function until(what: string, ok: () => Promise<boolean>, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('health checks and the debug server', function () {
  this.timeout(120000);
  let dir: string;
  before(async () => { dir = await tempDir('health-'); });
  after(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

  it('counts a check as failing only after threshold failures in a row, and recovers on one success', async () => {
    const h = new HealthChecks(pino({ level: 'silent' }));
    let fail = false;
    h.add('flaky', 3_600_000, 3, async () => { if (fail) throw new Error('boom'); });
    const tick = (h as unknown as { checks: unknown[]; tick(c: unknown): Promise<void> });
    const run = () => tick.tick(tick.checks[0]);
    await run();
    expect(h.healthy).to.equal(true);
    fail = true;
    await run();
    await run();
    expect(h.healthy, 'two failures of three').to.equal(true);
    await run();
    expect(h.failing()).to.deep.equal({ flaky: 'boom' });
    fail = false;
    await run();
    expect(h.healthy).to.equal(true);
    fail = true;
    await run();
    await run();
    expect(h.healthy, 'a success reset the count').to.equal(true);
  });

  describe('storage driver check on s3 (s3rver), with file, http and tcp checks', () => {
    let s3: S3rver;
    let r: TestRegistry;
    let debug: string;
    const marker = () => join(dir, 'out-of-rotation');
    let downstream: http.Server;
    let downstreamStatus = 200;
    let tcp: net.Server;
    let tcpPort: number;

    before(async () => {
      s3 = await startS3rver();
      const bucket = await s3.bucket();
      downstream = http.createServer((q, s) => { s.writeHead(q.headers['x-probe'] === 'yes' ? downstreamStatus : 400).end(); });
      await new Promise<void>((ok) => downstream.listen(0, '127.0.0.1', ok));
      tcp = net.createServer((s) => s.end());
      await new Promise<void>((ok) => tcp.listen(0, '127.0.0.1', ok));
      tcpPort = (tcp.address() as AddressInfo).port;
      const debugPort = await freePort();
      r = await startTestRegistry(
        `health:\n  storagedriver:\n    enabled: true\n    interval: 200ms\n    threshold: 3\n  file:\n    - file: ${marker()}\n      interval: 100ms\n  http:\n    - uri: http://127.0.0.1:${(downstream.address() as AddressInfo).port}/ok\n      headers:\n        X-Probe: [yes]\n      statuscode: 200\n      timeout: 1s\n      interval: 100ms\n      threshold: 2\n  tcp:\n    - addr: 127.0.0.1:${tcpPort}\n      timeout: 500ms\n      interval: 100ms\n`,
        {
          storageYaml: `  s3:\n    region: us-east-1\n    regionendpoint: ${s3.endpoint}\n    bucket: ${bucket}\n    accesskey: ${S3RVER_KEY}\n    secretkey: ${S3RVER_SECRET}\n    maxretries: 0\n`,
          httpExtra: `  debug:\n    addr: 127.0.0.1:${debugPort}\n`,
        },
      );
      debug = `http://127.0.0.1:${debugPort}`;
      await until('every check ran', async () => ((await req(debug, 'GET', '/debug/vars')).json().health as { lastRun?: string }[]).every((c) => c.lastRun));
    });
    after(async () => {
      await r?.stop();
      await s3?.stop();
      await new Promise((ok) => (downstream ? downstream.close(ok) : ok(null)));
      await new Promise((ok) => (tcp ? tcp.close(ok) : ok(null)));
    });

    const healthNow = async () => req(debug, 'GET', '/debug/health');

    it('answers 200 {} while healthy, on the debug listener only', async () => {
      const h = await healthNow();
      expect(h.status).to.equal(200);
      expect(h.json()).to.deep.equal({});
      expect((await req(r.url, 'GET', '/v2/')).status).to.equal(200);
      // The API's listener serves none of the debug endpoints.
      for (const p of ['/debug/health', '/debug/vars', '/metrics', '/debug/live']) expect((await req(r.url, 'GET', p)).status, p).to.equal(404);
      expect((await req(debug, 'GET', '/v2/')).status).to.equal(404);
      expect((await req(debug, 'GET', '/debug/live')).status).to.equal(200);
      // No prometheus section: no metrics.
      expect((await req(debug, 'GET', '/metrics')).status).to.equal(404);
    });

    it('fails the storage driver check after threshold intervals with the stand-in stopped; the API answers 503 naming it; both recover', async () => {
      await s3.pause();
      try {
        await until('the storage check fails', async () => (await healthNow()).status === 503);
        const vars = (await req(debug, 'GET', '/debug/vars')).json().health as { name: string; failures: number }[];
        expect(vars.find((c) => c.name === 'storagedriver_s3')!.failures).to.be.at.least(3);
        expect(Object.keys((await healthNow()).json())).to.deep.equal(['storagedriver_s3']);
        for (const path of ['/v2/', '/v2/x/tags/list', '/v2/x/manifests/latest']) {
          const res = await expectError(req(r.url, 'GET', path), 503, 'UNAVAILABLE');
          const e = (res.json() as { errors: { message: string; detail: Record<string, string> }[] }).errors[0];
          expect(e.message).to.equal('health check failed: please see /debug/health');
          expect(Object.keys(e.detail)).to.deep.equal(['storagedriver_s3']);
        }
      } finally {
        await s3.start();
      }
      await until('the storage check recovers', async () => (await healthNow()).status === 200);
      expect((await req(r.url, 'GET', '/v2/')).status).to.equal(200);
    });

    it('a file check trips on the file\'s presence', async () => {
      await writeFile(marker(), 'drain');
      try {
        await until('the file check fails', async () => (await healthNow()).status === 503);
        expect((await healthNow()).json()).to.deep.equal({ [marker()]: 'file exists' });
        await expectError(req(r.url, 'GET', '/v2/'), 503, 'UNAVAILABLE');
      } finally {
        await rm(marker());
      }
      await until('the file check recovers', async () => (await healthNow()).status === 200);
    });

    it('an http check fails when its server starts failing, and a tcp check when nothing listens', async () => {
      downstreamStatus = 500;
      try {
        await until('the http check fails', async () => (await healthNow()).status === 503);
        const [name, error] = Object.entries((await healthNow()).json())[0];
        expect(name).to.match(/^http:\/\/127\.0\.0\.1:\d+\/ok$/);
        expect(error).to.equal('downstream service returned unexpected status: 500');
      } finally {
        downstreamStatus = 200;
      }
      await until('the http check recovers', async () => (await healthNow()).status === 200);
      await new Promise((ok) => tcp.close(ok));
      await until('the tcp check fails', async () => (await healthNow()).status === 503);
      expect(Object.keys((await healthNow()).json())).to.deep.equal([`127.0.0.1:${tcpPort}`]);
      tcp = net.createServer((s) => s.end());
      await new Promise<void>((ok) => tcp.listen(tcpPort, '127.0.0.1', ok));
      await until('the tcp check recovers', async () => (await healthNow()).status === 200);
    });

    it('/debug/vars tells version, uptime, in-flight work, caches and health', async () => {
      const v = (await req(debug, 'GET', '/debug/vars')).json() as Record<string, unknown>;
      expect(v).to.include.keys('version', 'uptimeSeconds', 'requests', 'uploads', 'caches', 'redis', 'health', 'memory');
      expect(v.version).to.equal('test');
      expect(v.requests).to.deep.equal({ inFlight: 0 });
      expect((v.caches as Record<string, unknown>).blobDescriptors).to.include({ kind: 'inmemory' });
      expect((v.health as unknown[]).length).to.equal(4);
    });
  });

  it('serves the debug listener over TLS with http.debug.tls', async function () {
    if (!requireTool(this, 'openssl')) return;
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
    const port = await freePort();
    const r = await startTestRegistry('', { driver: 'inmemory', httpExtra: `  debug:\n    addr: 127.0.0.1:${port}\n    tls:\n      certificate: ${join(dir, 'c.pem')}\n      key: ${join(dir, 'k.pem')}\n    prometheus:\n      enabled: true\n` });
    try {
      expect(r.debug!.url).to.match(/^https:/);
      const status = await new Promise<number>((resolve, reject) => {
        https.get(`https://127.0.0.1:${port}/metrics`, { rejectUnauthorized: false }, (res) => { res.resume(); resolve(res.statusCode!); }).on('error', reject);
      });
      expect(status).to.equal(200);
      // Plain HTTP is not served there.
      await req(`http://127.0.0.1:${port}`, 'GET', '/debug/health').then((x) => expect(x.status).to.not.equal(200), () => {});
    } finally {
      await r.stop();
    }
  });
});
