// Notifications end to end: distribution's events for real client traffic,
// compared with docker-registry 2.8.2's own for the same operations, and the
// endpoint's ignore lists and CloudEvents format.
import { expect } from 'chai';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestRegistry, tempDir, requireTool, type TestRegistry } from '../helpers/registry.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { skopeo, hostOf } from '../helpers/skopeo.js';
import { image, imageBlobs, index, writeLayout } from '../helpers/ociLayout.js';
import { startReceiver, type Receiver } from '../helpers/webhookReceiver.js';
import { pushBlob, pushManifest } from '../helpers/http.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const endpointYaml = (url: string, extra = '', top = '') => `notifications:\n${top}  endpoints:\n    - name: hook\n      url: ${url}\n      headers:\n        X-Test: [one, two]\n      timeout: 1s\n      threshold: 3\n      backoff: 200ms\n${extra}`;

/** An event without what differs between two registries and two runs. */
function comparable(e: Record<string, any>, base: string): string {
  const target = { ...e.target };
  if (target.url) target.url = String(target.url).replace(base, '<registry>');
  return JSON.stringify({ action: e.action, target, method: e.request.method, useragent: e.request.useragent, actor: e.actor });
}

async function settled(r: Receiver, quietMs = 1500): Promise<void> {
  let last = -1;
  while (r.received.length !== last) {
    last = r.received.length;
    await new Promise((res) => setTimeout(res, quietMs));
  }
}

describe('notifications: distribution\'s events', function () {
  this.timeout(180000);
  let dir: string;
  before(async () => { dir = await tempDir('notify-'); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('sends the events docker-registry 2.8.2 sends for a skopeo push, pull, HEADs, a mount and deletes', async function () {
    if (!requireTool(this, 'skopeo') || !requireTool(this, 'docker-registry')) return;
    const a = image(2, 'amd64');
    const b = image(1, 'arm64');
    const idx = index([{ img: a, arch: 'amd64' }, { img: b, arch: 'arm64' }]);
    const layout = join(dir, 'layout');
    await writeLayout(layout, idx, [...imageBlobs(a), ...imageBlobs(b)], 'v1');
    const theirs = await startReceiver();
    const ours = await startReceiver();
    let dist: Distribution | undefined;
    let reg: TestRegistry | undefined;
    try {
      dist = await startDistribution(join(dir, 'dist-root'), dir, 's', endpointYaml(theirs.url, '', '  events:\n    includereferences: true\n'));
      reg = await startTestRegistry(endpointYaml(ours.url, '', `  events:\n    includereferences: true\n  queue:\n    directory: ${join(dir, 'queue-1')}\n`));
      const run = async (url: string) => {
        const host = hostOf(url);
        await skopeo('copy', '--all', `oci:${layout}:v1`, `docker://${host}/my/app:v1`);
        await skopeo('copy', '--all', `docker://${host}/my/app:v1`, `oci:${join(dir, `out-${host.replace(/\W/g, '_')}`)}:v1`);
        await fetch(`${url}/v2/my/app/manifests/${b.manifest.digest}`, { method: 'HEAD', headers: { Accept: b.manifest.mediaType } });
        await fetch(`${url}/v2/my/app/blobs/${b.layers[0].digest}`, { method: 'HEAD' });
        expect((await fetch(`${url}/v2/other/blobs/uploads/?mount=${b.layers[0].digest}&from=my/app`, { method: 'POST' })).status).to.equal(201);
        expect((await fetch(`${url}/v2/my/app/manifests/${a.manifest.digest}`, { method: 'DELETE' })).status).to.equal(202);
        expect((await fetch(`${url}/v2/my/app/blobs/${a.layers[0].digest}`, { method: 'DELETE' })).status).to.equal(202);
      };
      await run(dist.url);
      await run(reg.url);
      await settled(theirs);
      await ours.waitFor(() => ours.events().length >= theirs.events().length, 30000, 'as many events as distribution sent');
      await settled(ours, 500);
      const want = theirs.events().map((e) => comparable(e, dist!.url)).sort();
      const got = ours.events().map((e) => comparable(e, reg!.url)).sort();
      expect(want.length).to.be.greaterThan(15);
      expect(got).to.deep.equal(want);
      // Actions seen: every kind distribution has for these operations.
      expect(new Set(ours.events().map((e) => e.action))).to.deep.equal(new Set(['push', 'pull', 'mount', 'delete']));

      // The envelope: one event per POST, distribution 3's media type, the endpoint's headers, Go's layout.
      for (const r of ours.received) {
        expect(r.headers['content-type']).to.equal('application/vnd.docker.distribution.events.v2+json');
        expect(r.headers['x-test']).to.equal('one, two');
        expect((r.body as { events: unknown[] }).events).to.have.length(1);
        expect(r.raw).to.equal(JSON.stringify(r.body, null, 3));
      }
      const e = ours.events().find((x) => x.action === 'push' && x.target.tag === 'v1')!;
      expect(e.id).to.match(UUID);
      expect(e.timestamp).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
      expect(Math.abs(Date.parse(e.timestamp) - Date.now())).to.be.lessThan(120000);
      expect(e.target.digest).to.equal(idx.digest);
      expect(e.target.url).to.equal(`${reg.url}/v2/my/app/manifests/${idx.digest}`);
      expect(e.request.id).to.be.a('string').and.not.equal('');
      expect(e.request.addr).to.match(/^127\.0\.0\.1:\d+$/);
      expect(e.request.host).to.equal(hostOf(reg.url));
      expect(e.source.instanceID).to.match(UUID);
      expect(e.source.addr).to.match(/:0$|:\d+$/);
      // Every event of one process carries its instance id; ids are unique.
      expect(new Set(ours.events().map((x) => x.source.instanceID)).size).to.equal(1);
      expect(new Set(ours.events().map((x) => x.id)).size).to.equal(ours.events().length);
    } finally {
      await reg?.stop();
      await dist?.stop();
      await theirs.stop();
      await ours.stop();
    }
  });
});
