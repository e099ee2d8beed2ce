// A bounded concurrency soak (about 30 s a store): clients on two nodes that
// share storage and Redis push images (monolithic and chunked, with a shared
// base layer pushed by several at once), move tags, delete tags and digests,
// mount, and read, while an online garbage collection runs twice. Afterwards:
// no 5xx was answered; every tag resolves to a manifest whose blobs all
// exist; every push that got 201 and was not deleted since is there, and
// skopeo pulls it byte for byte; no blob in storage is partial.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { REGISTRY_BIN, type TestRegistry, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { type TestRedis, startRedis } from '../helpers/redis.js';
import { type S3rver, S3RVER_KEY, S3RVER_SECRET, startS3rver } from '../helpers/s3rver.js';
import { req } from '../helpers/http.js';
import { type Blob, blob, layer, sha256 } from '../helpers/ociLayout.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const SOAK_MS = 30_000;
const CLIENTS = 6;

interface Store { name: string; storageYaml: string; blobs(): Promise<Map<string, Buffer>>; stop(): Promise<void> }

async function fsStore(dir: string): Promise<Store> {
  const root = join(dir, 'fs-store');
  return {
    name: 'filesystem',
    storageYaml: `  filesystem:\n    rootdirectory: ${root}\n`,
    async blobs() {
      const out = new Map<string, Buffer>();
      const base = join(root, 'docker/registry/v2/blobs/sha256');
      for (const p of await readdir(base).catch(() => [])) {
        for (const hex of await readdir(join(base, p))) out.set(`sha256:${hex}`, await readFile(join(base, p, hex, 'data')));
      }
      return out;
    },
    stop: async () => {},
  };
}

async function s3Store(): Promise<Store & { s3: S3rver }> {
  const s3 = await startS3rver();
  const bucket = await s3.bucket();
  const client = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_SECRET } });
  return {
    name: 's3 (s3rver)', s3,
    storageYaml: `  s3:\n    region: us-east-1\n    regionendpoint: ${s3.endpoint}\n    bucket: ${bucket}\n    accesskey: ${S3RVER_KEY}\n    secretkey: ${S3RVER_SECRET}\n    rootdirectory: /soak\n`,
    async blobs() {
      const out = new Map<string, Buffer>();
      let token: string | undefined;
      do {
        const res = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'soak/docker/registry/v2/blobs/', ContinuationToken: token }));
        for (const o of res.Contents ?? []) {
          const m = /blobs\/sha256\/..\/([0-9a-f]{64})\/data$/.exec(o.Key!);
          if (!m) continue;
          const body = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
          out.set(`sha256:${m[1]}`, Buffer.from(await body.Body!.transformToByteArray()));
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async stop() { client.destroy(); await s3.stop(); },
  };
}

function manifestOf(config: Blob, layers: Blob[]): Blob {
  return blob(Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  })), OCI_MANIFEST);
}

for (const make of [fsStore, async () => s3Store()]) {
  describe('soak: concurrent pushes, tag moves, deletes, mounts and online garbage collection', function () {
    this.timeout(240_000);
    let dir: string;
    let redis: TestRedis;
    let store: Store;
    let nodes: TestRegistry[];
    let cfgFile: string;

    before(async function () {
      requireTool(this, 'redis-server');
      requireTool(this, 'skopeo');
      dir = await tempDir('soak-');
      redis = await startRedis();
      store = await make(dir);
      const extra = `redis:\n  addr: ${redis.addr}\n`;
      nodes = [];
      for (let i = 0; i < 2; i++) nodes.push(await startTestRegistry(extra, { storageYaml: store.storageYaml, cache: 'redis', secret: 'soak' }));
      cfgFile = join(dir, 'gc.yml');
      await writeFile(cfgFile, `version: 0.1\nlog:\n  level: warn\nstorage:\n${store.storageYaml}  cache:\n    blobdescriptor: redis\n  delete:\n    enabled: true\n${extra}`);
    });
    after(async () => {
      for (const n of nodes ?? []) await n.stop();
      await store?.stop();
      await redis?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it(`holds every invariant on ${make === fsStore ? 'filesystem' : 's3 (s3rver)'}`, async () => {
      const statuses: { what: string; status: number; body: string }[] = [];
      const call = async (what: string, node: TestRegistry, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) => {
        const r = await req(node.url, method, path, body, headers);
        statuses.push({ what, status: r.status, body: r.status >= 500 ? r.body.toString().slice(0, 300) : '' });
        return r;
      };
      const node = () => nodes[Math.floor(Math.random() * nodes.length)];

      // A base image in its own repository, never deleted: the source of mounts.
      const base = layer(4000);
      const baseConfig = blob(Buffer.from('{"base":true}'), 'application/vnd.oci.image.config.v1+json');
      for (const b of [base, baseConfig]) expect((await call('base blob', nodes[0], 'POST', `/v2/soak/base/blobs/uploads/?digest=${b.digest}`, b.data)).status).to.equal(201);
      expect((await call('base manifest', nodes[0], 'PUT', '/v2/soak/base/manifests/v1', manifestOf(baseConfig, [base]).data, { 'Content-Type': OCI_MANIFEST })).status).to.equal(201);
      // Layers several clients push at once.
      const shared = Array.from({ length: 3 }, () => layer(3000));

      const pushBlob = async (repo: string, b: Blob) => {
        const n = node();
        if (Math.random() < 0.5) return call('blob monolithic', n, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, b.data);
        const post = await call('blob start', n, 'POST', `/v2/${repo}/blobs/uploads/`);
        if (post.status !== 202) return post;
        let loc = new URL(post.headers.get('location')!);
        const cut = Math.floor(b.data.length / 2);
        const p1 = await call('blob chunk', node(), 'PATCH', loc.pathname + loc.search, b.data.subarray(0, cut), { 'Content-Range': `0-${cut - 1}` });
        if (p1.status !== 202) return p1;
        loc = new URL(p1.headers.get('location')!);
        return call('blob commit', node(), 'PUT', `${loc.pathname}${loc.search}&digest=${b.digest}`, b.data.subarray(cut), { 'Content-Range': `${cut}-${b.data.length - 1}` });
      };

      const expected: Map<string, string | null>[] = [];
      const end = Date.now() + SOAK_MS;
      const client = async (c: number) => {
        const repo = `soak/c${c}`;
        const tags = new Map<string, string | null>();
        expected[c] = tags;
        const mine: string[] = [];
        while (Date.now() < end) {
          const op = Math.random();
          if (op < 0.45 || mine.length === 0) {
            // Push an image: a unique layer, a shared one, and sometimes the mounted base.
            const own = layer(2000 + Math.floor(Math.random() * 60000));
            const config = blob(Buffer.from(JSON.stringify({ c, n: randomBytes(8).toString('hex') })), 'application/vnd.oci.image.config.v1+json');
            const layers = [own, shared[Math.floor(Math.random() * shared.length)]];
            if (Math.random() < 0.3) {
              const m = await call('mount', node(), 'POST', `/v2/${repo}/blobs/uploads/?mount=${base.digest}&from=soak/base`);
              if (m.status === 201) layers.push(base);
            }
            let ok = true;
            for (const b of [config, ...layers.filter((l) => l !== base)]) {
              const r = await pushBlob(repo, b);
              if (r.status !== 201) { ok = false; break; }
            }
            if (!ok) continue;
            const man = manifestOf(config, layers);
            const tag = `t${Math.floor(Math.random() * 4)}`;
            const put = await call('manifest put', node(), 'PUT', `/v2/${repo}/manifests/${tag}`, man.data, { 'Content-Type': OCI_MANIFEST });
            if (put.status === 201) { tags.set(tag, man.digest); mine.push(man.digest); }
          } else if (op < 0.6) {
            const tag = `t${Math.floor(Math.random() * 4)}`;
            const del = await call('tag delete', node(), 'DELETE', `/v2/${repo}/manifests/${tag}`);
            if (del.status === 202 || del.status === 404) tags.set(tag, null);
          } else if (op < 0.7) {
            const dgst = mine[Math.floor(Math.random() * mine.length)];
            const del = await call('digest delete', node(), 'DELETE', `/v2/${repo}/manifests/${dgst}`);
            if (del.status === 202 || del.status === 404) for (const [t, d] of tags) if (d === dgst) tags.set(t, null);
          } else {
            const tag = [...tags.keys()][Math.floor(Math.random() * tags.size)];
            if (!tag) continue;
            const got = await call('manifest get', node(), 'GET', `/v2/${repo}/manifests/${tag}`, undefined, { Accept: OCI_MANIFEST });
            const want = tags.get(tag);
            // This client is the only writer of its tags: what it last did is what it reads.
            if (want) expect(got.headers.get('docker-content-digest'), `${repo}:${tag}`).to.equal(want);
            else expect(got.status, `${repo}:${tag} was deleted`).to.equal(404);
          }
        }
      };

      // Two online collections while the clients work, one after the other.
      const gc = (async () => {
        const outs: string[] = [];
        for (const at of [8000, 18000]) {
          await new Promise((r) => setTimeout(r, Math.max(0, end - SOAK_MS + at - Date.now())));
          outs.push(await new Promise<string>((resolve, reject) => {
            execFile(process.execPath, [REGISTRY_BIN, 'garbage-collect', cfgFile, '--delete-untagged', '--grace', '5s', '--settle', '1s'], { timeout: 120_000 }, (e, so, se) => {
              if (e) reject(new Error(`garbage-collect failed: ${e.message}\n${se}${so}`)); else resolve(so);
            });
          }));
        }
        return outs;
      })();
      await Promise.all([...Array.from({ length: CLIENTS }, (_, c) => client(c)), gc]);
      const gcOut = await gc;
      expect(gcOut.every((o) => /manifests and \d+ blobs marked/.test(o)), gcOut.join('\n')).to.equal(true);

      // No 5xx, whatever raced.
      const fivexx = statuses.filter((s) => s.status >= 500);
      expect(fivexx, JSON.stringify(fivexx.slice(0, 5))).to.deep.equal([]);
      expect(statuses.length).to.be.above(200);

      // Every push that got 201 and was not deleted since is there; deleted tags are gone.
      const survivors: [string, string, string][] = [];
      for (let c = 0; c < CLIENTS; c++) {
        for (const [tag, want] of expected[c]) {
          const got = await req(nodes[c % 2].url, 'GET', `/v2/soak/c${c}/manifests/${tag}`, undefined, { Accept: OCI_MANIFEST });
          if (want) {
            expect(got.status, `soak/c${c}:${tag}`).to.equal(200);
            expect(got.headers.get('docker-content-digest')).to.equal(want);
            survivors.push([`soak/c${c}`, tag, want]);
          } else {
            expect(got.status, `soak/c${c}:${tag} was deleted`).to.equal(404);
          }
        }
      }
      // Every tag of every repository resolves, and its blobs are all there, whole.
      const repos = (await req(nodes[0].url, 'GET', '/v2/_catalog')).json().repositories as string[];
      for (const repo of repos) {
        const listed = await req(nodes[1].url, 'GET', `/v2/${repo}/tags/list`);
        if (listed.status === 404) continue;
        for (const tag of (listed.json().tags as string[] | null) ?? []) {
          const m = await req(nodes[1].url, 'GET', `/v2/${repo}/manifests/${tag}`, undefined, { Accept: OCI_MANIFEST });
          expect(m.status, `${repo}:${tag}`).to.equal(200);
          const body = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
          for (const d of [body.config.digest, ...body.layers.map((l) => l.digest)]) {
            let b = await req(nodes[0].url, 'GET', `/v2/${repo}/blobs/${d}`);
            // s3 redirects blob GETs to presigned URLs: follow them.
            if (b.status === 307) b = await req(b.headers.get('location')!, 'GET', '');
            expect(b.status, `${repo}:${tag} blob ${d}`).to.equal(200);
            expect(sha256(b.body)).to.equal(d);
          }
        }
      }
      // skopeo pulls the surviving pushes byte for byte (a sample of up to 8).
      for (const [repo, tag, want] of survivors.slice(0, 8)) {
        const out = join(dir, `pull-${repo.replace('/', '-')}-${tag}`);
        await skopeo('copy', `docker://${hostOf(nodes[0].url)}/${repo}:${tag}`, `oci:${out}:x`);
        const idx = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
        expect(idx.manifests[0].digest, `${repo}:${tag}`).to.equal(want);
        for (const f of await readdir(join(out, 'blobs/sha256'))) {
          expect(createHash('sha256').update(await readFile(join(out, 'blobs/sha256', f))).digest('hex')).to.equal(f);
        }
      }
      // No blob in storage is partial: each data file hashes to its name.
      for (const [d, data] of await store.blobs()) expect(sha256(data), `blob ${d}`).to.equal(d);
    });
  });
}
