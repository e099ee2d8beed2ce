// Regression tests for the faults issue 10 names: each input once took the
// process down, answered 5xx, or lost what a client had been told was stored.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import { mkdir, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChildRegistry, type TestRegistry, capturingLogger, spawnRegistry, startTestRegistry, tempDir } from '../helpers/registry.js';
import { abortedRequest, expectError, pushBlob, pushManifest, req } from '../helpers/http.js';
import { blob, image, index, sha256 } from '../helpers/ociLayout.js';
import { Registry } from '../../lib/storage/registry.js';
import { NoopDescriptorCache } from '../../lib/cache/descriptorCache.js';
import { garbageCollect } from '../../lib/storage/garbageCollect.js';
import { createDriver } from '../../drivers/factory.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const V2 = 'docker/registry/v2';

/** A request with a chunked body (no Content-Length), written in pieces. */
function chunked(base: string, method: string, path: string, pieces: Buffer[], headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = http.request({ host: u.hostname, port: u.port, method, path, headers: { 'Transfer-Encoding': 'chunked', ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts), headers: res.headers }));
      res.on('error', reject);
    });
    r.on('error', reject);
    (async () => {
      for (const p of pieces) {
        if (r.destroyed) return;
        if (!r.write(p)) await new Promise((ok) => r.once('drain', ok));
      }
      r.end();
    })().catch(reject);
  });
}

/** chunked(), again when the server's close after its answer beat our last writes (EPIPE, ECONNRESET: the answer was lost client-side). */
async function chunkedAnswer(...a: Parameters<typeof chunked>): ReturnType<typeof chunked> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await chunked(...a);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (attempt >= 4 || (code !== 'EPIPE' && code !== 'ECONNRESET')) throw e;
    }
  }
}

const codeOf = (b: Buffer) => (JSON.parse(b.toString()) as { errors: { code: string }[] }).errors[0].code;

describe('hardening: inputs that once crashed, answered 5xx or lost a push', function () {
  this.timeout(180000);

  describe('as a process', () => {
    let dir: string;
    let reg: ChildRegistry;
    before(async () => {
      dir = await tempDir('hardening-');
      const cfg = join(dir, 'config.yml');
      await writeFile(cfg, `version: 0.1\nlog:\n  level: info\n  formatter: json\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'store')}\n  delete:\n    enabled: true\nhttp:\n  secret: s\n`);
      // A low open-file limit: unbounded fan-out over descriptors runs into EMFILE here.
      reg = await spawnRegistry(cfg, {}, { nofile: 512 });
    });
    after(async () => {
      await reg?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    it('survives a chunked manifest PUT over the limit (413), unauthenticated, again and again', async () => {
      for (let i = 0; i < 5; i++) {
        const res = await chunkedAnswer(reg.url, 'PUT', '/v2/crash/me/manifests/v1', Array.from({ length: 5 }, () => Buffer.alloc(1 << 20, 0x20)), { 'Content-Type': OCI_MANIFEST });
        expect(res.status).to.equal(413);
        expect(codeOf(res.body)).to.equal('MANIFEST_INVALID');
        expect((await req(reg.url, 'GET', '/v2/')).status).to.equal(200);
      }
      expect(reg.proc.exitCode).to.equal(null);
      expect(reg.output()).to.not.include('uncaught');
    });

    it('checks tens of thousands of descriptors with bounded concurrency, while other pulls go on', async () => {
      const root = join(dir, 'store', V2);
      // 20,000 distinct layers written straight into the layout (a push of each would take minutes).
      const layers = Array.from({ length: 20_000 }, () => blob(randomBytes(16), 'application/vnd.oci.image.layer.v1.tar'));
      /** Blobs and their links written straight into the layout, 500 at a time. */
      const store = async (blobs: typeof layers, links: string) => {
        for (let i = 0; i < blobs.length; i += 500) {
          await Promise.all(blobs.slice(i, i + 500).map(async (b) => {
            const hex = b.digest.slice(7);
            await mkdir(join(root, 'blobs/sha256', hex.slice(0, 2), hex), { recursive: true });
            await writeFile(join(root, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), b.data);
            await mkdir(join(root, 'repositories/fan/out', links, 'sha256', hex), { recursive: true });
            await writeFile(join(root, 'repositories/fan/out', links, 'sha256', hex, 'link'), b.digest);
          }));
        }
      };
      await store(layers, '_layers');
      const config = blob(Buffer.from('{}'), 'application/vnd.oci.image.config.v1+json');
      await pushBlob(reg.url, 'fan/out', config.data, config.digest);
      const other = image(1);
      for (const b of [other.config, ...other.layers]) await pushBlob(reg.url, 'fan/other', b.data, b.digest);
      await pushManifest(reg.url, 'fan/other', 'v1', other.manifest.data, OCI_MANIFEST);
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST,
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      }));
      expect(manifest.length).to.be.below(4 << 20);
      const pulls = Array.from({ length: 20 }, () => req(reg.url, 'GET', `/v2/fan/other/blobs/${other.layers[0].digest}`));
      const put = await req(reg.url, 'PUT', '/v2/fan/out/manifests/wide', manifest, { 'Content-Type': OCI_MANIFEST });
      expect(put.status, put.body.toString()).to.equal(201);
      for (const p of await Promise.all(pulls)) expect(p.status).to.equal(200);
      // One layer named 27,000 times (4 MiB): checked once.
      const one = layers[0];
      const repeated = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST,
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: Array.from({ length: 27_000 }, () => ({ mediaType: one.mediaType, digest: one.digest, size: one.size })),
      }));
      const rep = await req(reg.url, 'PUT', '/v2/fan/out/manifests/repeated', repeated, { 'Content-Type': OCI_MANIFEST });
      expect(rep.status, rep.body.toString()).to.equal(201);
      // An index of 20,000 children: the child manifests are in the repository (written straight into the layout).
      const children = layers.slice(0, 20_000).map((l, i) => blob(Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST,
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: [{ mediaType: l.mediaType, digest: l.digest, size: l.size }], annotations: { i: String(i) },
      })), OCI_MANIFEST));
      await store(children, '_manifests/revisions');
      const idx = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_INDEX,
        manifests: children.map((c) => ({ mediaType: OCI_MANIFEST, digest: c.digest, size: c.size })),
      }));
      expect(idx.length).to.be.below(4 << 20);
      const ires = await req(reg.url, 'PUT', '/v2/fan/out/manifests/index', idx, { 'Content-Type': OCI_INDEX });
      expect(ires.status, ires.body.toString()).to.equal(201);
      expect(reg.output()).to.not.match(/EMFILE|"level":"error"/);
    });
  });

  describe('in process', () => {
    let r: TestRegistry;
    let u: string;
    const cap = capturingLogger('info');
    before(async () => { r = await startTestRegistry('', { log: cap.log, httpExtra: '  limits:\n    maxuploads: 16\n    minbodyrate: 1024\n    minbodyrategrace: 2s\n' }); u = r.url; });
    after(async () => { await r.stop(); });

    const push = async (name: string, img = image(1)) => {
      for (const b of [img.config, ...img.layers]) await pushBlob(u, name, b.data, b.digest);
      return img;
    };

    it('a DELETE by digest racing a PUT of the same manifest under a new tag: one wins whole, never a tag without its revision', async () => {
      const img = await push('race/del');
      for (let i = 0; i < 40; i++) {
        await pushManifest(u, 'race/del', 'base', img.manifest.data, OCI_MANIFEST);
        const [del, put] = await Promise.all([
          req(u, 'DELETE', `/v2/race/del/manifests/${img.manifest.digest}`),
          req(u, 'PUT', `/v2/race/del/manifests/t${i}`, img.manifest.data, { 'Content-Type': OCI_MANIFEST }),
        ]);
        expect([202, 404], del.body.toString()).to.include(del.status);
        expect(put.status, put.body.toString()).to.equal(201);
        // Whatever the order, every tag that exists resolves, and a tag link never outlives its revision.
        const byTag = await req(u, 'GET', `/v2/race/del/manifests/t${i}`);
        const byDigest = await req(u, 'GET', `/v2/race/del/manifests/${img.manifest.digest}`);
        expect(byTag.status === 200 ? byDigest.status : 200).to.equal(200);
        const hex = img.manifest.digest.slice(7);
        const tagLink = await readdir(join(r.root!, V2, 'repositories/race/del/_manifests/tags', `t${i}`)).then(() => true, () => false);
        const revLink = await readdir(join(r.root!, V2, 'repositories/race/del/_manifests/revisions/sha256', hex)).then(() => true, () => false);
        if (tagLink) expect(revLink, `t${i} exists without its revision`).to.equal(true);
      }
    });

    it('concurrent tag PUT and DELETE never answer 5xx and end consistent', async () => {
      const img = await push('race/tag');
      await pushManifest(u, 'race/tag', 'keep', img.manifest.data, OCI_MANIFEST);
      const statuses = new Set<number>();
      for (let i = 0; i < 100; i++) {
        const ops = await Promise.all([
          req(u, 'PUT', '/v2/race/tag/manifests/x', img.manifest.data, { 'Content-Type': OCI_MANIFEST }),
          req(u, 'DELETE', '/v2/race/tag/manifests/x'),
          req(u, 'PUT', '/v2/race/tag/manifests/x', img.manifest.data, { 'Content-Type': OCI_MANIFEST }),
          req(u, 'DELETE', '/v2/race/tag/manifests/x'),
        ]);
        for (const o of ops) { statuses.add(o.status); expect(o.status, o.body.toString()).to.be.below(500); }
        const tags = (await req(u, 'GET', '/v2/race/tag/tags/list')).json().tags as string[];
        for (const t of tags) expect((await req(u, 'GET', `/v2/race/tag/manifests/${t}`)).status, `tag ${t} listed but not served`).to.equal(200);
      }
      expect([...statuses].every((s) => [201, 202, 404].includes(s))).to.equal(true);
    });

    it('refuses an index child whose descriptor has the wrong size', async () => {
      const img = await push('idx/size');
      await pushManifest(u, 'idx/size', 'child', img.manifest.data, OCI_MANIFEST);
      const bad = JSON.parse(index([{ img, arch: 'amd64' }]).data.toString()) as { manifests: { size: number }[] };
      bad.manifests[0].size += 1;
      await expectError(req(u, 'PUT', '/v2/idx/size/manifests/all', JSON.stringify(bad), { 'Content-Type': OCI_INDEX }), 400, 'MANIFEST_INVALID');
      const good = index([{ img, arch: 'amd64' }]);
      expect((await req(u, 'PUT', '/v2/idx/size/manifests/all', good.data, { 'Content-Type': OCI_INDEX })).status).to.equal(201);
    });

    it('keeps every byte an aborted PATCH delivered', async () => {
      const data = randomBytes(3_000_000);
      const post = await req(u, 'POST', '/v2/abort/keep/blobs/uploads/');
      const loc = new URL(post.headers.get('location')!);
      // 1,500,000 bytes: not a multiple of the 1 MiB write buffer.
      await abortedRequest(u, 'PATCH', loc.pathname + loc.search, data.length, data.subarray(0, 1_500_000));
      const status = await req(u, 'GET', loc.pathname + loc.search);
      expect(status.status).to.equal(204);
      expect(status.headers.get('range')).to.equal('0-1499999');
      const rest = await req(u, 'PATCH', loc.pathname + loc.search, data.subarray(1_500_000), { 'Content-Range': `1500000-${data.length - 1}` });
      expect(rest.status, rest.body.toString()).to.equal(202);
      const done = await req(u, 'PUT', `${new URL(rest.headers.get('location')!).pathname}${new URL(rest.headers.get('location')!).search}&digest=${sha256(data)}`);
      expect(done.status, done.body.toString()).to.equal(201);
      expect((await req(u, 'GET', `/v2/abort/keep/blobs/${sha256(data)}`)).body.equals(data)).to.equal(true);
    });

    it('logs a client that leaves mid-body at info as "client closed", and answers nothing', async () => {
      const before = cap.records.length;
      const post = await req(u, 'POST', '/v2/abort/log/blobs/uploads/');
      const loc = new URL(post.headers.get('location')!);
      await abortedRequest(u, 'PATCH', loc.pathname + loc.search, 1 << 20, randomBytes(1000));
      await abortedRequest(u, 'PUT', `/v2/abort/log/manifests/v1`, 5000, Buffer.from('{"schemaVersion":'));
      const mine = cap.records.slice(before);
      expect(mine.some((x) => x.msg === 'client closed' && x.level === 'info'), JSON.stringify(mine)).to.equal(true);
      expect(mine.filter((x) => x.level === 'error' || x.level === 'fatal'), JSON.stringify(mine)).to.deep.equal([]);
      expect(mine.some((x) => x.msg === 'request' && x.status === 500)).to.equal(false);
    });

    it('skips tag folders a crash left without a current link; garbage-collect removes them and stray temp files once old', async () => {
      const img = await push('crash/left');
      await pushManifest(u, 'crash/left', 'good', img.manifest.data, OCI_MANIFEST);
      const tags = join(r.root!, V2, 'repositories/crash/left/_manifests/tags');
      const hex = img.manifest.digest.slice(7);
      await mkdir(join(tags, 'ghost/index/sha256', hex), { recursive: true });
      await writeFile(join(tags, 'ghost/index/sha256', hex, 'link'), img.manifest.digest);
      expect((await req(u, 'GET', '/v2/crash/left/tags/list')).json().tags).to.deep.equal(['good']);
      await expectError(req(u, 'GET', '/v2/crash/left/manifests/ghost'), 404, 'MANIFEST_UNKNOWN');
      // Stray temp files of an interrupted putContent: one old, one fresh.
      const old = join(tags, 'good/current/link.tmp-0123456789ab');
      const fresh = join(tags, 'good/current/link.tmp-ba9876543210');
      await writeFile(old, 'x');
      await writeFile(fresh, 'x');
      const past = new Date(Date.now() - 2 * 3600e3);
      await utimes(old, past, past);
      for (const f of await readdir(join(tags, 'ghost'), { recursive: true })) await utimes(join(tags, 'ghost', f), past, past);
      const registry = new Registry(await createDriver('filesystem', { rootdirectory: r.root! }), new NoopDescriptorCache(), {});
      const sum = await garbageCollect(registry, {}, { dryRun: false, deleteUntagged: false, graceMs: 3600e3 });
      expect(sum.tagFoldersDeleted).to.equal(1);
      expect(sum.straysDeleted).to.equal(1);
      expect((await readdir(tags)).sort()).to.deep.equal(['good']);
      expect((await readdir(join(tags, 'good/current'))).sort()).to.deep.equal(['link', 'link.tmp-ba9876543210']);
      expect((await req(u, 'GET', '/v2/crash/left/manifests/good')).status).to.equal(200);
    });

    it('garbage-collect keeps a blob an upload or mount just linked, even when its bytes are old', async () => {
      const data = randomBytes(3000);
      const d = sha256(data);
      await pushBlob(u, 'gc/young', data, d);
      const hex = d.slice(7);
      const dataFile = join(r.root!, V2, 'blobs/sha256', hex.slice(0, 2), hex, 'data');
      const link = join(r.root!, V2, 'repositories/gc/young/_layers/sha256', hex, 'link');
      const past = new Date(Date.now() - 2 * 3600e3);
      // An old copy of the bytes (pushed long ago, unreferenced), linked again just now.
      await utimes(dataFile, past, past);
      const registry = new Registry(await createDriver('filesystem', { rootdirectory: r.root! }), new NoopDescriptorCache(), {});
      let sum = await garbageCollect(registry, {}, { dryRun: false, deleteUntagged: false, graceMs: 3600e3 });
      expect(sum.blobsDeleted).to.not.include(d);
      expect((await req(u, 'GET', `/v2/gc/young/blobs/${d}`)).status).to.equal(200);
      // Once the link is old too, nothing protects it.
      await utimes(link, past, past);
      sum = await garbageCollect(registry, {}, { dryRun: false, deleteUntagged: false, graceMs: 3600e3 });
      expect(sum.blobsDeleted).to.include(d);
      expect(sum.layerLinksDeleted).to.be.at.least(1);
    });

    it('answers small protocol faults with the right 4xx', async () => {
      const d = sha256(Buffer.from('x'));
      const uploads = join(r.root!, V2, 'repositories/faults/one/_uploads');
      await expectError(req(u, 'POST', `/v2/faults/one/blobs/uploads/?digest=${d}&digest=${d}`, 'x'), 400, 'DIGEST_INVALID');
      await expectError(req(u, 'POST', `/v2/faults/one/blobs/uploads/?mount=${d}&mount=${d}`), 400, 'DIGEST_INVALID');
      expect(await readdir(uploads).catch(() => [])).to.deep.equal([]);
      // A chunked PATCH longer than its Content-Range: 416, keeping the bytes within the range.
      const post = await req(u, 'POST', '/v2/faults/one/blobs/uploads/');
      const loc = new URL(post.headers.get('location')!);
      const long = await chunked(u, 'PATCH', loc.pathname + loc.search, [randomBytes(600), randomBytes(600)], { 'Content-Range': '0-999' });
      expect(long.status, long.body.toString()).to.equal(416);
      expect(codeOf(long.body)).to.equal('RANGE_INVALID');
      expect(long.headers.range).to.equal('0-999');
      // A chunked PATCH shorter than its range: 400 SIZE_INVALID, and the answer says where the upload stands.
      const short = await chunked(u, 'PATCH', loc.pathname + loc.search, [randomBytes(100)], { 'Content-Range': '1000-1999' });
      expect(short.status).to.equal(400);
      expect(codeOf(short.body)).to.equal('SIZE_INVALID');
      expect(short.headers.range).to.equal('0-1099');
      // A repository holding only an upload is unknown to tags/list.
      await req(u, 'POST', '/v2/faults/onlyupload/blobs/uploads/');
      await expectError(req(u, 'GET', '/v2/faults/onlyupload/tags/list'), 404, 'NAME_UNKNOWN');
    });

    it('cuts bodies slower than http.limits.minbodyrate, so trickling clients cannot hold every upload slot', async () => {
      // 20 clients each sending a monolithic upload at one byte a second: 16 take every slot.
      const sockets: net.Socket[] = [];
      const closed: Promise<void>[] = [];
      const url = new URL(u);
      for (let i = 0; i < 20; i++) {
        const s = net.connect(Number(url.port), url.hostname);
        s.on('error', () => {});
        s.write(`POST /v2/trickle/s${i}/blobs/uploads/?digest=${sha256(Buffer.alloc(1000))} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: 1000\r\n\r\n`);
        closed.push(new Promise((ok) => s.once('close', () => ok())));
        sockets.push(s);
      }
      const drip = setInterval(() => { for (const s of sockets) if (!s.destroyed) s.write('a'); }, 1000);
      try {
        await new Promise((ok) => setTimeout(ok, 300));
        const busy = await req(u, 'POST', '/v2/trickle/now/blobs/uploads/');
        expect(busy.status).to.equal(429);
        // Within the grace period (2 s) and a tick, every trickler is cut.
        await Promise.race([Promise.all(closed), new Promise((_, no) => setTimeout(() => no(new Error('trickling connections were not cut')), 8000))]);
        const data = randomBytes(5000);
        await pushBlob(u, 'trickle/after', data, sha256(data));
      } finally {
        clearInterval(drip);
        for (const s of sockets) s.destroy();
      }
      expect(cap.records.some((x) => String(x.msg).includes('http.limits.minbodyrate'))).to.equal(true);
    });
  });
});
