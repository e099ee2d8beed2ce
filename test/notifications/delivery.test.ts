// Delivery from the durable queue, in-process, on the disk spool and on a
// real redis-server: a receiver down then up (every event, in order), one
// that fails forever (bounded queue, dead letters, replay), one that hangs
// (pushes unaffected), tag deletes, ignore lists, CloudEvents.
import { expect } from 'chai';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REGISTRY_BIN, startTestRegistry, tempDir, requireTool, type TestRegistry } from '../helpers/registry.js';
import { sha256 } from '../helpers/ociLayout.js';
import { startReceiver, type Receiver } from '../helpers/webhookReceiver.js';
import { pushBlob, pushManifest, req } from '../helpers/http.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { endpointYaml } from './webhooks.test.js';

const blobOf = (i: number) => { const data = Buffer.from(`blob ${i} ${randomBytes(8).toString('hex')}`); return { data, digest: sha256(data) }; };

function cli(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [REGISTRY_BIN, ...args], { encoding: 'utf8', timeout: 30000 }, (e, stdout, stderr) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out: stdout + stderr });
    });
  });
}

async function metricsText(reg: TestRegistry): Promise<string> {
  return reg.app.metrics!.registry.metrics();
}

const series = (text: string, name: string, labels: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)));
  return line ? Number(line.split(' ').pop()) : undefined;
};

for (const kind of ['disk', 'redis'] as const) {
  describe(`notifications: delivery (${kind} queue)`, function () {
    this.timeout(120000);
    let dir: string;
    let redis: TestRedis | undefined;
    let n = 0;
    before(async function () {
      dir = await tempDir('notify-delivery-');
      if (kind === 'redis') {
        if (!requireTool(this, 'redis-server')) { this.skip(); return; }
        redis = await startRedis();
      }
    });
    after(async () => {
      await redis?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    /** A registry whose one endpoint posts to the receiver; queue keys and directory fresh per test. */
    async function registryFor(r: Receiver, endpointExtra = '', queueYaml = '') {
      n++;
      const name = `hook${n}`;
      const yaml = endpointYaml(r.url, endpointExtra, `  queue:\n    directory: ${join(dir, `q${n}`)}\n${queueYaml}`).replace('name: hook', `name: ${name}`);
      const reg = await startTestRegistry(`${yaml}${redis ? `redis:\n  addr: ${redis.addr}\n` : ''}`, { httpExtra: '  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n' });
      return { reg, name, configFile: await configFile(name, yaml) };
    }

    /** The same notifications section in a file, for the CLI. */
    async function configFile(name: string, yaml: string): Promise<string> {
      const f = join(dir, `${name}.yml`);
      await writeFile(f, `version: 0.1\nlog:\n  level: error\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:0\n${yaml}${redis ? `redis:\n  addr: ${redis.addr}\n` : ''}`);
      return f;
    }

    it('delivers every event, in order, after the receiver was down for a while', async () => {
      const r = await startReceiver();
      const { reg } = await registryFor(r);
      try {
        await r.down();
        const pushed: string[] = [];
        for (let i = 0; i < 30; i++) {
          const b = blobOf(i);
          await pushBlob(reg.url, `down/repo${i % 3}`, b.data, b.digest);
          pushed.push(b.digest);
        }
        // Nothing could be delivered; the queue holds all of it.
        const vars = await (await fetch(`${reg.debug!.url}/debug/vars`)).json() as { notifications: { endpoints: { queue: { events: number } }[] } };
        expect(vars.notifications.endpoints[0].queue.events).to.be.at.least(29);
        await r.up();
        await r.waitFor(() => new Set(r.events().map((e) => e.target.digest)).size === 30, 60000, '30 push events');
        for (const repo of ['down/repo0', 'down/repo1', 'down/repo2']) {
          const got = [...new Set(r.events().filter((e) => e.target.repository === repo).map((e) => e.target.digest))];
          expect(got).to.deep.equal(pushed.filter((_, i) => `down/repo${i % 3}` === repo));
        }
        // The receiver counts a request before the registry sees the answer.
        let text = '';
        for (let i = 0; i < 100; i++) {
          text = await metricsText(reg);
          if (series(text, 'registry_notifications_events_total', 'type="Successes"')! >= 30) break;
          await new Promise((res) => setTimeout(res, 50));
        }
        expect(series(text, 'registry_notifications_events_total', 'type="Events"')).to.equal(30);
        expect(series(text, 'registry_notifications_events_total', 'type="Successes"')).to.be.at.least(30);
        expect(series(text, 'registry_notifications_events_total', 'type="Errors"')).to.be.at.least(1);
        expect(series(text, 'registry_notifications_status_total', 'code="200 OK"')).to.be.at.least(30);
      } finally {
        await reg.stop();
        await r.stop();
      }
    });

    it('keeps the queue within its bounds while the receiver fails, dead-letters the oldest, and replays them once it is fixed', async function () {
      const r = await startReceiver();
      r.mode = { kind: 'status', status: 500 };
      const { reg, name, configFile: cfg } = await registryFor(r, '', '    maxevents: 10\n');
      try {
        const pushed: string[] = [];
        for (let i = 0; i < 40; i++) {
          const b = blobOf(i);
          await pushBlob(reg.url, 'failing/repo', b.data, b.digest);
          pushed.push(b.digest);
        }
        // At most maxevents, the one being retried included (the disk queue trims just after its write).
        let text = '';
        for (let i = 0; i < 100; i++) {
          text = await metricsText(reg);
          // None is delivered: every event is pending or dead.
          if (series(text, 'registry_notifications_pending_total', `endpoint="${name}"`)! + (series(text, 'registry_notifications_dead_lettered_total', 'reason="maxevents"') ?? 0) === 40) break;
          await new Promise((res) => setTimeout(res, 50));
        }
        expect(series(text, 'registry_notifications_pending_total', `endpoint="${name}"`)).to.be.at.most(10);
        const dead = series(text, 'registry_notifications_dead_lettered_total', 'reason="maxevents"')!;
        expect(dead).to.be.at.least(29);
        expect(series(text, 'registry_notifications_status_total', 'code="500 Internal Server Error"')).to.be.at.least(1);
        expect(series(text, 'registry_notifications_endpoint_down', `endpoint="${name}"`)).to.equal(1);
        if (requireTool(this, 'promtool')) {
          // The series lint clean, but for distribution's gauge named like a counter (kept: dashboards use it).
          const notif = text.split('\n').filter((l) => l.includes('registry_notifications_')).join('\n') + '\n';
          const lint = spawnSync('promtool', ['check', 'metrics'], { input: notif, encoding: 'utf8' });
          const problems = `${lint.stdout}${lint.stderr}`.split('\n').filter((l) => l.trim() && !l.includes('registry_notifications_pending_total non-counter metrics should not have "_total" suffix'));
          expect(problems, problems.join('\n')).to.deep.equal([]);
        }
        const listed = await cli(['notifications', 'list-dead', cfg, '--json', '--limit', '1000']);
        expect(listed.code, listed.out).to.equal(0);
        const deadEvents = listed.out.trim().split('\n').map((l) => JSON.parse(l) as { endpoint: string; reason: string; event: { target: { digest: string } } });
        expect(deadEvents).to.have.length(dead);
        expect(deadEvents.every((d) => d.endpoint === name && d.reason === 'maxevents')).to.equal(true);
        // The oldest went, in order: from the first push (Redis trims the one in flight too) or the second (the disk queue keeps it).
        const first = pushed.indexOf(deadEvents[0].event.target.digest);
        expect(first).to.be.oneOf(kind === 'disk' ? [1] : [0, 1]);
        expect(deadEvents.map((d) => d.event.target.digest)).to.deep.equal(pushed.slice(first, first + dead));
        r.mode = { kind: 'ok' };
        // A replay fills the queue up to its bounds, never past them: run it until nothing is left dead.
        let replayedTotal = 0;
        for (let i = 0; i < 40; i++) {
          const replayed = await cli(['notifications', 'replay', cfg]);
          expect(replayed.code, replayed.out).to.equal(0);
          replayedTotal += Number(/: (\d+) events? queued again/.exec(replayed.out)?.[1]);
          if (!replayed.out.includes('still dead-lettered')) break;
          await new Promise((res) => setTimeout(res, 300));
        }
        expect(replayedTotal).to.equal(dead);
        // Nothing replayed went back to the dead letters.
        await r.waitFor(() => new Set(r.events().map((e) => e.target.digest)).size === 40, 60000, 'all 40 events');
        const after = await cli(['notifications', 'list-dead', cfg]);
        expect(after.out).to.include(`${name}: 0 dead-lettered events`);
        expect(series(await metricsText(reg), 'registry_notifications_dead_lettered_total', 'reason="maxevents"')).to.equal(dead);
      } finally {
        await reg.stop();
        await r.stop();
      }
    });

    it('holds at most maxbytes while the receiver fails, and dead-letters what waited longer than maxage', async () => {
      const r = await startReceiver();
      r.mode = { kind: 'status', status: 503 };
      const { reg, name } = await registryFor(r, '      queue:\n        maxbytes: 4096\n        maxage: 1s\n');
      try {
        for (let i = 0; i < 20; i++) {
          const b = blobOf(i);
          await pushBlob(reg.url, 'bytes/repo', b.data, b.digest);
        }
        const vars = async () => ((await (await fetch(`${reg.debug!.url}/debug/vars`)).json()) as { notifications: { endpoints: { queue: { events: number; bytes: number } }[] } }).notifications.endpoints[0].queue;
        // Each event is a few hundred bytes: 20 of them are over 4 KiB, so the oldest went.
        let q = await vars();
        for (let i = 0; i < 100 && q.bytes > 4096; i++) { await new Promise((res) => setTimeout(res, 50)); q = await vars(); }
        expect(q.bytes).to.be.at.most(4096);
        expect(q.events).to.be.lessThan(20);
        expect(series(await metricsText(reg), 'registry_notifications_dead_lettered_total', `endpoint="${name}",reason="maxbytes"`)).to.be.at.least(1);
        // After maxage nothing waits: the rest is dead-lettered as too old, none delivered.
        for (let i = 0; i < 200 && (await vars()).events > 0; i++) await new Promise((res) => setTimeout(res, 50));
        expect((await vars()).events).to.equal(0);
        const text = await metricsText(reg);
        const dead = (series(text, 'registry_notifications_dead_lettered_total', 'reason="maxbytes"') ?? 0) + (series(text, 'registry_notifications_dead_lettered_total', 'reason="maxage"') ?? 0);
        expect(dead).to.equal(20);
        expect(series(text, 'registry_notifications_dead_lettered_total', 'reason="maxage"')).to.be.at.least(1);
        expect(r.accepted).to.equal(0);
      } finally {
        await reg.stop();
        await r.stop();
      }
    });

    if (kind === 'redis') it('keeps events on local disk while Redis is down, and delivers them once it is back', async () => {
      const r = await startReceiver();
      const { reg } = await registryFor(r);
      try {
        const first = blobOf(-1);
        await pushBlob(reg.url, 'redisdown/repo', first.data, first.digest);
        await r.waitFor(() => r.events().length === 1, 30000, 'the first event');
        // A Redis without persistence comes back empty: only what was kept here can arrive.
        await redis!.down();
        const pushed: string[] = [];
        for (let i = 0; i < 10; i++) {
          const b = blobOf(i);
          await pushBlob(reg.url, 'redisdown/repo', b.data, b.digest);
          pushed.push(b.digest);
        }
        await redis!.up();
        await r.waitFor(() => pushed.every((d) => r.events().some((e) => e.target.digest === d)), 60000, 'the 10 events pushed while Redis was down');
        expect(series(await metricsText(reg), 'registry_notifications_lost_total', '') ?? 0).to.equal(0);
      } finally {
        await reg.stop();
        await r.stop();
      }
    });

    it('answers pushes while the receiver hangs (each delivery attempt ends at the endpoint timeout)', async () => {
      const r = await startReceiver();
      r.mode = { kind: 'hang' };
      const { reg } = await registryFor(r);
      try {
        for (let i = 0; i < 20; i++) {
          const b = blobOf(i);
          await pushBlob(reg.url, 'hang/repo', b.data, b.digest);
        }
        // Every push was answered while the receiver had answered nothing.
        expect(r.hanging).to.be.at.least(1);
        expect(r.accepted).to.equal(0);
        r.mode = { kind: 'ok' };
        await r.waitFor(() => new Set(r.events().map((e) => e.target.digest)).size === 20, 60000, '20 events after the hang');
      } finally {
        await reg.stop();
        await r.stop();
      }
    });

    it('sends tag deletes, honours ignore.actions and ignoredmediatypes, and speaks CloudEvents when asked', async () => {
      const r = await startReceiver();
      const ce = await startReceiver('/ce');
      const extra = '      ignore:\n        actions: [pull]\n      ignoredmediatypes: [application/vnd.oci.image.index.v1+json]\n'
        + `    - name: ce${n + 1}\n      url: ${ce.url}\n      format: cloudevents\n`;
      const { reg } = await registryFor(r, extra);
      try {
        const cfg = Buffer.from('{}');
        const cfgDigest = sha256(cfg);
        await pushBlob(reg.url, 'ev/app', cfg, cfgDigest);
        const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: cfg.length }, layers: [] }));
        await pushManifest(reg.url, 'ev/app', 'v1', manifest, 'application/vnd.oci.image.manifest.v1+json');
        const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length }] }));
        await pushManifest(reg.url, 'ev/app', 'multi', idx, 'application/vnd.oci.image.index.v1+json');
        expect((await req(reg.url, 'GET', '/v2/ev/app/manifests/v1', undefined, { Accept: 'application/vnd.oci.image.manifest.v1+json' })).status).to.equal(200);
        expect((await req(reg.url, 'DELETE', '/v2/ev/app/manifests/v1')).status).to.equal(202);
        await r.waitFor(() => r.events().some((e) => e.action === 'delete'), 30000, 'the tag delete');
        await ce.waitFor(() => ce.received.length >= 5, 30000, 'five cloud events');
        const actions = r.events().map((e) => [e.action, e.target.mediaType, e.target.tag].filter(Boolean).join(' '));
        // No pull (ignored action), no index push (ignored media type); the tag delete names the tag.
        expect(actions).to.deep.equal(['push application/octet-stream', 'push application/vnd.oci.image.manifest.v1+json v1', 'delete v1']);
        const del = r.events()[2];
        expect(del.target).to.deep.equal({ repository: 'ev/app', tag: 'v1' });
        // CloudEvents: structured JSON, one per event, the distribution event as data.
        const ces = ce.received.map((x) => ({ headers: x.headers, body: x.body as Record<string, any> }));
        expect(ces.map((x) => x.body.type)).to.deep.equal(['io.distribution.push', 'io.distribution.push', 'io.distribution.push', 'io.distribution.pull', 'io.distribution.delete']);
        for (const x of ces) {
          expect(x.headers['content-type']).to.match(/^application\/cloudevents\+json/);
          expect(x.body.specversion).to.equal('1.0');
          expect(x.body.id).to.equal(x.body.data.id);
          // The SDK keeps milliseconds of distribution's nanoseconds.
          expect(x.body.time.slice(0, 23)).to.equal(x.body.data.timestamp.slice(0, 23));
          expect(x.body.source).to.equal(`//${new URL(reg.url).host}/v2/ev/app`);
        }
        expect(ces[1].body.subject).to.equal(sha256(manifest));
        expect(ces[4].body.subject).to.equal('v1');
      } finally {
        await reg.stop();
        await r.stop();
        await ce.stop();
      }
    });
  });
}
