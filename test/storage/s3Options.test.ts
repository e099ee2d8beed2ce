// The s3 driver's request budget and bounds, counted by a proxy in front of
// s3rver: a 3-layer skopeo pull with cold caches costs at most 10 storage
// requests with redirects off (the blob GET's own headers give the size: no
// LIST first) and at most 10 with redirects on, the clients' presigned GETs
// included; maxrequestspersecond really bounds the rate; usefipsendpoint
// reaches the SDK; a tags/list page is a flat listing, not a HEAD per tag.
import { expect } from 'chai';
import { rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type ChildRegistry, requireTool, spawnRegistry, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type S3rver, S3RVER_KEY, S3RVER_SECRET, startS3rver } from '../helpers/s3rver.js';
import { pushBlob, req } from '../helpers/http.js';
import { image, imageBlobs, writeLayout } from '../helpers/ociLayout.js';
import { skopeo } from '../helpers/skopeo.js';
import { s3Kind, startStorageProxy } from '../helpers/storageProxy.js';
import { mapLimit } from '../../lib/concurrency.js';
import { tagCurrentLinkPath, tagIndexLinkPath } from '../../lib/storage/paths.js';
import { createDriver } from '../../drivers/factory.js';
import type { S3Driver } from '../../drivers/s3/driver.js';
import type { Base } from '../../drivers/base.js';

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const show = (m: Map<string, number>) => [...m.entries()].map(([k, v]) => `${v} ${k}`).join(', ');

describe('storage: s3 request budget and bounds (s3rver)', function () {
  this.timeout(180000);
  let s3: S3rver;
  let dir: string;
  before(async function () {
    requireTool(this, 'skopeo');
    s3 = await startS3rver();
    dir = await tempDir('s3-options-');
  });
  after(async () => {
    await s3?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const storage = (endpoint: string, bucket: string, extra = '') => `  s3:\n    region: us-east-1\n    regionendpoint: ${endpoint}\n    bucket: ${bucket}\n    accesskey: ${S3RVER_KEY}\n    secretkey: ${S3RVER_SECRET}\n    rootdirectory: /reg\n${extra}`;

  it('a cold 3-layer pull costs at most 10 storage requests, redirects off or on', async () => {
    const bucket = await s3.bucket();
    const proxy = await startStorageProxy(s3.endpoint, (m, u) => (m === 'GET' && u.searchParams.has('list-type') ? 'LIST' : m));
    const img = image(3, 'amd64', 200_000);
    await writeLayout(join(dir, 'img'), img.manifest, imageBlobs(img), 'v1');
    const cfg = async (redirectOff: boolean) => {
      const f = join(dir, `reg-${redirectOff}.yml`);
      await writeFile(f, `version: 0.1\nlog:\n  level: error\nstorage:\n${storage(proxy.url, bucket)}  cache:\n    blobdescriptor: inmemory\n  redirect:\n    disable: ${redirectOff}\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  secret: s\n`);
      return f;
    };
    let reg: ChildRegistry = await spawnRegistry(await cfg(true));
    try {
      await skopeo('copy', `oci:${join(dir, 'img')}:v1`, `docker://${new URL(reg.url).host}/budget/img:v1`);
    } finally { await reg.stop(); }
    for (const redirectOff of [true, false]) {
      reg = await spawnRegistry(await cfg(redirectOff));
      try {
        proxy.take();
        await skopeo('copy', `docker://${new URL(reg.url).host}/budget/img:v1`, `oci:${join(dir, `out-${redirectOff}`)}:v1`);
        const c = proxy.take();
        const n = total(c.registry) + total(c.client);
        expect(n, `redirects ${redirectOff ? 'off' : 'on'}: registry ${show(c.registry)}; clients ${show(c.client)}`).to.be.at.most(10);
        if (redirectOff) expect(c.registry.get('LIST') ?? 0, show(c.registry)).to.equal(0);
        else expect(total(c.client), 'the clients fetched the layers from presigned URLs').to.equal(4);
      } finally { await reg.stop(); }
    }
    await proxy.close();
  });

  it('maxrequestspersecond bounds the request rate, retries included', async () => {
    const bucket = await s3.bucket();
    // Timestamps of every request that reaches the store.
    const stamps: number[] = [];
    const t = new URL(s3.endpoint);
    const agent = new http.Agent({ keepAlive: true });
    const gate = http.createServer((q, s) => {
      stamps.push(performance.now());
      const up = http.request({ host: t.hostname, port: t.port, method: q.method, path: q.url, headers: q.headers, agent }, (ur) => { s.writeHead(ur.statusCode!, ur.headers); ur.pipe(s); });
      up.on('error', () => s.destroy());
      q.pipe(up);
    });
    await new Promise<void>((ok) => gate.listen(0, '127.0.0.1', ok));
    const endpoint = `http://127.0.0.1:${(gate.address() as AddressInfo).port}`;
    const rate = 20;
    const r = await startTestRegistry('', { storageYaml: `${storage(endpoint, bucket, `    maxrequestspersecond: ${rate}\n`)}  redirect:\n    disable: true\n`, cache: undefined });
    try {
      const data = Buffer.from('rate');
      await pushBlob(r.url, 'rate/app', data, `sha256:${(await import('node:crypto')).createHash('sha256').update(data).digest('hex')}`);
      stamps.length = 0;
      // 100 reads at once: far more than 20 a second.
      const d = `sha256:${(await import('node:crypto')).createHash('sha256').update(data).digest('hex')}`;
      await Promise.all(Array.from({ length: 100 }, () => req(r.url, 'GET', `/v2/rate/app/blobs/${d}`)));
      // A token bucket of `rate` with a burst of `rate`: no second holds more than 2 x rate requests.
      for (const s of stamps) {
        const inWindow = stamps.filter((x) => x >= s && x < s + 1000).length;
        expect(inWindow).to.be.at.most(2 * rate);
      }
      expect(stamps.length).to.be.above(2 * rate);
      const driver = ((r.driver as Base).inner) as S3Driver;
      expect(driver.limiter?.waited, 'requests waited for a token').to.be.above(0);
    } finally {
      await r.stop();
      agent.destroy();
      await new Promise((ok) => gate.close(ok));
    }
  });

  it('a tags/list page costs a flat listing of the tags folder, not a HEAD per tag', async () => {
    const bucket = await s3.bucket();
    const proxy = await startStorageProxy(s3.endpoint, s3Kind);
    const driver = await createDriver('s3', { region: 'us-east-1', regionendpoint: proxy.url, bucket, accesskey: S3RVER_KEY, secretkey: S3RVER_SECRET, rootdirectory: '/reg' });
    // 400 tags with a history entry each (800 keys), one of them moved 3 times
    // (a longer history, skipped past), and a ghost without a current link.
    const tags = Array.from({ length: 400 }, (_, i) => `t${String(i).padStart(3, '0')}`);
    const dg = (i: number) => `sha256:${String(i).padStart(64, '0')}`;
    await mapLimit(tags, 16, async (t) => {
      await driver.putContent({}, tagIndexLinkPath('many/tags', t, dg(0)), Buffer.from(dg(0)));
      await driver.putContent({}, tagCurrentLinkPath('many/tags', t), Buffer.from(dg(0)));
    });
    for (let i = 1; i <= 3; i++) await driver.putContent({}, tagIndexLinkPath('many/tags', 't100', dg(i)), Buffer.from(dg(i)));
    await driver.putContent({}, tagIndexLinkPath('many/tags', 't100a', dg(0)), Buffer.from(dg(0)));
    const r = await startTestRegistry('', { storageYaml: `${storage(proxy.url, bucket)}  redirect:\n    disable: true\n`, cache: undefined });
    try {
      proxy.take();
      const page = await req(r.url, 'GET', '/v2/many/tags/tags/list?n=150&last=t099');
      expect(page.status).to.equal(200);
      const body = JSON.parse(page.body.toString()) as { tags: string[] };
      expect(body.tags).to.deep.equal(tags.slice(100, 250));
      const c = proxy.take();
      expect(c.registry.get('HeadObject') ?? 0, show(c.registry)).to.equal(0);
      expect(c.registry.get('ListObjectsV2') ?? 0, show(c.registry)).to.be.within(1, 4);
      // Key order is not name order ('x-1/' lists before 'x/'): pages still come in name order.
      for (const t of ['x-1', 'x-2', 'x-3', 'x', 'x.y', 'y']) await driver.putContent({}, tagCurrentLinkPath('order/tags', t), Buffer.from(dg(0)));
      const seen: string[] = [];
      for (let last = ''; ;) {
        const pg = await req(r.url, 'GET', `/v2/order/tags/tags/list?n=2${last ? `&last=${last}` : ''}`);
        const tags = (JSON.parse(pg.body.toString()) as { tags: string[] }).tags;
        seen.push(...tags);
        if (!pg.headers.get('link')) break;
        last = tags[tags.length - 1];
      }
      expect(seen).to.deep.equal(['x', 'x-1', 'x-2', 'x-3', 'x.y', 'y']);
    } finally {
      await r.stop();
      await proxy.close();
    }
  });

  it('usefipsendpoint reaches the SDK', async () => {
    const d = ((await createDriver('s3', { region: 'us-east-1', bucket: 'b', usefipsendpoint: true })) as Base).inner as S3Driver;
    expect(await d.client.config.useFipsEndpoint()).to.equal(true);
    const e = ((await createDriver('s3', { region: 'us-east-1', bucket: 'b' })) as Base).inner as S3Driver;
    expect(await e.client.config.useFipsEndpoint()).to.equal(false);
  });
});
