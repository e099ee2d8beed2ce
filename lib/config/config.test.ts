import { expect } from 'chai';
import { type Config, parseConfig } from './config.js';
import { parseDuration } from './duration.js';
import { effectiveYAML } from './effective.js';
import { warningText } from './schema.js';

const base = 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /tmp/x\n';

function fails(yaml: string, key: RegExp, env: NodeJS.ProcessEnv = {}): void {
  expect(() => parseConfig(yaml, env)).to.throw(key);
}

const warned = (c: Config) => c.warnings.map(warningText);

describe('config: distribution config.yml', () => {
  it('reads the defaults operators rely on', () => {
    const c = parseConfig(base, {});
    expect(c.warnings).to.deep.equal([]);
    expect(c.storage.driver).to.equal('filesystem');
    expect(c.storage.params).to.deep.equal({ rootdirectory: '/tmp/x' });
    expect(c.storage.deleteEnabled).to.equal(false);
    expect(c.http.addr).to.equal(':5000');
    expect(c.http.blobMaxAgeSeconds).to.equal(7 * 24 * 3600);
    expect(c.storage.uploadPurging).to.deep.equal({ enabled: true, ageMs: 168 * 3600e3, intervalMs: 24 * 3600e3, dryRun: false });
    expect(c.catalogMaxEntries).to.equal(1000);
    expect(c.tagsMaxTags).to.equal(1000);
    expect(c.http.headers['X-Content-Type-Options']).to.deep.equal(['nosniff']);
    expect(c.validation.enabled).to.equal(true);
  });

  it('applies REGISTRY_* overrides case-insensitively, in name order, values as YAML', () => {
    const c = parseConfig(base, {
      REGISTRY_HTTP_ADDR: '127.0.0.1:6000',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry',
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      REGISTRY_LOG_LEVEL: 'debug',
      REGISTRY_HTTP_HEADERS: '{X-Frame-Options: [DENY]}',
      REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME: 'a',
      REGISTRY_NOTIFICATIONS_ENDPOINTS_0_DISABLED: 'true',
    } as NodeJS.ProcessEnv);
    expect(c.warnings).to.deep.equal([]);
    expect(c.http.headers['X-Frame-Options']).to.deep.equal(['DENY']);
    expect(c.http.addr).to.equal('127.0.0.1:6000');
    expect(c.storage.params.rootdirectory).to.equal('/srv/registry');
    expect(c.storage.deleteEnabled).to.equal(true);
    expect(c.log.level).to.equal('debug');
    expect((c.effective.notifications as { endpoints: unknown[] }).endpoints).to.deep.equal([{ name: 'a', disabled: true }]);
  });

  it('REGISTRY_STORAGE replaces the whole storage section, as distribution does', () => {
    const c = parseConfig(`${base}  delete:\n    enabled: true\n`, { REGISTRY_STORAGE: 'inmemory' });
    expect(c.storage.driver).to.equal('inmemory');
    expect(c.storage.deleteEnabled).to.equal(false);
    // Later variables (name order) add to the new section.
    const d = parseConfig(base, { REGISTRY_STORAGE: 's3', REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'us-east-1' });
    expect(d.storage.driver).to.equal('s3');
    expect(d.storage.params).to.deep.equal({ bucket: 'b', region: 'us-east-1' });
  });

  it('accepts `storage: inmemory` as a bare string', () => {
    expect(parseConfig('version: 0.1\nstorage: inmemory\n', {}).storage.driver).to.equal('inmemory');
  });

  it('warns on unknown keys, naming the nearest known key, and starts anyway', () => {
    const c = parseConfig(`${base}http:\n  adress: x\n  Addr: y\nstorage2: {}\nlog:\n  levle: debug\n`, {});
    expect(warned(c)).to.include.members([
      'configuration: http.adress: unknown key, ignored (did you mean http.addr?)',
      'configuration: http.Addr: unknown key, ignored (did you mean http.addr?)',
      'configuration: storage2: unknown key, ignored (did you mean storage?)',
      'configuration: log.levle: unknown key, ignored (did you mean log.level?)',
    ]);
    expect(c.http.addr).to.equal(':5000');
  });

  it('warns on REGISTRY_* variables that name no key, such as those Kubernetes injects', () => {
    const c = parseConfig(base, {
      REGISTRY_PORT: 'tcp://10.96.0.12:5000',
      REGISTRY_PORT_5000_TCP_ADDR: '10.96.0.12',
      REGISTRY_SERVICE_HOST: '10.96.0.12',
      REGISTRY_HTTP_ADR: ':6000',
    });
    const w = warned(c);
    expect(w).to.have.length(4);
    expect(w.find((x) => x.startsWith('configuration: REGISTRY_PORT:'))).to.match(/Kubernetes.*did you mean http\.addr \(REGISTRY_HTTP_ADDR\)\?/);
    expect(w.find((x) => x.startsWith('configuration: REGISTRY_SERVICE_HOST:'))).to.match(/names no configuration key \(service\)/);
    expect(w.find((x) => x.startsWith('configuration: REGISTRY_HTTP_ADR:'))).to.match(/did you mean http\.addr \(REGISTRY_HTTP_ADDR\)/);
    expect(c.http.addr).to.equal(':5000');
  });

  it('reads values as distribution\'s YAML 1.1 decoder does', () => {
    const c = parseConfig(`version: 0.1
log:
  level: INFO
  formatter: JSON
storage:
  s3:
    bucket: b
    region: us-east-1
    accesskey: 12345678
    secretkey: 0123
    secure: off
    chunksize: "10485760"
  delete:
    enabled: yes
  redirect:
    disable: On
  maintenance:
    readonly:
      enabled: n
http:
  secret: 0123
redis:
  addr: r:6379
  password: 123456
  db: "2"
validation:
  manifests:
    indexes:
      platforms: List
catalog:
  maxentries: 0
tags:
  maxtags: "0"
`, {});
    expect(c.warnings).to.deep.equal([]);
    expect(c.log).to.include({ level: 'info', formatter: 'json' });
    expect(c.storage.params).to.include({ accesskey: '12345678', secretkey: '0123', secure: false, chunksize: 10485760 });
    expect(c.storage.deleteEnabled).to.equal(true);
    expect(c.storage.redirectDisabled).to.equal(true);
    expect(c.storage.readOnly).to.equal(false);
    expect(c.http.secret).to.equal('0123');
    expect(c.redis).to.include({ password: '123456', db: 2 });
    expect(c.validation.indexPlatforms).to.equal('list');
    expect(c.catalogMaxEntries).to.equal(1000);
    expect(c.tagsMaxTags).to.equal(1000);
  });

  it('keeps the exact text of a string from the environment', () => {
    expect(parseConfig(base, { REGISTRY_HTTP_SECRET: '0123' }).http.secret).to.equal('0123');
    expect(parseConfig(base, { REGISTRY_HTTP_SECRET: '1e3' }).http.secret).to.equal('1e3');
    expect(parseConfig(base, { REGISTRY_HTTP_SECRET: 'yes' }).http.secret).to.equal('yes');
    expect(parseConfig(base, { REGISTRY_STORAGE_DELETE_ENABLED: 'YES' }).storage.deleteEnabled).to.equal(true);
  });

  it('matches fields whose names hold an underscore across segments (azure max_retries)', () => {
    const c = parseConfig('version: 0.1\nstorage:\n  azure:\n    accountname: a\n    container: c\n', { REGISTRY_STORAGE_AZURE_MAX_RETRIES: '7', REGISTRY_STORAGE_AZURE_RETRY_DELAY: '250ms' });
    expect(c.warnings).to.deep.equal([]);
    expect(c.storage.params).to.include({ max_retries: 7, retry_delay: 250 });
  });

  it('takes layerinfo as the old name of blobdescriptor', () => {
    const c = parseConfig(`${base}  cache:\n    layerinfo: redis\nredis:\n  addr: localhost:6379\n`, {});
    expect(c.storage.cache.blobdescriptor).to.equal('redis');
  });

  it('reads validation.enabled and validation.disabled as distribution does', () => {
    const v = (y: string) => parseConfig(`${base}validation:\n${y}`, {}).validation.enabled;
    expect(v('  enabled: false\n')).to.equal(true); // enabled: false alone does not disable
    expect(v('  disabled: true\n')).to.equal(false);
    expect(v('  enabled: true\n  disabled: true\n')).to.equal(true);
  });

  it('warns about what it accepts but does not act on', () => {
    const c = parseConfig(`${base}compatibility:\n  schema1:\n    enabled: true\nreporting:\n  bugsnag:\n    apikey: k\nlog:\n  hooks:\n    - type: mail\n      levels: [panic]\n  reportcaller: true\ndatabase:\n  enabled: false\n  host: db\nhttp:\n  h2c:\n    enabled: true\n`, {});
    const w = warned(c);
    expect(w).to.include('configuration: compatibility.schema1.enabled: schema1 manifests are still refused (MANIFEST_INVALID), as in distribution 3');
    expect(w.some((x) => x.startsWith('configuration: reporting: is ignored'))).to.equal(true);
    expect(w.some((x) => x.startsWith('configuration: log.hooks: is ignored'))).to.equal(true);
    expect(w.some((x) => x.startsWith('configuration: log.reportcaller: is ignored'))).to.equal(true);
    expect(w.some((x) => x.startsWith('configuration: database: is ignored'))).to.equal(true);
    expect(w.some((x) => x.startsWith('configuration: http.h2c.enabled: is ignored'))).to.equal(true);
    // Disabled hooks and a false reportcaller are not in use: nothing to say.
    expect(parseConfig(`${base}log:\n  hooks:\n    - type: mail\n      disabled: true\n  reportcaller: false\n`, {}).warnings).to.deep.equal([]);
  });

  it('refuses what would change security or lose data if ignored, naming the key', () => {
    fails(`${base}http:\n  tls:\n    letsencrypt:\n      cachefile: /x\n      email: a@b\n`, /http\.tls\.letsencrypt: is not supported/);
    fails(`${base}database:\n  enabled: true\n`, /database\.enabled: GitLab's metadata database is not supported/);
    fails(`${base}auth:\n  ldap:\n    url: x\n`, /auth\.ldap: is not known to this registry/);
    fails('version: 0.1\nstorage:\n  swift:\n    authurl: x\n', /storage\.swift: the swift driver was removed/);
    fails('version: 0.1\nstorage:\n  s4:\n    bucket: x\n', /storage\.s4: is not known to this registry \(did you mean storage\.s3\?\)/);
    fails(`${base}middleware:\n  registry:\n    - name: mine\n`, /middleware\.registry\[0\]: no registry middleware named mine/);
    fails(`${base}middleware:\n  storage:\n    - name: akamai\n`, /middleware\.storage\[0\]\.name: no storage middleware named akamai/);
    fails(`${base}middleware:\n  storage:\n    - name: redirect\n      options: {}\n`, /middleware\.storage\[0\]\.options\.baseurl: is required/);
    fails(`${base}notifications:\n  endpoints:\n    - name: hook\n      url: ftp://x/\n`, /notifications\.endpoints\[0\]\.url: must be http or https/);
    fails(`${base}notifications:\n  endpoints:\n    - url: http://x/\n`, /notifications\.endpoints\[0\]\.name: is required/);
    fails(`${base}notifications:\n  endpoints:\n    - name: a\n      url: http://x/\n    - name: a\n      url: http://y/\n`, /notifications\.endpoints\[1\]\.name: a names two enabled endpoints/);
    // With a certificate, letsencrypt is ignored, as in distribution.
    const c = parseConfig(`${base}http:\n  tls:\n    certificate: /c\n    key: /k\n    letsencrypt:\n      cachefile: /x\n`, {});
    expect(warned(c)).to.include('configuration: http.tls.letsencrypt: is ignored: certificate and key are given (as distribution does)');
  });

  it('reads notification endpoints with distribution\'s defaults, drops disabled ones, and takes queue bounds per endpoint', () => {
    const c = parseConfig(`${base}notifications:\n  events:\n    includereferences: yes\n  queue:\n    directory: /spool\n    maxevents: 50\n  endpoints:\n    - name: off\n      url: http://x/\n      disabled: true\n`
      + '    - name: hook\n      url: http://x/cb\n      timeout: 0s\n      threshold: -1\n      ignoredmediatypes: [a]\n      ignore:\n        mediatypes: [b]\n        actions: [pull]\n'
      + '    - name: ce\n      url: https://y/\n      timeout: 3000ms\n      threshold: 5\n      backoff: 2s\n      format: cloudevents\n      queue:\n        maxevents: 7\n        maxage: 1h\n', {});
    const n = c.notifications;
    expect(n.includeReferences).to.equal(true);
    expect(n.directory).to.equal('/spool');
    expect(n.endpoints.map((e) => e.name)).to.deep.equal(['hook', 'ce']);
    const [hook, ce] = n.endpoints;
    expect([hook.timeoutMs, hook.threshold, hook.backoffMs, hook.format]).to.deep.equal([1000, 10, 1000, 'distribution']);
    expect(hook.ignoredMediaTypes).to.deep.equal(['b', 'a']);
    expect(hook.ignoredActions).to.deep.equal(['pull']);
    expect(hook.queue.maxEvents).to.equal(50);
    expect([ce.timeoutMs, ce.threshold, ce.backoffMs, ce.format]).to.deep.equal([3000, 5, 2000, 'cloudevents']);
    expect([ce.queue.maxEvents, ce.queue.maxAgeMs, ce.queue.maxBytes]).to.deep.equal([7, 3600e3, 128 << 20]);
    // Without a directory: one per listen address under the temporary directory.
    const d = parseConfig(`${base}notifications:\n  endpoints:\n    - name: h\n      url: http://x/\n`, {}).notifications;
    expect(d.directorySet).to.equal(false);
    expect(d.directory).to.include('registry-notifications-');
  });

  it('honours http.tls cipher suites and minimum versions, or refuses them by name', () => {
    const tls = (extra: string) => parseConfig(`${base}http:\n  tls:\n    certificate: /c\n    key: /k\n${extra}`, {}).http.tls!;
    expect(tls('').ciphers.split(':')).to.include('ECDHE-RSA-AES128-GCM-SHA256');
    expect(tls('    ciphersuites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n').ciphers).to.equal('ECDHE-RSA-AES256-GCM-SHA384');
    expect(tls('    minimumtls: tls1.0\n').ciphers).to.match(/@SECLEVEL=0$/);
    expect(tls('    clientcas: [/ca]\n    clientauth: verify-client-cert-if-given\n').clientauth).to.equal('verify-client-cert-if-given');
    fails(`${base}http:\n  tls:\n    certificate: /c\n    key: /k\n    ciphersuites: [TLS_BOGUS]\n`, /http\.tls\.ciphersuites: unknown cipher suite TLS_BOGUS/);
    fails(`${base}http:\n  tls:\n    certificate: /c\n    key: /k\n    ciphersuites: [TLS_RSA_WITH_RC4_128_SHA]\n`, /http\.tls\.ciphersuites: cipher suite TLS_RSA_WITH_RC4_128_SHA is not available/);
  });

  it('reads auth, middleware and the redis forms', () => {
    expect(parseConfig(`${base}auth:\n  silly:\n    realm: r\n    service: s\n`, {}).auth).to.deep.equal({ silly: { realm: 'r', service: 's' } });
    expect(parseConfig(`${base}auth:\n  none: {}\n`, {}).auth).to.equal(undefined);
    const t = parseConfig(`${base}auth:\n  token:\n    autoredirect: true\n    service: s\n    issuer: i\n    rootcertbundle: /b\n`, {}).auth!.token!;
    expect(t).to.include({ autoredirect: true, autoredirectpath: '/auth/token/' });
    const m = parseConfig(`${base}middleware:\n  storage:\n    - name: cloudfront\n      options:\n        baseurl: https://cdn.example.com/\n        privatekey: /k.pem\n        keypairid: K\n        duration: 3000s\n        ipfilteredby: awsregion\n        awsregion: us-east-1, eu-west-1\n    - name: redirect\n      disabled: true\n`, {}).middleware.storage;
    expect(m).to.deep.equal([{
      name: 'cloudfront', baseurl: 'https://cdn.example.com/', privatekey: '/k.pem', keypairid: 'K', durationMs: 3000e3,
      ipfilteredby: 'awsregion', awsregion: ['us-east-1', 'eu-west-1'], updatefrequencyMs: 12 * 3600e3, iprangesurl: 'https://ip-ranges.amazonaws.com/ip-ranges.json',
    }]);
    parseConfig(`${base}redis:\n  addr: localhost:6379\n  password: x\n  db: 0\n  dialtimeout: 10ms\n  pool:\n    maxidle: 16\n    maxactive: 64\n    idletimeout: 300s\n`, {});
    const r = parseConfig(`${base}redis:\n  addrs: [a:1, b:2, c:3]\n  username: u\n  poolsize: 10\n  clientname: reg\n  tls:\n    certificate: /c\n    key: /k\n    clientcas: [/ca]\n`, {});
    expect(r.warnings).to.deep.equal([]);
    expect(r.redis).to.deep.include({ addrs: ['a:1', 'b:2', 'c:3'], clientname: 'reg' });
    // Harbor: sentinels in addr, and its camel-cased master name.
    expect(parseConfig(`${base}redis:\n  addr: s1:26379,s2:26379\n  sentinelMasterSet: mymaster\n`, {}).warnings).to.deep.equal([]);
  });

  it('still stops on values it cannot read, naming the key', () => {
    fails(`${base}  delete:\n    enabled: yes-please\n`, /storage\.delete\.enabled: must be true or false/);
    fails(`${base}  maintenance:\n    uploadpurging:\n      age: forever\n`, /uploadpurging\.age: must be a duration/);
    fails(`${base}log:\n  level: loud\n`, /log\.level: must be one of error, warn, info, debug/);
    fails(`${base}catalog:\n  maxentries: many\n`, /catalog\.maxentries: must be an integer/);
    fails('version: 0.1\nstorage:\n  filesystem: {}\n  inmemory: {}\n', /storage: names more than one driver/);
    fails('version: 0.1\nlog: {level: info}\n', /storage: names no driver/);
    fails('storage: inmemory\n', /version: is required/);
    fails(`${base}auth:\n  htpasswd: {}\n`, /auth\.htpasswd\.path: is required/);
    fails(`${base}auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n`, /auth\.token: needs rootcertbundle or jwks/);
    fails(`${base}auth:\n  htpasswd:\n    path: /x\n  token: {}\n`, /auth: names more than one access controller/);
    fails(`${base}auth:\n  silly:\n    realm: r\n`, /auth\.silly\.service: is required/);
    fails(`${base}  cache:\n    blobdescriptor: redis\n`, /redis section is missing/);
    fails('version: 0.1\nstorage: [\n', /not valid YAML/);
  });

  it('prints the effective configuration with secrets masked', () => {
    const c = parseConfig(`${base}http:\n  secret: topsecret\n  draintimeout: 90s\nredis:\n  addr: r:1\n  password: hunter2\nhealth:\n  http:\n    - uri: http://x/\n      headers:\n        Authorization: [Basic abc]\n`, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv' });
    const y = effectiveYAML(c);
    expect(y).to.not.include('topsecret');
    expect(y).to.not.include('hunter2');
    expect(y).to.not.include('Basic abc');
    expect(y).to.include('rootdirectory: /srv');
    expect(y).to.include('draintimeout: 1m30s');
    expect(y).to.include('secret: "******"');
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
      expect(c.warnings, f).to.deep.equal([]);
      expect(c.storage.driver, f).to.equal(driver);
      expect((await createDriver(c.storage.driver, c.storage.params)).name(), f).to.equal(driver);
    }
  });
});
