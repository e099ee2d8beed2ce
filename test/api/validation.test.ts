import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { type TestRegistry, startTestRegistry } from '../helpers/registry.js';
import { expectError, pushBlob, req } from '../helpers/http.js';
import { blob } from '../helpers/ociLayout.js';

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

function foreignManifest(config: ReturnType<typeof blob>, url: string) {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: DOCKER_MANIFEST,
    config: { mediaType: config.mediaType, size: config.size, digest: config.digest },
    layers: [{
      mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', size: 1234,
      digest: `sha256:${'a'.repeat(64)}`, urls: [url],
    }],
  }));
}

describe('API: validation.manifests.urls', () => {
  let strict: TestRegistry;
  let allowing: TestRegistry;
  before(async () => {
    strict = await startTestRegistry('', { driver: 'inmemory' });
    allowing = await startTestRegistry('validation:\n  manifests:\n    urls:\n      allow: ["^https://mcr\\\\.example\\\\.com/"]\n      deny: ["/private/"]\n', { driver: 'inmemory' });
  });
  after(async () => { await strict.stop(); await allowing.stop(); });

  it('refuses layer URLs by default, as distribution does', async () => {
    const config = blob(randomBytes(20), 'application/vnd.docker.container.image.v1+json');
    await pushBlob(strict.url, 'win/img', config.data, config.digest);
    await expectError(req(strict.url, 'PUT', '/v2/win/img/manifests/v1', foreignManifest(config, 'https://mcr.example.com/layer'), { 'Content-Type': DOCKER_MANIFEST }), 400, 'MANIFEST_INVALID');
  });

  it('accepts foreign layers whose URLs the allow list matches and the deny list does not', async () => {
    const config = blob(randomBytes(20), 'application/vnd.docker.container.image.v1+json');
    await pushBlob(allowing.url, 'win/img', config.data, config.digest);
    const ok = await req(allowing.url, 'PUT', '/v2/win/img/manifests/v1', foreignManifest(config, 'https://mcr.example.com/layer'), { 'Content-Type': DOCKER_MANIFEST });
    expect(ok.status, ok.body.toString()).to.equal(201);
    await expectError(req(allowing.url, 'PUT', '/v2/win/img/manifests/v2', foreignManifest(config, 'https://mcr.example.com/private/layer'), { 'Content-Type': DOCKER_MANIFEST }), 400, 'MANIFEST_INVALID');
    await expectError(req(allowing.url, 'PUT', '/v2/win/img/manifests/v3', foreignManifest(config, 'https://elsewhere.example.com/layer'), { 'Content-Type': DOCKER_MANIFEST }), 400, 'MANIFEST_INVALID');
  });
});
