// Two pull-through nodes on one s3 stand-in (s3rver) and one Redis, as behind
// a load balancer: concurrent cold pulls of one blob on both nodes make one
// upstream fetch (issue 12), the node that did not fetch serves it from the
// shared store once it is there, and every client gets the right bytes.
import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { type TestRegistry, requireTool, startTestRegistry } from '../helpers/registry.js';
import { type TestRedis, startRedis } from '../helpers/redis.js';
import { type S3rver, S3RVER_KEY, S3RVER_SECRET, startS3rver } from '../helpers/s3rver.js';
import { layer } from '../helpers/ociLayout.js';
import { pushBlob, req } from '../helpers/http.js';

describe('proxy: two nodes on shared s3 storage and Redis', function () {
  this.timeout(120000);
  let s3: S3rver;
  let redis: TestRedis;
  let upstream: TestRegistry;
  const nodes: TestRegistry[] = [];
  let text = '';
  const big = layer(8 << 20);

  before(async function () {
    requireTool(this, 'redis-server');
    s3 = await startS3rver();
    redis = await startRedis();
    const log = new PassThrough();
    log.on('data', (d: Buffer) => { text += d.toString(); });
    upstream = await startTestRegistry('', { driver: 'inmemory', accessLog: log });
    await pushBlob(upstream.url, 'lib/big', big.data, big.digest);
    const bucket = await s3.bucket();
    const storageYaml = `  s3:\n    region: us-east-1\n    regionendpoint: ${s3.endpoint}\n    bucket: ${bucket}\n    accesskey: ${S3RVER_KEY}\n    secretkey: ${S3RVER_SECRET}\n    rootdirectory: /reg\n  redirect:\n    disable: true\n`;
    for (let i = 0; i < 2; i++) {
      nodes.push(await startTestRegistry(`redis:\n  addr: ${redis.addr}\nproxy:\n  remoteurl: ${upstream.url}\n`, { storageYaml, cache: 'redis', secret: 'proxy-cluster' }));
    }
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await upstream?.stop();
    await redis?.stop();
    await s3?.stop();
  });

  it('concurrent cold pulls of one blob on both nodes make one upstream fetch', async () => {
    const path = `/v2/lib/big/blobs/${big.digest}`;
    const results = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      const r = await req(nodes[i % 2].url, 'GET', path);
      return r.status === 200 && r.body.equals(big.data) ? 'ok' : `node ${i % 2}: ${r.status} ${r.body.length} bytes ${r.status === 200 ? '' : r.body.toString().slice(0, 300)}`;
    }));
    expect(results).to.deep.equal(Array(8).fill('ok'));
    const gets = text.split('\n').filter((l) => l.includes(`"GET ${path}`)).length;
    expect(gets, 'upstream blob GETs').to.equal(1);
    // Both nodes now serve it from the shared store without the upstream.
    await upstream.stop();
    for (const n of nodes) expect((await req(n.url, 'GET', path)).body.equals(big.data)).to.equal(true);
  });
});
