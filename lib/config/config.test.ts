import { expect } from 'chai';
import { parseConfig } from './config.js';
import { parseDuration } from './duration.js';

const base = 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /tmp/x\n';

function fails(yaml: string, key: RegExp, env: NodeJS.ProcessEnv = {}): void {
  expect(() => parseConfig(yaml, env)).to.throw(key);
}

describe('config: distribution config.yml', () => {
  it('reads the defaults operators rely on', () => {
    const c = parseConfig(base, {});
    expect(c.storage.driver).to.equal('filesystem');
    expect(c.storage.params).to.deep.equal({ rootdirectory: '/tmp/x' });
    expect(c.storage.deleteEnabled).to.equal(false);
    expect(c.http.addr).to.equal(':5000');
    expect(c.http.blobMaxAgeSeconds).to.equal(7 * 24 * 3600);
    expect(c.storage.uploadPurging).to.deep.equal({ enabled: true, ageMs: 168 * 3600e3, intervalMs: 24 * 3600e3, dryRun: false });
    expect(c.catalogMaxEntries).to.equal(1000);
    expect(c.tagsMaxTags).to.equal(1000);
    expect(c.http.headers['X-Content-Type-Options']).to.deep.equal(['nosniff']);
  });

  it('applies REGISTRY_* overrides case-insensitively, in name order, values as YAML', () => {
    const c = parseConfig(base, {
      REGISTRY_HTTP_ADDR: '127.0.0.1:6000',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry',
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      REGISTRY_LOG_LEVEL: 'debug',
      REGISTRY_HTTP_HEADERS: '{X-Frame-Options: [DENY]}',
    } as NodeJS.ProcessEnv);
    expect(c.http.headers['X-Frame-Options']).to.deep.equal(['DENY']);
    expect(c.http.addr).to.equal('127.0.0.1:6000');
    expect(c.storage.params.rootdirectory).to.equal('/srv/registry');
    expect(c.storage.deleteEnabled).to.equal(true);
    expect(c.log.level).to.equal('debug');
  });

  it('REGISTRY_STORAGE swaps the driver and keeps delete/cache settings', () => {
    const c = parseConfig(`${base}  delete:\n    enabled: true\n`, { REGISTRY_STORAGE: 'inmemory' });
    expect(c.storage.driver).to.equal('inmemory');
    expect(c.storage.deleteEnabled).to.equal(true);
  });

  it('accepts `storage: inmemory` as a bare string', () => {
    expect(parseConfig('version: 0.1\nstorage: inmemory\n', {}).storage.driver).to.equal('inmemory');
  });

  it('names the key that is wrong', () => {
    fails(`${base}http:\n  adr: x\n`, /http\.adr: unknown key/);
    fails(`${base}storage2: {}\n`, /storage2: unknown key/);
    fails(`${base}  delete:\n    enabled: yes-please\n`, /storage\.delete\.enabled: must be true or false/);
    fails(`${base}  maintenance:\n    uploadpurging:\n      age: forever\n`, /uploadpurging\.age: must be a duration/);
    fails('version: 0.1\nstorage:\n  filesystem: {}\n  inmemory: {}\n', /storage: names more than one driver/);
    fails('version: 0.1\nlog: {level: info}\n', /storage: names no driver/);
    fails('storage: inmemory\n', /version: is required/);
    fails(`${base}auth:\n  htpasswd: {}\n`, /auth\.htpasswd\.path: is required/);
    fails(`${base}auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n`, /auth\.token: needs rootcertbundle or jwks/);
    fails(`${base}auth:\n  htpasswd:\n    path: /x\n  token: {}\n`, /auth: names more than one access controller/);
    fails(`${base}auth:\n  silly:\n    realm: r\n`, /auth\.silly: is not supported/);
    fails(`${base}  cache:\n    blobdescriptor: redis\n`, /redis section is missing/);
    fails(base, /http\.adr: unknown key/, { REGISTRY_HTTP_ADR: 'x' });
    fails('version: 0.1\nstorage: [\n', /not valid YAML/);
  });

  it('accepts both redis forms', () => {
    parseConfig(`${base}redis:\n  addr: localhost:6379\n  password: x\n  db: 0\n  dialtimeout: 10ms\n  pool:\n    maxidle: 16\n    maxactive: 64\n    idletimeout: 300s\n`, {});
    parseConfig(`${base}redis:\n  addrs: [localhost:6379]\n  username: u\n  poolsize: 10\n`, {});
  });

  it('parses Go durations', () => {
    expect(parseDuration('168h')).to.equal(168 * 3600e3);
    expect(parseDuration('1h30m')).to.equal(5400e3);
    expect(parseDuration('500ms')).to.equal(500);
    expect(parseDuration('1.5s')).to.equal(1500);
    expect(parseDuration('10')).to.equal(null);
    expect(parseDuration('h')).to.equal(null);
  });
});

describe('config: the shipped examples', () => {
  it('the shipped example configs parse and build their drivers', async () => {
    const { readFileSync } = await import('node:fs');
    const { createDriver } = await import('../../drivers/factory.js');
    for (const [f, driver] of [['config/config.yml', 'filesystem'], ['config/cluster.yml', 'filesystem'], ['config/s3.yml', 's3'], ['config/azure.yml', 'azure'], ['config/gcs.yml', 'gcs']]) {
      const c = parseConfig(readFileSync(new URL(`../../../${f}`, import.meta.url), 'utf8'), {});
      expect(c.storage.driver, f).to.equal(driver);
      expect(createDriver(c.storage.driver, c.storage.params).name(), f).to.equal(driver);
    }
  });
});
