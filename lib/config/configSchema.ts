// Every key of distribution 3.x's configuration (configuration/configuration.go
// and docs/content/about/configuration.md), the 2.8 forms still in the wild
// (redis addr/pool, layerinfo, policy), and our own extensions. What each key
// does here is in docs/configuration.md.
import {
  type Schema, any, bool, duration, ignored, int, intIn, list, obj, oneOf, refused, secret, str, strictObj, stringlist,
} from './schema.js';

const headers: Schema = obj({}, stringlist);

// One upstream of pull-through mode: distribution's proxy keys, and ours
// (tagttl, library, timeout).
const proxyRemote = {
  remoteurl: str, username: str, password: secret, ttl: duration,
  exec: obj({ command: str, lifetime: duration }),
  tagttl: duration, library: bool, timeout: duration,
};

// ours: how much a notification endpoint's queue may hold before its oldest
// events are dead-lettered, and how many dead-lettered events are kept.
const queueBounds = { maxevents: intIn(1, 100_000_000), maxbytes: intIn(1024, Number.MAX_SAFE_INTEGER), maxage: duration, maxdeadevents: intIn(0, 100_000_000) };

const tlsFiles = { certificate: str, key: str, clientcas: stringlist };

const s3 = obj({
  region: str, regionendpoint: str, forcepathstyle: bool, bucket: str, rootdirectory: str,
  accesskey: secret, secretkey: secret, sessiontoken: secret,
  encrypt: bool, keyid: str, secure: bool, skipverify: bool, v4auth: bool,
  chunksize: int, multipartcopychunksize: int, multipartcopymaxconcurrency: int, multipartcopythresholdsize: int,
  storageclass: str, objectacl: str, useragent: str, usedualstack: bool, accelerate: bool, usefipsendpoint: bool,
  maxrequestspersecond: intIn(0, 1_000_000),
  loglevel: ignored('the AWS SDK does not log here; log.level: debug logs the registry\'s storage calls', any),
  // ours
  maxretries: intIn(0, 100),
});

const azure = obj({
  accountname: str, accountkey: secret, container: str, realm: str, serviceurl: str, rootdirectory: str,
  connectionstring: secret,
  credentials: obj({ type: oneOf('default', 'client_secret', 'shared_key'), clientid: str, tenantid: str, secret }),
  max_retries: intIn(0, 100), retry_delay: duration, skipverify: bool,
  copy_status_poll_max_retry: int, copy_status_poll_delay: duration,
  // ours (before distribution 3 named it max_retries)
  maxretries: intIn(0, 100),
});

const gcs = obj({
  bucket: str, keyfile: str, rootdirectory: str, chunksize: int, useragent: str, maxconcurrency: intIn(1, 10_000),
  // A service account key inline; private_key is a secret.
  credentials: obj({ private_key: secret }, any),
  // ours
  endpoint: str, maxretries: intIn(0, 100), readstalltimeout: duration,
});

const redisTLS = obj({ enabled: bool, ...tlsFiles, rootcas: stringlist, insecureskipverify: bool });

const redis = obj({
  // distribution 2.8 (what Harbor still writes)
  addr: str, password: secret, db: int, dialtimeout: duration, readtimeout: duration, writetimeout: duration,
  pool: obj({ maxidle: int, maxactive: int, idletimeout: duration }),
  tls: redisTLS,
  // Harbor's fork: sentinels in addr, comma-separated, and the master's name.
  sentinelMasterSet: str,
  // distribution 3.x: go-redis UniversalOptions
  addrs: stringlist, username: str, clientname: str, protocol: intIn(2, 3),
  sentinelusername: str, sentinelpassword: secret, mastername: str,
  maxretries: intIn(-1, 100), minretrybackoff: duration, maxretrybackoff: duration,
  poolfifo: bool, poolsize: int, pooltimeout: duration, minidleconns: int, maxidleconns: int, maxactiveconns: int,
  connmaxidletime: duration, connmaxlifetime: duration,
  readonly: bool, routebylatency: bool, routerandomly: bool, maxredirects: int,
  contextTimeoutEnabled: bool, disableindentity: bool, disableidentity: bool, identitysuffix: str, unstableresp3: bool,
});

const checker = { interval: duration, threshold: int };

const middlewareEntry = obj({ name: str, disabled: bool, options: any });

export const configSchema: Schema = obj({
  version: str,
  loglevel: oneOf('error', 'warn', 'info', 'debug'),
  log: obj({
    level: oneOf('error', 'warn', 'info', 'debug'),
    formatter: oneOf('text', 'json', 'logstash'),
    fields: obj({}, any),
    accesslog: obj({ disabled: bool }),
    reportcaller: ignored('records carry no caller information', bool),
    hooks: ignored('log hooks (mail) are not implemented; forward the log instead', list(obj({
      disabled: bool, type: str, levels: stringlist,
      options: obj({ smtp: obj({ addr: str, username: str, password: secret, insecure: bool }), from: str, to: stringlist }),
    }))),
  }),
  storage: {
    kind: 'object',
    unknown: 'refuse',
    bare: true,
    fields: {
      filesystem: obj({ rootdirectory: str, maxthreads: intIn(25, 100_000) }),
      inmemory: obj({}),
      s3, azure, gcs,
      swift: refused('the swift driver was removed in distribution 3 and is not supported here'),
      oss: refused('the oss driver was removed in distribution 3 and is not supported here'),
      // digestindex is ours: keep and trust the digest-to-tags index (docs/storage-layout.md).
      tag: obj({ concurrencylimit: intIn(0, 10_000), digestindex: bool }),
      delete: obj({ enabled: bool }),
      redirect: obj({ disable: bool }),
      cache: obj({
        blobdescriptor: oneOf('inmemory', 'redis'),
        layerinfo: oneOf('inmemory', 'redis'),
        blobdescriptorsize: intIn(0, 100_000_000),
      }),
      maintenance: obj({
        uploadpurging: obj({ enabled: bool, age: duration, interval: duration, dryrun: bool }),
        readonly: obj({ enabled: bool }),
        // ours: how long writes wait for a running garbage collection (docs/maintenance.md)
        garbagecollect: obj({ writewait: duration }),
      }),
    },
  },
  auth: strictObj({
    silly: obj({ realm: str, service: str }),
    token: obj({
      realm: str, service: str, issuer: str, rootcertbundle: str, jwks: str,
      autoredirect: bool, autoredirectpath: str, signingalgorithms: stringlist,
    }),
    htpasswd: obj({ realm: str, path: str }),
    none: obj({}),
  }, true),
  middleware: obj({
    registry: list(middlewareEntry),
    repository: list(middlewareEntry),
    storage: list(middlewareEntry),
  }),
  reporting: ignored('error reporting to Bugsnag and New Relic is not implemented', obj({
    bugsnag: obj({ apikey: secret, releasestage: str, endpoint: str }),
    newrelic: obj({ licensekey: secret, name: str, verbose: bool }),
  })),
  http: obj({
    addr: str, net: oneOf('tcp', 'unix'), prefix: str, host: str, secret, relativeurls: bool, draintimeout: duration,
    tls: obj({
      ...tlsFiles,
      clientauth: oneOf('request-client-cert', 'require-any-client-cert', 'verify-client-cert-if-given', 'require-and-verify-client-cert'),
      minimumtls: oneOf('tls1.0', 'tls1.1', 'tls1.2', 'tls1.3'),
      ciphersuites: stringlist,
      letsencrypt: obj({ cachefile: str, email: str, hosts: stringlist, directoryurl: str }),
    }),
    headers,
    debug: obj({
      addr: str,
      // repositorylabels is ours: per-repository pull/push counters for up to this many repositories (0: off).
      prometheus: obj({ enabled: bool, path: str, repositorylabels: intIn(0, 100_000) }),
      tls: obj({ enabled: bool, ...tlsFiles, minimumtls: oneOf('tls1.0', 'tls1.1', 'tls1.2', 'tls1.3') }),
    }),
    http2: obj({ disabled: bool }),
    h2c: obj({ enabled: bool }),
    // ours: max-age of blob responses' Cache-Control.
    blobmaxage: duration,
    // distribution 3's timeouts; stall and minrate are ours (docs/configuration.md).
    timeout: obj({ read: duration, write: duration, idle: duration, stall: duration }),
    // ours: limits per node.
    limits: obj({ maxuploads: intIn(0, 1_000_000), maxmanifestbytes: intIn(0, 1 << 30), minbodyrate: intIn(0, 1 << 30), minbodyrategrace: duration }),
  }),
  notifications: obj({
    events: obj({ includereferences: bool }),
    endpoints: list(obj({
      name: str, disabled: bool, url: str, headers, timeout: duration, threshold: int, backoff: duration,
      ignoredmediatypes: stringlist, ignore: obj({ mediatypes: stringlist, actions: stringlist }),
      // ours: the body's format, and this endpoint's own queue bounds.
      format: oneOf('distribution', 'cloudevents'),
      queue: obj(queueBounds),
    })),
    // ours: the durable queue (docs/notifications.md).
    queue: obj({ directory: str, fsync: bool, ...queueBounds }),
  }),
  redis,
  health: obj({
    storagedriver: obj({ enabled: bool, ...checker }),
    file: list(obj({ file: str, ...checker })),
    http: list(obj({ uri: str, headers, statuscode: int, timeout: duration, ...checker })),
    tcp: list(obj({ addr: str, timeout: duration, ...checker })),
  }),
  catalog: obj({ maxentries: int }),
  tags: obj({ maxtags: int }),
  proxy: obj({
    ...proxyRemote,
    remotenamespace: ignored('is not a distribution 3 key: the upstream repository is the requested name (use proxy.remotes[].prefix to map names)', str),
    // ours: many upstreams under name prefixes, a size cap, where spools go
    remotes: list(obj({ prefix: str, ...proxyRemote })),
    maxsize: int, spooldir: str, expiryinterval: duration,
  }),
  compatibility: obj({
    schema1: obj({ signingkeyfile: str, enabled: bool }),
  }),
  validation: obj({
    enabled: bool, disabled: bool,
    manifests: obj({
      urls: obj({ allow: stringlist, deny: stringlist }),
      indexes: obj({ platforms: oneOf('all', 'none', 'list'), platformlist: list(obj({ architecture: str, os: str })) }),
    }),
  }),
  policy: ignored('repository classes were removed in distribution 3', obj({ repository: obj({ classes: stringlist }) })),
  // GitLab's fork keeps its metadata in PostgreSQL: this registry reads the
  // storage layout only, so what that database holds would not be served.
  database: ignored('GitLab\'s metadata database is not used by this registry', obj({
    enabled: refused('GitLab\'s metadata database is not supported: this registry serves what the storage layout holds, and repositories the database manages would be missing; migrate them back to the layout first, or keep GitLab\'s registry'),
  }, any)),
});
