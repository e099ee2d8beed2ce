// The registry on a cloud driver, over real HTTP and skopeo: the same checks
// for every object store. Two registries share one bucket (one redirecting
// blob GETs, one streaming them); a third, started as its own process after
// the others filled the bucket, must serve everything they stored. Last, an
// offline garbage collection on the bucket deletes exactly what nothing
// references, in the store's batches, and every tag still pulls.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REGISTRY_BIN, type TestRegistry, requireTool, spawnRegistry, startTestRegistry, tempDir } from '../helpers/registry.js';
import { expectError, pushBlob, pushManifest, req } from '../helpers/http.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';
import { blob, image, imageBlobs, sha256, writeLayout } from '../helpers/ociLayout.js';

export interface CloudBackend {
  /** The storage section (two-space indented driver section plus storage keys), for a fresh bucket shared by the suite. */
  storageYaml(redirect: boolean): string;
  /** Where redirected blob GETs point, and a mark of the signature in the URL. */
  redirectPrefix: string;
  signatureMark: string;
  /** Redirects are off for drivers (or credentials) that cannot sign. */
  canRedirect: boolean;
  stop(): Promise<void>;
}

export function cloudRegistrySuite(title: string, start: () => Promise<CloudBackend>): void {
  describe(`storage: the registry on ${title}`, function () {
    this.timeout(180000);
    let be: CloudBackend;
    let r: TestRegistry;
    let streaming: TestRegistry;
    let dir: string;
    const img = image(3, 'amd64', 150000);
    let deletedArtifact = '';

    /** Pushes to c/app an untagged signature artifact whose subject is img. */
    const pushSignature = async (content: string) => {
      const sig = blob(Buffer.from(content), 'application/vnd.example.sig');
      const empty = blob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
      await pushBlob(r.url, 'c/app', sig.data, sig.digest);
      await pushBlob(r.url, 'c/app', empty.data, empty.digest);
      const art = blob(Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example.sig',
        config: { mediaType: empty.mediaType, digest: empty.digest, size: empty.size },
        layers: [{ mediaType: sig.mediaType, digest: sig.digest, size: sig.size }],
        subject: { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size },
      })), 'application/vnd.oci.image.manifest.v1+json');
      const put = await pushManifest(r.url, 'c/app', art.digest, art.data, art.mediaType);
      return { sig, empty, art, put };
    };

    before(async () => {
      be = await start();
      r = await startTestRegistry('', { storageYaml: be.storageYaml(true), secret: 's' });
      streaming = await startTestRegistry('', { storageYaml: be.storageYaml(false), secret: 's' });
      dir = await tempDir('cloud-');
    });
    after(async () => {
      await r?.stop();
      await streaming?.stop();
      await be?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('serves blobs: a redirect to a signed URL with the right bytes, or streamed, with ranges', async () => {
      const data = randomBytes(300000);
      const d = sha256(data);
      await pushBlob(r.url, 'c/blob', data, d);
      const res = await req(r.url, 'GET', `/v2/c/blob/blobs/${d}`);
      if (be.canRedirect) {
        expect(res.status).to.equal(307);
        const location = res.headers.get('location')!;
        expect(location.startsWith(be.redirectPrefix), location).to.equal(true);
        expect(location).to.include(be.signatureMark);
        const followed = Buffer.from(await (await fetch(location)).arrayBuffer());
        expect(followed.equals(data)).to.equal(true);
      } else {
        expect(res.status).to.equal(200);
      }
      const head = await req(r.url, 'HEAD', `/v2/c/blob/blobs/${d}`);
      expect(head.status).to.equal(200);
      expect(head.headers.get('content-length')).to.equal(String(data.length));
      const direct = await req(streaming.url, 'GET', `/v2/c/blob/blobs/${d}`);
      expect(direct.status).to.equal(200);
      expect(direct.body.equals(data)).to.equal(true);
      const ranged = await req(streaming.url, 'GET', `/v2/c/blob/blobs/${d}`, undefined, { Range: 'bytes=10-19' });
      expect(ranged.status).to.equal(206);
      expect(ranged.body.equals(data.subarray(10, 20))).to.equal(true);
      await expectError(req(streaming.url, 'GET', `/v2/c/blob/blobs/${sha256('absent')}`), 404, 'BLOB_UNKNOWN');
    });

    it('takes chunked uploads of any chunk size, resumed by the other registry, and refuses bad ones', async () => {
      const data = randomBytes((6 << 20) + 777); // crosses S3's 5 MiB part minimum with odd chunks
      const post = await req(r.url, 'POST', '/v2/c/chunks/blobs/uploads/');
      let loc = new URL(post.headers.get('location')!);
      const cuts = [0, 1000, 1 << 20, (5 << 20) + 3, data.length];
      for (let i = 0; i + 1 < cuts.length; i++) {
        const via = i % 2 === 0 ? r : streaming; // every chunk on the other registry
        const res = await req(via.url, 'PATCH', loc.pathname + loc.search, data.subarray(cuts[i], cuts[i + 1]), { 'Content-Range': `${cuts[i]}-${cuts[i + 1] - 1}` });
        expect(res.status, res.body.toString()).to.equal(202);
        expect(res.headers.get('range')).to.equal(`0-${cuts[i + 1] - 1}`);
        loc = new URL(res.headers.get('location')!);
        if (i === 1) {
          // Out of order: refused, and the upload is untouched.
          await expectError(req(r.url, 'PATCH', loc.pathname + loc.search, data.subarray(0, 10), { 'Content-Range': '0-9' }), 416, 'RANGE_INVALID');
          const status = await req(streaming.url, 'GET', loc.pathname + loc.search);
          expect(status.status).to.equal(204);
          expect(status.headers.get('range')).to.equal(`0-${cuts[2] - 1}`);
        }
      }
      const put = await req(streaming.url, 'PUT', `${loc.pathname}${loc.search}&digest=${sha256(data)}`);
      expect(put.status, put.body.toString()).to.equal(201);
      await expectError(req(r.url, 'PUT', `${loc.pathname}${loc.search}&digest=${sha256(data)}`), 404, 'BLOB_UPLOAD_UNKNOWN');
      expect((await req(streaming.url, 'GET', `/v2/c/chunks/blobs/${sha256(data)}`)).body.equals(data)).to.equal(true);

      // A wrong digest stores nothing under either digest.
      const bad = await req(r.url, 'POST', '/v2/c/chunks/blobs/uploads/');
      const b = new URL(bad.headers.get('location')!);
      const other = randomBytes(1000);
      await expectError(req(r.url, 'PUT', `${b.pathname}${b.search}&digest=${sha256('not this')}`, other), 400, 'DIGEST_INVALID');
      await expectError(req(r.url, 'HEAD', `/v2/c/chunks/blobs/${sha256(other)}`), 404, 'BLOB_UNKNOWN');
      await expectError(req(r.url, 'HEAD', `/v2/c/chunks/blobs/${sha256('not this')}`), 404, 'BLOB_UNKNOWN');

      // A cancelled upload is gone for both registries.
      const c = await req(r.url, 'POST', '/v2/c/chunks/blobs/uploads/');
      const cl = new URL(c.headers.get('location')!);
      await req(r.url, 'PATCH', cl.pathname + cl.search, randomBytes(100), { 'Content-Range': '0-99' });
      expect((await req(streaming.url, 'DELETE', cl.pathname + cl.search)).status).to.equal(204);
      await expectError(req(r.url, 'GET', cl.pathname + cl.search), 404, 'BLOB_UPLOAD_UNKNOWN');
    });

    it('stores manifests, tags, referrers and the catalog; mounts and deletes', async () => {
      for (const b of [img.config, ...img.layers]) await pushBlob(r.url, 'c/app', b.data, b.digest);
      await pushManifest(r.url, 'c/app', 'v1', img.manifest.data, img.manifest.mediaType);
      await pushManifest(r.url, 'c/app', 'v2', img.manifest.data, img.manifest.mediaType);
      const byTag = await req(streaming.url, 'GET', '/v2/c/app/manifests/v1', undefined, { Accept: img.manifest.mediaType });
      expect(byTag.status).to.equal(200);
      expect(byTag.headers.get('docker-content-digest')).to.equal(img.manifest.digest);
      expect(byTag.body.equals(img.manifest.data)).to.equal(true);
      expect((await req(streaming.url, 'HEAD', `/v2/c/app/manifests/${img.manifest.digest}`)).status).to.equal(200);
      expect((await req(streaming.url, 'GET', '/v2/c/app/tags/list')).json()).to.deep.equal({ name: 'c/app', tags: ['v1', 'v2'] });

      // An artifact whose subject is the image.
      const { art, put } = await pushSignature('{"sig":1}');
      expect(put.headers.get('oci-subject')).to.equal(img.manifest.digest);
      const refs = (await req(streaming.url, 'GET', `/v2/c/app/referrers/${img.manifest.digest}`)).json() as { manifests: { digest: string; artifactType: string }[] };
      expect(refs.manifests.map((m) => [m.digest, m.artifactType])).to.deep.equal([[art.digest, 'application/vnd.example.sig']]);

      // Mount a layer into another repository, then see both in the catalog.
      const mount = await req(streaming.url, 'POST', `/v2/c/other/blobs/uploads/?mount=${img.layers[0].digest}&from=c/app`);
      expect(mount.status).to.equal(201);
      const cat = (await req(r.url, 'GET', '/v2/_catalog')).json() as { repositories: string[] };
      expect(cat.repositories).to.include.members(['c/app', 'c/other', 'c/blob', 'c/chunks']);

      // Tag delete (OCI 1.1) leaves the other tag; manifest delete takes what is left.
      expect((await req(r.url, 'DELETE', '/v2/c/app/manifests/v2')).status).to.equal(202);
      expect((await req(streaming.url, 'GET', '/v2/c/app/tags/list')).json()).to.deep.equal({ name: 'c/app', tags: ['v1'] });
      expect((await req(r.url, 'GET', '/v2/c/app/manifests/v1')).status).to.equal(200);
      expect((await req(r.url, 'DELETE', `/v2/c/app/manifests/${art.digest}`)).status).to.equal(202);
      // (The other registry may answer from its own in-memory descriptor cache
      // until it expires: nodes share deletes through the Redis cache only.)
      await expectError(req(r.url, 'GET', `/v2/c/app/manifests/${art.digest}`), 404, 'MANIFEST_UNKNOWN');
      deletedArtifact = art.digest;
    });

    it('skopeo copies an image in through one registry and out through the other', async function () {
      if (!requireTool(this, 'skopeo')) return;
      const pushed = image(3, 'arm64', 200000);
      await writeLayout(join(dir, 'in'), pushed.manifest, imageBlobs(pushed), 'v1');
      await skopeo('copy', `oci:${join(dir, 'in')}:v1`, `docker://${hostOf(r.url)}/c/img:v1`);
      expect(sha256(Buffer.from(await skopeo('inspect', '--raw', `docker://${hostOf(streaming.url)}/c/img:v1`)))).to.equal(pushed.manifest.digest);
      await skopeo('copy', `docker://${hostOf(r.url)}/c/img:v1`, `oci:${join(dir, 'out')}:v1`); // blobs through redirects
      for (const b of imageBlobs(pushed)) {
        expect((await readFile(join(dir, 'out', 'blobs', 'sha256', b.digest.slice(7)))).equals(b.data), b.digest).to.equal(true);
      }
      expect(JSON.parse(await skopeo('list-tags', `docker://${hostOf(streaming.url)}/c/img`)).Tags).to.deep.equal(['v1']);
    });

    it('a registry process started later on the same bucket serves what the others stored', async function () {
      const cfg = join(dir, 'later.yml');
      await writeFile(cfg, `version: 0.1\nlog:\n  level: error\nstorage:\n${be.storageYaml(false)}  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: 127.0.0.1:0\n  secret: s\n`);
      const later = await spawnRegistry(cfg);
      try {
        const m = await req(later.url, 'GET', '/v2/c/app/manifests/v1', undefined, { Accept: img.manifest.mediaType });
        expect(m.status, later.output()).to.equal(200);
        expect(m.body.equals(img.manifest.data)).to.equal(true);
        for (const b of [img.config, ...img.layers]) {
          expect((await req(later.url, 'GET', `/v2/c/app/blobs/${b.digest}`)).body.equals(b.data)).to.equal(true);
        }
        expect((await req(later.url, 'GET', `/v2/c/other/blobs/${img.layers[0].digest}`)).status).to.equal(200);
        expect((await req(later.url, 'GET', '/v2/c/app/tags/list')).json()).to.deep.equal({ name: 'c/app', tags: ['v1'] });
        await expectError(req(later.url, 'GET', `/v2/c/app/manifests/${deletedArtifact}`), 404, 'MANIFEST_UNKNOWN');
        expect(((await req(later.url, 'GET', `/v2/c/app/referrers/${img.manifest.digest}`)).json() as { manifests: unknown[] }).manifests).to.deep.equal([]);
        if (requireTool(this, 'skopeo')) {
          await skopeo('copy', `docker://${hostOf(later.url)}/c/img:v1`, `oci:${join(dir, 'later')}:v1`);
        }
      } finally {
        await later.stop();
      }
    });

    it('garbage-collect --delete-untagged deletes the unreferenced blobs (more than one delete batch) and untagged manifests, and keeps every tag and a tagged image\'s signature', async function () {
      // 260 orphans: more than a GCS batch (100) or an Azure one (256).
      const orphans = Array.from({ length: 260 }, (_, i) => Buffer.from(`orphan ${i} ${randomBytes(4).toString('hex')}`));
      for (let i = 0; i < orphans.length; i += 20) await Promise.all(orphans.slice(i, i + 20).map((o) => pushBlob(r.url, 'c/gc', o, sha256(o))));
      // An untagged image whose blobs nothing else references.
      const untagged = image(1, 'riscv64', 5000);
      for (const b of [untagged.config, ...untagged.layers]) await pushBlob(r.url, 'c/gc', b.data, b.digest);
      await pushManifest(r.url, 'c/gc', untagged.manifest.digest, untagged.manifest.data, untagged.manifest.mediaType);
      // A signature of the tagged image: untagged too, but its subject is kept.
      const { sig, empty, art } = await pushSignature(`{"sig":"${randomBytes(4).toString('hex')}"}`);

      const cfg = join(dir, 'gc.yml');
      await writeFile(cfg, `version: 0.1\nlog:\n  level: error\nstorage:\n${be.storageYaml(false)}  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: s\n`);
      const out = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [REGISTRY_BIN, 'garbage-collect', '--offline', '--grace', '0s', '--delete-untagged', cfg], { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 120000 },
          (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
      });
      const eligible = new Set([...out.matchAll(/^blob eligible for deletion: (sha256:[0-9a-f]{64})/gm)].map((m) => m[1]));
      for (const o of orphans) expect(eligible.has(sha256(o)), 'an orphan blob').to.equal(true);
      for (const b of [untagged.config, ...untagged.layers, untagged.manifest]) expect(eligible.has(b.digest), 'an untagged image\'s blob').to.equal(true);
      for (const b of [img.config, ...img.layers, img.manifest, sig, empty, art]) expect(eligible.has(b.digest), 'a kept blob').to.equal(false);
      expect(out).to.include(`manifest eligible for deletion: c/gc@${untagged.manifest.digest}`);

      // A fresh process (nothing cached) sees what the collection left.
      const later = await spawnRegistry(cfg);
      try {
        for (let i = 0; i < orphans.length; i += 20) {
          await Promise.all(orphans.slice(i, i + 20).map((o) => expectError(req(later.url, 'HEAD', `/v2/c/gc/blobs/${sha256(o)}`), 404, 'BLOB_UNKNOWN')));
        }
        await expectError(req(later.url, 'GET', `/v2/c/gc/manifests/${untagged.manifest.digest}`), 404, 'MANIFEST_UNKNOWN');
        expect((await req(later.url, 'GET', `/v2/c/app/manifests/${art.digest}`)).status).to.equal(200);
        const refs = (await req(later.url, 'GET', `/v2/c/app/referrers/${img.manifest.digest}`)).json() as { manifests: { digest: string }[] };
        expect(refs.manifests.map((m) => m.digest)).to.deep.equal([art.digest]);
        for (const b of [img.config, ...img.layers]) expect((await req(later.url, 'GET', `/v2/c/app/blobs/${b.digest}`)).body.equals(b.data)).to.equal(true);
        if (requireTool(this, 'skopeo')) {
          await skopeo('copy', `docker://${hostOf(later.url)}/c/img:v1`, `oci:${join(dir, 'after-gc')}:v1`);
          await skopeo('copy', `docker://${hostOf(later.url)}/c/app:v1`, `oci:${join(dir, 'after-gc-app')}:v1`);
        }
      } finally {
        await later.stop();
      }
    });
  });
}
