// The pull-through cache stays bounded (issue 12): content not pulled within
// proxy.ttl is removed by serve's scheduler, proxy.maxsize evicts the least
// recently pulled blobs, hosted repositories' data is left to
// garbage-collect, and whatever was removed is fetched again on the next pull.
import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { expireProxyCache } from '../../lib/proxy/proxyExpiry.js';
import type { ProxyRegistry } from '../../lib/proxy/proxyRegistry.js';
import { garbageCollect } from '../../lib/storage/garbageCollect.js';
import { blobDataPath } from '../../lib/storage/paths.js';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { type Blob, image, imageBlobs, layer } from '../helpers/ociLayout.js';
import { pushBlob, pushManifest, req } from '../helpers/http.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function counting(): { stream: PassThrough; count(s: string): number } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => { text += d.toString(); });
  return { stream, count: (s) => text.split('\n').filter((l) => l.includes(s)).length };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

describe('proxy: expiry and the size cap', function () {
  this.timeout(60000);
  let upstream: TestRegistry;
  const log = counting();
  const img = image(2, 'amd64', 30_000);
  const blobs: Blob[] = [layer(100_000), layer(100_000), layer(100_000)];

  before(async () => {
    upstream = await startTestRegistry('', { driver: 'inmemory', accessLog: log.stream });
    for (const b of [...imageBlobs(img).slice(0, -1), ...blobs]) await pushBlob(upstream.url, 'lib/app', b.data, b.digest);
    expect((await pushManifest(upstream.url, 'lib/app', 'v1', img.manifest.data, img.manifest.mediaType)).status).to.equal(201);
  });
  after(async () => { await upstream?.stop(); });

  it('serve\'s scheduler removes what was not pulled within the ttl, data included in pure proxy mode, and the next pull fetches it again', async () => {
    const proxy = await startTestRegistry(`proxy:\n  remoteurl: ${upstream.url}\n  ttl: 1s\n`);
    try {
      const pr = proxy.registry.proxy as ProxyRegistry;
      expect((await req(proxy.url, 'GET', '/v2/lib/app/manifests/v1', undefined, { Accept: img.manifest.mediaType })).status).to.equal(200);
      const l0 = img.layers[0];
      expect((await req(proxy.url, 'GET', `/v2/lib/app/blobs/${l0.digest}`)).body.equals(l0.data)).to.equal(true);
      await pr.records!.flush();
      expect(await exists(join(proxy.root!, blobDataPath(l0.digest)))).to.equal(true);
      // Not yet expired.
      let s = await proxy.expiry!.runOnce();
      expect(s!.records).to.equal(2);
      expect(s!.manifestsExpired + s!.blobsExpired).to.equal(0);
      await sleep(1300);
      s = await proxy.expiry!.runOnce();
      expect(s!.manifestsExpired).to.equal(1);
      expect(s!.blobsExpired).to.equal(1);
      expect(s!.bytesDeleted).to.equal(l0.size);
      expect(await exists(join(proxy.root!, blobDataPath(l0.digest)))).to.equal(false);
      expect(await exists(join(proxy.root!, 'docker/registry/v2/repositories/lib/app/_manifests/revisions/sha256', img.manifest.digest.slice(7)))).to.equal(false);
      // Pulled again: fetched again from the upstream.
      const gets = log.count(`GET /v2/lib/app/blobs/${l0.digest}`);
      expect((await req(proxy.url, 'GET', `/v2/lib/app/blobs/${l0.digest}`)).body.equals(l0.data)).to.equal(true);
      expect(log.count(`GET /v2/lib/app/blobs/${l0.digest}`)).to.equal(gets + 1);
      expect((await req(proxy.url, 'GET', `/v2/lib/app/manifests/${img.manifest.digest}`)).status).to.equal(200);
    } finally {
      await proxy.stop();
    }
  });

  it('past proxy.maxsize, evicts the least recently pulled blobs until the cache fits', async () => {
    const cap = blobs[0].size + blobs[1].size + 10;
    const proxy = await startTestRegistry(`proxy:\n  remoteurl: ${upstream.url}\n  ttl: 0s\n  maxsize: ${cap}\n  expiryinterval: 1s\n`);
    try {
      const pr = proxy.registry.proxy as ProxyRegistry;
      for (const b of blobs) {
        expect((await req(proxy.url, 'GET', `/v2/lib/app/blobs/${b.digest}`)).status).to.equal(200);
        await pr.records!.flush();
        await sleep(30);
      }
      // The first is pulled again: now the second is the least recent.
      expect((await req(proxy.url, 'GET', `/v2/lib/app/blobs/${blobs[0].digest}`)).status).to.equal(200);
      await sleep(1100); // past the record refresh interval (1 s at least)
      expect((await req(proxy.url, 'GET', `/v2/lib/app/blobs/${blobs[0].digest}`)).status).to.equal(200);
      await pr.records!.flush();
      const s = await proxy.expiry!.runOnce();
      expect(s!.blobsEvicted).to.equal(1);
      expect(s!.bytesKept).to.be.at.most(cap);
      expect(await exists(join(proxy.root!, blobDataPath(blobs[1].digest)))).to.equal(false);
      expect(await exists(join(proxy.root!, blobDataPath(blobs[0].digest)))).to.equal(true);
      expect(await exists(join(proxy.root!, blobDataPath(blobs[2].digest)))).to.equal(true);
    } finally {
      await proxy.stop();
    }
  });

  it('beside hosted repositories, unlinks expired blobs and leaves their data to garbage-collect', async () => {
    const proxy = await startTestRegistry(`proxy:\n  remotes:\n    - prefix: mirror\n      remoteurl: ${upstream.url}\n      ttl: 1h\n`);
    try {
      const pr = proxy.registry.proxy as ProxyRegistry;
      const b = blobs[2];
      expect((await req(proxy.url, 'GET', `/v2/mirror/lib/app/blobs/${b.digest}`)).status).to.equal(200);
      // A hosted repository holds another blob of its own.
      const own = layer(5000);
      await pushBlob(proxy.url, 'mine/app', own.data, own.digest);
      await pr.records!.flush();
      const s = await expireProxyCache(proxy.registry, pr, { log: pino({ level: 'silent' }) }, { now: Date.now() + 2 * 3600e3 });
      expect(s.blobsExpired).to.equal(1);
      expect(s.bytesDeleted).to.equal(0);
      expect(s.bytesLeftForGC).to.equal(b.size);
      expect(await exists(join(proxy.root!, blobDataPath(b.digest)))).to.equal(true);
      expect((await req(proxy.url, 'HEAD', `/v2/mine/app/blobs/${own.digest}`)).status).to.equal(200);
      const gc = await garbageCollect(proxy.registry, { log: pino({ level: 'silent' }) }, { dryRun: false, deleteUntagged: false, graceMs: 0 });
      expect(gc.blobsDeleted).to.include(b.digest);
      expect(await exists(join(proxy.root!, blobDataPath(b.digest)))).to.equal(false);
    } finally {
      await proxy.stop();
    }
  });
});
