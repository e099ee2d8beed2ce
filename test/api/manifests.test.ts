import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { expectError, pushBlob, pushManifest, req } from '../helpers/http.js';
import { type Blob, type Image, blob, image, index, sha256 } from '../helpers/ociLayout.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

async function pushImageBlobs(u: string, name: string, img: Image): Promise<void> {
  for (const b of [img.config, ...img.layers]) await pushBlob(u, name, b.data, b.digest);
}

/** A listing of everything stored (but upload sessions), with content hashes. */
async function snapshot(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    let names: string[];
    try { names = (await readdir(dir)).sort(); } catch { return; }
    for (const n of names) {
      const p = join(dir, n);
      if (n === '_uploads') continue;
      if ((await stat(p)).isDirectory()) await walk(p);
      else out.push(`${p.slice(root.length)} ${createHash('sha256').update(await readFile(p)).digest('hex')}`);
    }
  }
  await walk(root);
  return out;
}

/** The empty config blob artifacts use. */
const EMPTY = blob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');

/** An OCI artifact manifest with the empty config and layer, referring to subject. */
function artifact(type: string, subject: Blob, annotations?: Record<string, string>): Blob {
  return blob(Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: type,
    config: { mediaType: EMPTY.mediaType, digest: EMPTY.digest, size: EMPTY.size },
    layers: [{ mediaType: EMPTY.mediaType, digest: EMPTY.digest, size: EMPTY.size }],
    subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
    ...(annotations ? { annotations } : {}),
  })), OCI_MANIFEST);
}

describe('API: manifests, tags, referrers, catalog', () => {
  let r: TestRegistry;
  let u: string;
  before(async () => { r = await startTestRegistry(); u = r.url; });
  after(async () => { await r.stop(); });

  it('PUT by tag, then GET and HEAD by tag and by digest', async () => {
    const img = image(2);
    await pushImageBlobs(u, 'm/basic', img);
    const put = await pushManifest(u, 'm/basic', 'v1', img.manifest.data, OCI_MANIFEST);
    expect(put.headers.get('docker-content-digest')).to.equal(img.manifest.digest);
    expect(put.headers.get('location')).to.equal(`${u}/v2/m/basic/manifests/${img.manifest.digest}`);
    for (const ref of ['v1', img.manifest.digest]) {
      const get = await req(u, 'GET', `/v2/m/basic/manifests/${ref}`, undefined, { Accept: OCI_MANIFEST });
      expect(get.status).to.equal(200);
      expect(get.body.equals(img.manifest.data)).to.equal(true);
      expect(get.headers.get('content-type')).to.equal(OCI_MANIFEST);
      expect(get.headers.get('docker-content-digest')).to.equal(img.manifest.digest);
      expect(get.headers.get('etag')).to.equal(`"${img.manifest.digest}"`);
      const head = await req(u, 'HEAD', `/v2/m/basic/manifests/${ref}`);
      expect(head.status).to.equal(200);
      expect(head.headers.get('content-length')).to.equal(String(img.manifest.size));
      expect(head.body.length).to.equal(0);
    }
    const v2 = join(r.root!, 'docker/registry/v2/repositories/m/basic/_manifests');
    const hex = img.manifest.digest.slice(7);
    expect((await readFile(join(v2, 'tags/v1/current/link'))).toString()).to.equal(img.manifest.digest);
    expect((await readFile(join(v2, 'tags/v1/index/sha256', hex, 'link'))).toString()).to.equal(img.manifest.digest);
    expect((await readFile(join(v2, 'revisions/sha256', hex, 'link'))).toString()).to.equal(img.manifest.digest);
    const notModified = await req(u, 'GET', '/v2/m/basic/manifests/v1', undefined, { 'If-None-Match': `"${img.manifest.digest}"` });
    expect(notModified.status).to.equal(304);
  });

  it('PUT by digest; a digest that does not match the body is 400 DIGEST_INVALID', async () => {
    const img = image(1);
    await pushImageBlobs(u, 'm/bydigest', img);
    await pushManifest(u, 'm/bydigest', img.manifest.digest, img.manifest.data, OCI_MANIFEST);
    await expectError(req(u, 'PUT', `/v2/m/bydigest/manifests/${sha256('other')}`, img.manifest.data, { 'Content-Type': OCI_MANIFEST }), 400, 'DIGEST_INVALID');
  });

  it('accepts Docker schema2 and manifest lists', async () => {
    const layer = blob(randomBytes(100), 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    const config = blob(Buffer.from('{"architecture":"amd64","os":"linux"}'), 'application/vnd.docker.container.image.v1+json');
    await pushBlob(u, 'm/docker', layer.data, layer.digest);
    await pushBlob(u, 'm/docker', config.data, config.digest);
    const m = blob(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: DOCKER_MANIFEST,
      config: { mediaType: config.mediaType, size: config.size, digest: config.digest },
      layers: [{ mediaType: layer.mediaType, size: layer.size, digest: layer.digest }],
    })), DOCKER_MANIFEST);
    await pushManifest(u, 'm/docker', 'img', m.data, DOCKER_MANIFEST);
    const list = blob(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: DOCKER_LIST,
      manifests: [{ mediaType: DOCKER_MANIFEST, size: m.size, digest: m.digest, platform: { architecture: 'amd64', os: 'linux' } }],
    })), DOCKER_LIST);
    await pushManifest(u, 'm/docker', 'list', list.data, DOCKER_LIST);
    const get = await req(u, 'GET', '/v2/m/docker/manifests/list', undefined, { Accept: DOCKER_LIST });
    expect(get.headers.get('content-type')).to.equal(DOCKER_LIST);
    expect(get.body.equals(list.data)).to.equal(true);
  });

  it('negotiates Accept: a tag the client cannot read is MANIFEST_UNKNOWN, a digest is served', async () => {
    const img = image(1);
    await pushImageBlobs(u, 'm/accept', img);
    await pushManifest(u, 'm/accept', 'v1', img.manifest.data, OCI_MANIFEST);
    await expectError(req(u, 'GET', '/v2/m/accept/manifests/v1', undefined, { Accept: DOCKER_MANIFEST }), 404, 'MANIFEST_UNKNOWN');
    expect((await req(u, 'GET', '/v2/m/accept/manifests/v1', undefined, { Accept: `${DOCKER_MANIFEST}, ${OCI_MANIFEST}` })).status).to.equal(200);
    expect((await req(u, 'GET', '/v2/m/accept/manifests/v1', undefined, { Accept: '*/*' })).status).to.equal(200);
    expect((await req(u, 'GET', `/v2/m/accept/manifests/${img.manifest.digest}`, undefined, { Accept: DOCKER_MANIFEST })).status).to.equal(200);
  });

  it('refuses manifests that reference unknown blobs or children', async () => {
    const img = image(2);
    await pushBlob(u, 'm/missing', img.config.data, img.config.digest); // layers missing
    const res = await expectError(req(u, 'PUT', '/v2/m/missing/manifests/v1', img.manifest.data, { 'Content-Type': OCI_MANIFEST }), 400, 'MANIFEST_BLOB_UNKNOWN');
    const named = img.layers.filter((l) => res.body.toString().includes(l.digest));
    expect(named, 'the error names a missing layer').to.have.length(1);
    const idx = index([{ img, arch: 'amd64' }]);
    await expectError(req(u, 'PUT', '/v2/m/missing/manifests/idx', idx.data, { 'Content-Type': OCI_INDEX }), 400, 'MANIFEST_BLOB_UNKNOWN');
    await expectError(req(u, 'GET', '/v2/m/missing/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
  });

  it('refuses malformed manifests with 400 MANIFEST_INVALID', async () => {
    const img = image(1);
    await pushImageBlobs(u, 'm/bad', img);
    const good = JSON.parse(img.manifest.data.toString());
    const bads: [string, unknown, string][] = [
      ['not json', '{"schemaVersion":', OCI_MANIFEST],
      ['array', [], OCI_MANIFEST],
      ['schemaVersion 3', { ...good, schemaVersion: 3 }, OCI_MANIFEST],
      ['schema1', { schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }, 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
      ['no config', { ...good, config: undefined }, OCI_MANIFEST],
      ['bad layer digest', { ...good, layers: [{ mediaType: 'x', digest: 'sha256:xyz', size: 1 }] }, OCI_MANIFEST],
      ['negative size', { ...good, layers: [{ ...good.layers[0], size: -1 }] }, OCI_MANIFEST],
      ['type mismatch', { ...good, mediaType: OCI_MANIFEST }, DOCKER_MANIFEST],
      ['wrong size', { ...good, layers: [{ ...good.layers[0], size: good.layers[0].size + 1 }] }, OCI_MANIFEST],
      ['index without manifests', { schemaVersion: 2, mediaType: OCI_INDEX }, OCI_INDEX],
      ['unknown type', { schemaVersion: 2, mediaType: 'text/plain' }, 'text/plain'],
      // distribution's schema2 parsers need the media type in the body.
      ['docker manifest without mediaType', { ...good, mediaType: undefined }, DOCKER_MANIFEST],
      ['docker list without mediaType', { schemaVersion: 2, manifests: [] }, 'application/vnd.docker.distribution.manifest.list.v2+json'],
    ];
    for (const [what, body, ct] of bads) {
      const data = typeof body === 'string' ? body : JSON.stringify(body);
      await expectError(req(u, 'PUT', '/v2/m/bad/manifests/v1', data, { 'Content-Type': ct }), 400, 'MANIFEST_INVALID').catch((e) => { throw new Error(`${what}: ${e.message}`); });
    }
    await expectError(req(u, 'GET', '/v2/m/bad/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
  });

  it('refuses manifests over 4 MiB with 413', async () => {
    const big = Buffer.alloc((4 << 20) + 10, 0x20);
    await expectError(req(u, 'PUT', '/v2/m/big/manifests/v1', big, { 'Content-Type': OCI_MANIFEST }), 413, 'MANIFEST_INVALID');
  });

  it('refuses invalid tags on PUT (400 TAG_INVALID); a reference that cannot exist is 404 MANIFEST_UNKNOWN', async () => {
    const img = image(1);
    await pushImageBlobs(u, 'm/ref', img);
    for (const ref of ['-tag', 'a'.repeat(129), 'tag%21']) {
      await expectError(req(u, 'PUT', `/v2/m/ref/manifests/${ref}`, img.manifest.data, { 'Content-Type': OCI_MANIFEST }), 400, 'TAG_INVALID');
    }
    await expectError(req(u, 'PUT', '/v2/m/ref/manifests/sha256:nothex', img.manifest.data, { 'Content-Type': OCI_MANIFEST }), 400, 'DIGEST_INVALID');
    // As distribution and the conformance suite expect: such a manifest cannot exist.
    for (const ref of ['sha256:nothex', '-tag', 'a'.repeat(129), 'tag%21', 'md5:d41d8cd98f00b204e9800998ecf8427e']) {
      await expectError(req(u, 'GET', `/v2/m/ref/manifests/${ref}`), 404, 'MANIFEST_UNKNOWN');
      await expectError(req(u, 'HEAD', `/v2/m/ref/manifests/${ref}`), 404, 'MANIFEST_UNKNOWN');
      await expectError(req(u, 'DELETE', `/v2/m/ref/manifests/${ref}`), 404, 'MANIFEST_UNKNOWN');
    }
  });

  it('deletes a tag alone with 202, keeping the manifest', async () => {
    const img = image(1);
    await pushImageBlobs(u, 'm/untag', img);
    await pushManifest(u, 'm/untag', 'a', img.manifest.data, OCI_MANIFEST);
    await pushManifest(u, 'm/untag', 'b', img.manifest.data, OCI_MANIFEST);
    expect((await req(u, 'DELETE', '/v2/m/untag/manifests/a')).status).to.equal(202);
    await expectError(req(u, 'GET', '/v2/m/untag/manifests/a'), 404, 'MANIFEST_UNKNOWN');
    expect((await req(u, 'GET', '/v2/m/untag/manifests/b')).status).to.equal(200);
    expect((await req(u, 'GET', `/v2/m/untag/manifests/${img.manifest.digest}`)).status).to.equal(200);
    await expectError(req(u, 'DELETE', '/v2/m/untag/manifests/a'), 404, 'MANIFEST_UNKNOWN');
  });

  it('deletes a manifest by digest with 202, with the tags that point at it', async () => {
    const img = image(1);
    await pushImageBlobs(u, 'm/del', img);
    await pushManifest(u, 'm/del', 'x', img.manifest.data, OCI_MANIFEST);
    expect((await req(u, 'DELETE', `/v2/m/del/manifests/${img.manifest.digest}`)).status).to.equal(202);
    await expectError(req(u, 'GET', `/v2/m/del/manifests/${img.manifest.digest}`), 404, 'MANIFEST_UNKNOWN');
    await expectError(req(u, 'GET', '/v2/m/del/manifests/x'), 404, 'MANIFEST_UNKNOWN');
    expect((await req(u, 'GET', '/v2/m/del/tags/list')).json().tags).to.deep.equal([]);
    await expectError(req(u, 'DELETE', `/v2/m/del/manifests/${img.manifest.digest}`), 404, 'MANIFEST_UNKNOWN');
  });

  it('lists tags with n/last pagination and Link headers', async () => {
    const img = image(1);
    await pushImageBlobs(u, 'm/tags', img);
    const tags = ['a', 'b', 'c', 'd', 'e'];
    for (const t of tags) await pushManifest(u, 'm/tags', t, img.manifest.data, OCI_MANIFEST);
    let res = await req(u, 'GET', '/v2/m/tags/tags/list');
    expect(res.json()).to.deep.equal({ name: 'm/tags', tags });
    expect(res.headers.get('link')).to.equal(null);
    res = await req(u, 'GET', '/v2/m/tags/tags/list?n=2');
    expect(res.json().tags).to.deep.equal(['a', 'b']);
    expect(res.headers.get('link')).to.equal('</v2/m/tags/tags/list?n=2&last=b>; rel="next"');
    res = await req(u, 'GET', '/v2/m/tags/tags/list?n=2&last=b');
    expect(res.json().tags).to.deep.equal(['c', 'd']);
    res = await req(u, 'GET', '/v2/m/tags/tags/list?n=2&last=d');
    expect(res.json().tags).to.deep.equal(['e']);
    expect(res.headers.get('link')).to.equal(null);
    res = await req(u, 'GET', '/v2/m/tags/tags/list?n=0');
    expect(res.json().tags).to.deep.equal([]);
    await expectError(req(u, 'GET', '/v2/m/tags/tags/list?n=-1'), 400, 'PAGINATION_NUMBER_INVALID');
    await expectError(req(u, 'GET', '/v2/m/never-pushed/tags/list'), 404, 'NAME_UNKNOWN');
  });

  it('lists the catalog with pagination', async () => {
    const res = await req(u, 'GET', '/v2/_catalog');
    const all = res.json().repositories as string[];
    expect(all).to.include.members(['m/basic', 'm/tags', 'm/docker']);
    expect([...all].sort()).to.deep.equal(all);
    const p1 = await req(u, 'GET', '/v2/_catalog?n=2');
    expect(p1.json().repositories).to.deep.equal(all.slice(0, 2));
    expect(p1.headers.get('link')).to.equal(`</v2/_catalog?n=2&last=${encodeURIComponent(all[1])}>; rel="next"`);
    const p2 = await req(u, 'GET', `/v2/_catalog?n=2&last=${encodeURIComponent(all[1])}`);
    expect(p2.json().repositories).to.deep.equal(all.slice(2, 4));
  });

  it('records subjects, answers OCI-Subject and lists referrers with artifactType filtering', async () => {
    const img = image(1);
    await pushImageBlobs(u, 'm/refs', img);
    await pushManifest(u, 'm/refs', 'v1', img.manifest.data, OCI_MANIFEST);
    await pushBlob(u, 'm/refs', EMPTY.data, EMPTY.digest);
    const sig = artifact('application/vnd.example.sig', img.manifest, { note: 'sig' });
    const sbom = artifact('application/vnd.example.sbom', img.manifest, { note: 'sbom' });
    for (const a of [sig, sbom]) {
      const res = await pushManifest(u, 'm/refs', a.digest, a.data, OCI_MANIFEST);
      expect(res.headers.get('oci-subject')).to.equal(img.manifest.digest);
    }
    let res = await req(u, 'GET', `/v2/m/refs/referrers/${img.manifest.digest}`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.equal(OCI_INDEX);
    const body = res.json() as { manifests: { digest: string; artifactType: string; size: number; annotations: Record<string, string> }[] };
    expect(body.manifests.map((m) => m.digest).sort()).to.deep.equal([sig.digest, sbom.digest].sort());
    const s = body.manifests.find((m) => m.digest === sig.digest)!;
    expect(s.artifactType).to.equal('application/vnd.example.sig');
    expect(s.size).to.equal(sig.size);
    expect(s.annotations).to.deep.equal({ note: 'sig' });
    res = await req(u, 'GET', `/v2/m/refs/referrers/${img.manifest.digest}?artifactType=application/vnd.example.sbom`);
    expect(res.headers.get('oci-filters-applied')).to.equal('artifactType');
    expect((res.json().manifests as { digest: string }[]).map((m) => m.digest)).to.deep.equal([sbom.digest]);
    // a referrer whose subject does not exist is accepted
    const orphan = blob(Buffer.from(sig.data.toString().replace(img.manifest.digest, sha256('absent'))), OCI_MANIFEST);
    await pushManifest(u, 'm/refs', orphan.digest, orphan.data, OCI_MANIFEST);
    expect((await req(u, 'GET', `/v2/m/refs/referrers/${sha256('absent')}`)).json().manifests).to.have.length(1);
    // deleting a referrer removes it from the list
    await req(u, 'DELETE', `/v2/m/refs/manifests/${sig.digest}`);
    res = await req(u, 'GET', `/v2/m/refs/referrers/${img.manifest.digest}`);
    expect((res.json().manifests as { digest: string }[]).map((m) => m.digest)).to.deep.equal([sbom.digest]);
    expect((await req(u, 'GET', `/v2/m/refs/referrers/${sha256('nothing')}`)).json()).to.deep.equal({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    await expectError(req(u, 'GET', '/v2/m/refs/referrers/sha256:zz'), 400, 'DIGEST_INVALID');
  });

  it('lists referrers recorded only in a referrers-tag-schema index (pushed before the API)', async () => {
    const img = image(1);
    await pushImageBlobs(u, 'm/oldrefs', img);
    await pushManifest(u, 'm/oldrefs', 'v1', img.manifest.data, OCI_MANIFEST);
    await pushBlob(u, 'm/oldrefs', EMPTY.data, EMPTY.digest);
    const sig = artifact('application/vnd.example.sig', img.manifest);
    await pushManifest(u, 'm/oldrefs', sig.digest, sig.data, OCI_MANIFEST);
    // As a store written without the referrers API would hold it: no referrer
    // link, only the index under the tag sha256-<hex>.
    await rm(join(r.root!, 'docker/registry/v2/repositories/m/oldrefs/_referrers'), { recursive: true });
    expect((await req(u, 'GET', `/v2/m/oldrefs/referrers/${img.manifest.digest}`)).json().manifests).to.deep.equal([]);
    const idx = blob(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sig.digest, size: sig.size, artifactType: 'application/vnd.example.sig' }],
    })), OCI_INDEX);
    await pushManifest(u, 'm/oldrefs', `sha256-${img.manifest.digest.slice(7)}`, idx.data, OCI_INDEX);
    const res = await req(u, 'GET', `/v2/m/oldrefs/referrers/${img.manifest.digest}`);
    expect((res.json().manifests as { digest: string; artifactType: string }[]).map((m) => [m.digest, m.artifactType]))
      .to.deep.equal([[sig.digest, 'application/vnd.example.sig']]);
  });

  it('leaves storage unchanged after a batch of bad requests', async () => {
    const img = image(2);
    await pushImageBlobs(u, 'm/intact', img);
    await pushManifest(u, 'm/intact', 'v1', img.manifest.data, OCI_MANIFEST);
    const before = await snapshot(r.root!);
    const other = image(1);
    const bad = [
      req(u, 'PUT', '/v2/m/intact/manifests/v1', '{"schemaVersion":2', { 'Content-Type': OCI_MANIFEST }),
      req(u, 'PUT', '/v2/m/intact/manifests/v1', other.manifest.data, { 'Content-Type': OCI_MANIFEST }),
      req(u, 'PUT', `/v2/m/intact/manifests/${sha256('x')}`, img.manifest.data, { 'Content-Type': OCI_MANIFEST }),
      req(u, 'POST', `/v2/m/intact/blobs/uploads/?digest=${img.layers[0].digest}`, randomBytes(50)),
      req(u, 'POST', '/v2/m/intact/blobs/uploads/?digest=sha256:short', randomBytes(50)),
      req(u, 'GET', '/v2/M/Intact/tags/list'),
      req(u, 'DELETE', '/v2/m/intact/manifests/sha256:bad'),
      req(u, 'DELETE', `/v2/m/intact/blobs/${sha256('unknown')}`),
      req(u, 'PUT', '/v2/m/intact/manifests/v1', Buffer.alloc(5 << 20), { 'Content-Type': OCI_MANIFEST }),
    ];
    for (const p of bad) expect((await p).status).to.be.within(400, 499);
    expect(await snapshot(r.root!)).to.deep.equal(before);
    const get = await req(u, 'GET', '/v2/m/intact/manifests/v1');
    expect(get.body.equals(img.manifest.data)).to.equal(true);
  });
});
