// One upstream fetch per blob, streamed to every client that asks meanwhile
// (issue 12): 20 concurrent cold reads of a 64 MiB layer from a real upstream
// (our registry, its access log counting the GETs) make one upstream GET and
// all get the right bytes; the blob is then stored and linked. Upstreams that
// send wrong bytes or cut the connection are small servers of our own (no
// real registry misbehaves on demand): every reader gets an error before the
// last byte, and nothing is cached.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { createDriver } from '../../drivers/factory.js';
import { MemoryDescriptorCache } from '../../lib/cache/descriptorCache.js';
import { Registry } from '../../lib/storage/registry.js';
import { uploadsRoot } from '../../lib/storage/paths.js';
import { isNotFound } from '../../drivers/driver.js';
import { ProxyBlobFetcher } from '../../lib/proxy/proxyBlobStore.js';
import { UpstreamClient } from '../../lib/proxy/upstream.js';
import { type TestRegistry, freePort, startTestRegistry } from '../helpers/registry.js';
import { pushBlob } from '../helpers/http.js';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const ctx = {};

async function drain(stream: AsyncIterable<Buffer>): Promise<{ digest: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of stream) { h.update(c); bytes += c.length; }
  return { digest: `sha256:${h.digest('hex')}`, bytes };
}

/** Drains a read that must fail: how many bytes came before the error. */
async function failedRead(p: Promise<{ stream: AsyncIterable<Buffer> }>): Promise<{ bytes: number; error: string }> {
  let bytes = 0;
  try {
    const { stream } = await p;
    for await (const c of stream) bytes += c.length;
  } catch (e) {
    return { bytes, error: (e as Error).message };
  }
  throw new Error(`the read succeeded with ${bytes} bytes`);
}

async function local() {
  const registry = new Registry(await createDriver('inmemory', {}), new MemoryDescriptorCache());
  return { registry, repo: registry.repository('mirror/big'), fetcher: new ProxyBlobFetcher() };
}

async function uploadsLeft(registry: Registry): Promise<string[]> {
  try { return await registry.driver.list({}, uploadsRoot('mirror/big')); } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

describe('proxy: one upstream fetch per blob, streamed to every waiting client', function () {
  this.timeout(120000);
  let upstream: TestRegistry;
  const lines: string[] = [];
  const data = randomBytes(64 << 20);
  const dgst = sha256(data);

  before(async () => {
    const accessLog = new PassThrough();
    accessLog.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    upstream = await startTestRegistry('', { driver: 'inmemory', accessLog });
    await pushBlob(upstream.url, 'lib/big', data, dgst);
  });
  after(async () => { await upstream?.stop(); });

  it('20 concurrent cold reads of a 64 MiB layer: one upstream GET, the right bytes for all, then stored and linked', async () => {
    const { registry, repo, fetcher } = await local();
    const src = { upstream: new UpstreamClient({ url: upstream.url }), upstreamName: 'lib/big' };
    lines.length = 0;
    // Each reader notes whether the blob was already stored when its first bytes came: streamed, not store-then-serve.
    const firstBytesBeforeStored: boolean[] = [];
    const reads = await Promise.all(Array.from({ length: 20 }, async () => {
      const { size, stream, stored } = await fetcher.open(ctx, repo, src, dgst);
      let done = false;
      void stored.then(() => { done = true; });
      expect(size).to.equal(data.length);
      const h = createHash('sha256');
      let bytes = 0;
      for await (const c of stream) {
        if (bytes === 0) firstBytesBeforeStored.push(!done);
        h.update(c);
        bytes += c.length;
      }
      return { digest: `sha256:${h.digest('hex')}`, bytes };
    }));
    expect(firstBytesBeforeStored).to.have.length(20);
    expect(firstBytesBeforeStored.every(Boolean), 'every client got bytes before the whole blob was stored').to.equal(true);
    for (const r of reads) expect(r).to.deep.equal({ digest: dgst, bytes: data.length });
    expect(lines.filter((l) => l.includes(`"GET /v2/lib/big/blobs/${dgst} `)), lines.join('\n')).to.have.length(1);
    expect(fetcher.stats).to.deep.equal({ fetches: 1, coalesced: 19 });
    expect((await repo.blobs.stat(ctx, dgst)).size).to.equal(data.length);
    expect(await drain(await repo.blobs.open(ctx, dgst))).to.deep.equal({ digest: dgst, bytes: data.length });
    expect(await uploadsLeft(registry)).to.deep.equal([]);
    expect(fetcher.inFlight).to.equal(0);
  });

  it('a blob the upstream does not have is BLOB_UNKNOWN; an upstream that is down is a 502', async () => {
    const { repo, fetcher } = await local();
    const missing = `sha256:${'1'.repeat(64)}`;
    const e1 = await fetcher.open(ctx, repo, { upstream: new UpstreamClient({ url: upstream.url }), upstreamName: 'lib/big' }, missing).then(() => null, (e: unknown) => e);
    expect((e1 as { code?: string }).code).to.equal('BLOB_UNKNOWN');
    const e2 = await fetcher.open(ctx, repo, { upstream: new UpstreamClient({ url: `http://127.0.0.1:${await freePort()}` }), upstreamName: 'lib/big' }, dgst).then(() => null, (e: unknown) => e);
    expect((e2 as { code?: string; status?: number }).code).to.equal('UNAVAILABLE');
    expect((e2 as { status?: number }).status).to.equal(502);
  });

  describe('upstreams that misbehave', () => {
    const size = 8 << 20;
    const good = randomBytes(size);
    const goodDigest = sha256(good);
    let server: http.Server;
    let url: string;
    let mode: 'wrong' | 'cut' = 'wrong';
    const sockets = new Set<Socket>();
    before(async () => {
      server = http.createServer((req, res) => {
        if (req.url === '/v2/') { res.writeHead(200).end('{}'); return; }
        res.writeHead(200, { 'Content-Length': String(size), 'Content-Type': 'application/octet-stream' });
        if (mode === 'wrong') {
          const bad = Buffer.from(good);
          bad[size - 1] ^= 0xff;
          res.end(bad);
        } else {
          res.write(good.subarray(0, size / 2), () => setTimeout(() => res.destroy(), 50));
        }
      });
      server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    after(async () => {
      sockets.forEach((s) => s.destroy());
      await new Promise((r) => server.close(r));
    });

    for (const m of ['wrong', 'cut'] as const) {
      it(`${m === 'wrong' ? 'wrong bytes for the digest' : 'a connection cut halfway'}: every reader gets an error before the last byte, nothing is cached`, async () => {
        mode = m;
        const { registry, repo, fetcher } = await local();
        const src = { upstream: new UpstreamClient({ url }), upstreamName: 'lib/big' };
        const reads = await Promise.all(Array.from({ length: 4 }, () => failedRead(fetcher.open(ctx, repo, src, goodDigest))));
        for (const r of reads) {
          expect(r.bytes).to.be.below(size);
          if (m === 'wrong') expect(r.error).to.include('not ' + goodDigest);
        }
        expect(fetcher.stats.fetches).to.equal(1);
        const stat = await repo.blobs.stat(ctx, goodDigest).then(() => 'stored', (e: { code?: string }) => e.code);
        expect(stat).to.equal('BLOB_UNKNOWN');
        expect(await registry.blobStore.stat(ctx, goodDigest).then(() => 'stored', (e: { code?: string }) => e.code)).to.equal('BLOB_UNKNOWN');
        expect(await uploadsLeft(registry)).to.deep.equal([]);
      });
    }
  });
});
