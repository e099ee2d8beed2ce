// The Redis blob-descriptor cache against a real redis-server: distribution's
// key schema, invalidation across nodes, and Redis going away and coming back.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { RedisDescriptorCache } from '../../lib/cache/redisDescriptorCache.js';
import { type TestRegistry, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type TestRedis, startRedis } from '../helpers/redis.js';
import { expectError, pushBlob, req } from '../helpers/http.js';
import { sha256 } from '../helpers/ociLayout.js';

describe('cache: redis blob descriptors', function () {
  this.timeout(60000);
  let redis: TestRedis;
  let dir: string;
  let a: TestRegistry;
  let b: TestRegistry;
  const cacheOf = (r: TestRegistry) => r.registry.cache as RedisDescriptorCache;

  before(async function () {
    requireTool(this, 'redis-server');
    redis = await startRedis();
  });
  after(async () => { await redis?.stop(); });
  beforeEach(async () => {
    await redis.client.flushall();
    dir = await tempDir('registry-redis-');
    const root = join(dir, 'store');
    // Node a uses distribution 2.8's redis form, node b 3.x's.
    const cache = (redisYaml: string) => `redis:\n${redisYaml}`;
    a = await startTestRegistry(cache(`  addr: ${redis.addr}\n  db: 0\n  dialtimeout: 1s\n  readtimeout: 500ms\n  writetimeout: 500ms\n  pool:\n    maxidle: 4\n    maxactive: 16\n    idletimeout: 60s\n`), { root, secret: 's', cache: 'redis' });
    b = await startTestRegistry(cache(`  addrs: [${redis.addr}]\n  poolsize: 4\n`), { root, secret: 's', cache: 'redis' });
  });
  afterEach(async () => {
    await a?.stop();
    await b?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes distribution\'s keys: blobs::<digest> and repository::<name>::blobs[::<digest>]', async () => {
    const data = randomBytes(1234);
    const d = sha256(data);
    await pushBlob(a.url, 'lib/app', data, d);
    expect((await req(a.url, 'HEAD', `/v2/lib/app/blobs/${d}`)).status).to.equal(200);
    expect(await redis.client.hgetall(`blobs::${d}`)).to.deep.equal({ digest: d, size: '1234', mediatype: 'application/octet-stream' });
    expect(await redis.client.sismember('repository::lib/app::blobs', d)).to.equal(1);
    expect(await redis.client.hgetall(`repository::lib/app::blobs::${d}`)).to.deep.equal({ digest: d, mediatype: 'application/octet-stream' });
  });

  it('answers from the cache, and a delete on one node is seen by the other at once', async () => {
    const data = randomBytes(100);
    const d = sha256(data);
    await pushBlob(a.url, 'shared/repo', data, d);
    expect((await req(b.url, 'HEAD', `/v2/shared/repo/blobs/${d}`)).status).to.equal(200);
    // Remove the link behind the registries' backs: a HEAD that still answers
    // 200 was answered from the cache.
    const link = join(dir, 'store/docker/registry/v2/repositories/shared/repo/_layers/sha256', d.slice(7));
    await rm(link, { recursive: true });
    expect((await req(b.url, 'HEAD', `/v2/shared/repo/blobs/${d}`)).status).to.equal(200);
    await pushBlob(a.url, 'shared/repo', data, d); // link it again
    expect((await req(a.url, 'DELETE', `/v2/shared/repo/blobs/${d}`)).status).to.equal(202);
    expect(await redis.client.sismember('repository::shared/repo::blobs', d)).to.equal(0);
    await expectError(req(b.url, 'HEAD', `/v2/shared/repo/blobs/${d}`), 404, 'BLOB_UNKNOWN');
  });

  it('answers from storage when Redis is too slow', async () => {
    const data = randomBytes(100);
    const d = sha256(data);
    await pushBlob(a.url, 'slow/repo', data, d);
    const before = cacheOf(a).errors;
    await redis.client.call('CLIENT', 'PAUSE', '3000', 'ALL'); // every other client stalls
    const blocker = new Promise((r) => setTimeout(r, 3000));
    const res = await req(a.url, 'GET', `/v2/slow/repo/blobs/${d}`);
    expect(res.status).to.equal(200);
    expect(res.body.equals(data)).to.equal(true);
    expect(cacheOf(a).errors).to.be.greaterThan(before); // it timed out rather than waited
    await blocker;
  });

  it('keeps serving from storage while Redis is down, refuses deletes, and uses Redis again once it is back', async () => {
    const data = randomBytes(100);
    const d = sha256(data);
    await pushBlob(a.url, 'down/repo', data, d);
    await redis.stop();
    try {
      const before = cacheOf(a).errors;
      expect((await req(a.url, 'GET', `/v2/down/repo/blobs/${d}`)).body.equals(data)).to.equal(true);
      const other = randomBytes(50);
      await pushBlob(a.url, 'down/repo', other, sha256(other));
      expect((await req(a.url, 'HEAD', `/v2/down/repo/blobs/${sha256(other)}`)).status).to.equal(200);
      expect(cacheOf(a).errors).to.be.greaterThan(before);
      await expectError(req(a.url, 'DELETE', `/v2/down/repo/blobs/${d}`), 503, 'UNAVAILABLE');
      expect((await req(a.url, 'HEAD', `/v2/down/repo/blobs/${d}`)).status).to.equal(200); // nothing deleted
    } finally {
      await redis.restart();
      redis.client.disconnect();
      redis.client.connect().catch(() => {});
    }
    // The registry reconnects by itself; its next lookups fill Redis again.
    const end = Date.now() + 15000;
    for (;;) {
      await req(a.url, 'HEAD', `/v2/down/repo/blobs/${d}`);
      if ((await redis.client.sismember('repository::down/repo::blobs', d).catch(() => 0)) === 1) break;
      if (Date.now() > end) throw new Error('registry did not use Redis again after it came back');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await req(a.url, 'DELETE', `/v2/down/repo/blobs/${d}`)).status).to.equal(202);
  });

  it('lets one node at a time write an upload session (a Redis lock per session)', async () => {
    const post = await req(a.url, 'POST', '/v2/lock/app/blobs/uploads/');
    const loc = new URL(post.headers.get('location')!);
    const uuid = post.headers.get('docker-upload-uuid')!;
    await redis.client.set(`registry::upload::${uuid}::lock`, 'another-node', 'PX', 30000);
    const data = randomBytes(1000);
    await expectError(req(b.url, 'PATCH', loc.pathname + loc.search, data, { 'Content-Range': '0-999' }), 416, 'RANGE_INVALID');
    await redis.client.del(`registry::upload::${uuid}::lock`);
    const ok = await req(b.url, 'PATCH', loc.pathname + loc.search, data, { 'Content-Range': '0-999' });
    expect(ok.status).to.equal(202);
    expect(await redis.client.exists(`registry::upload::${uuid}::lock`)).to.equal(0); // released
    const next = new URL(ok.headers.get('location')!);
    expect((await req(a.url, 'PUT', `${next.pathname}${next.search}&digest=${sha256(data)}`)).status).to.equal(201);
  });
});
