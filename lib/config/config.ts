// distribution's config.yml, with REGISTRY_* environment overrides, read as
// distribution reads it (tree.ts, env.ts, schema.ts), and turned into the
// settings the registry runs on. Unknown keys and variables are warnings
// (config.warnings); what cannot be honoured safely is a ConfigError naming
// the key. docs/configuration.md lists what is honoured, warned and refused.
import { readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from './configSchema.js';
import { applyEnv } from './env.js';
import { type ConfigWarning, ConfigError, normalize } from './schema.js';
import { cipherString, type MinTLS } from './tls.js';
import { isTreeMap, parseTree } from './tree.js';
import { validName } from '../reference.js';

export const STORAGE_DRIVERS = ['filesystem', 'inmemory', 's3', 'azure', 'gcs'];
const STORAGE_SECTIONS = ['tag', 'delete', 'redirect', 'cache', 'maintenance'];

export type ClientAuth = 'request-client-cert' | 'require-any-client-cert' | 'verify-client-cert-if-given' | 'require-and-verify-client-cert';

export interface TLSConfig {
  certificate: string;
  key: string;
  clientcas: string[];
  clientauth: ClientAuth;
  minimumtls: MinTLS;
  /** OpenSSL's cipher string for http.tls.ciphersuites (distribution's defaults when unset). */
  ciphers: string;
}

export type StorageMiddleware =
  | { name: 'redirect'; baseurl: string }
  | {
    name: 'cloudfront'; baseurl: string; privatekey: string; keypairid: string; durationMs: number;
    ipfilteredby: 'none' | 'aws' | 'awsregion'; awsregion: string[]; updatefrequencyMs: number; iprangesurl: string;
  };

export interface HealthCheckConfig { intervalMs: number; threshold: number }

export interface HealthConfig {
  storagedriver?: HealthCheckConfig;
  file: (HealthCheckConfig & { file: string })[];
  http: (HealthCheckConfig & { uri: string; headers: Record<string, string[]>; statuscode: number; timeoutMs: number })[];
  tcp: (HealthCheckConfig & { addr: string; timeoutMs: number })[];
}

/** How much one endpoint's queue holds before its oldest events are dead-lettered. */
export interface QueueBounds { maxEvents: number; maxBytes: number; maxAgeMs: number; maxDeadEvents: number }

export interface NotificationEndpoint {
  name: string; url: string; headers: Record<string, string[]>; timeoutMs: number; threshold: number; backoffMs: number;
  ignoredMediaTypes: string[]; ignoredActions: string[];
  /** ours: distribution's envelope, or CloudEvents 1.0 structured JSON. */
  format: 'distribution' | 'cloudevents';
  queue: QueueBounds;
}

export interface NotificationsConfig {
  endpoints: NotificationEndpoint[];
  includeReferences: boolean;
  /** ours: where the on-disk queue lives when there is no redis section (docs/notifications.md). */
  directory: string;
  /** False only when notifications.queue.directory was not set (a default under the temporary directory). */
  directorySet: boolean;
  fsync: boolean;
}

/** One upstream of pull-through mode: `proxy.remoteurl` (prefix '', every repository) or an entry of `proxy.remotes`. */
export interface ProxyRemoteConfig {
  /** Repositories named `<prefix>/<name>` are the upstream's `<name>`; '' for the top-level remoteurl (every name no prefix takes). */
  prefix: string;
  remoteurl: string;
  username?: string;
  password?: string;
  exec?: { command: string; lifetimeMs?: number };
  /** Content not pulled for this long is removed (0: kept until evicted by size). */
  ttlMs: number;
  /** A tag is revalidated upstream (one HEAD) at most this often. */
  tagTtlMs: number;
  /** Docker Hub's implicit library/ for one-component names. */
  library: boolean;
  /** Until the upstream's answer headers arrive. */
  timeoutMs: number;
}

export interface ProxyConfig {
  remotes: ProxyRemoteConfig[];
  /** Bytes of proxied blobs kept; past it the least recently pulled go (0: no cap). */
  maxSizeBytes: number;
  spoolDir?: string;
  /** How often the expiry scheduler runs. */
  expiryIntervalMs: number;
}

export interface Config {
  version: string;
  /** What was accepted but not understood or not acted on: logged at start, fatal for `registry config check`. */
  warnings: ConfigWarning[];
  /** The normalized configuration after overrides, as `registry config check` prints it. */
  effective: Record<string, unknown>;
  /** Dotted keys of secret values in `effective`, for masking. */
  secrets: Set<string>;
  /** Dotted keys of durations in `effective` (held in milliseconds). */
  durations: Set<string>;
  log: { level: 'error' | 'warn' | 'info' | 'debug'; formatter: 'text' | 'json' | 'logstash'; fields: Record<string, unknown>; accessLog: boolean };
  storage: {
    driver: string;
    params: Record<string, unknown>;
    deleteEnabled: boolean;
    redirectDisabled: boolean;
    cache: { blobdescriptor: 'inmemory' | 'redis' | 'none'; size: number };
    readOnly: boolean;
    uploadPurging: { enabled: boolean; ageMs: number; intervalMs: number; dryRun: boolean };
    /** How long a reference-making write waits for a running collection before 503. */
    gcWriteWaitMs: number;
    /** storage.tag.concurrencylimit: tag link reads at once when a manifest delete looks for its tags. */
    tagConcurrency: number;
    /** storage.tag.digestindex (ours, default true): the digest-to-tags index is written and trusted. */
    tagDigestIndex: boolean;
  };
  middleware: { storage: StorageMiddleware[] };
  http: {
    addr: string; net: 'tcp' | 'unix'; prefix: string; host: string; secret: string; relativeUrls: boolean;
    drainTimeoutMs: number; headers: Record<string, string[]>; blobMaxAgeSeconds: number;
    /** Headers must arrive within readTimeoutMs; keep-alive connections close after idleTimeoutMs; a request whose socket moves no byte for stallTimeoutMs is cut. */
    readTimeoutMs: number; idleTimeoutMs: number; stallTimeoutMs: number;
    /** A request body slower than this many bytes per second (after the grace period) is cut; 0: no minimum. */
    minBodyRate: number; minBodyRateGraceMs: number;
    /** Concurrent upload requests (POST/PATCH/PUT of uploads) per node; 0: no limit. */
    maxUploads: number;
    maxManifestBytes: number;
    tls?: TLSConfig;
    debug?: { addr: string; prometheus: { enabled: boolean; path: string; repositoryLabels: number }; tls?: { certificate: string; key: string; clientcas: string[]; minimumtls: MinTLS } };
  };
  redis?: Record<string, unknown>;
  auth?: {
    htpasswd?: { realm: string; path: string };
    token?: { realm: string; service: string; issuer: string; rootcertbundle?: string; jwks?: string; autoredirect: boolean; autoredirectpath: string; signingalgorithms: string[] };
    silly?: { realm: string; service: string };
  };
  validation: {
    enabled: boolean; urlsAllow: string[]; urlsDeny: string[];
    indexPlatforms: 'all' | 'none' | 'list'; platformList: { os?: string; architecture?: string }[];
  };
  health: HealthConfig;
  notifications: NotificationsConfig;
  /** Pull-through mode (distribution's proxy section, and proxy.remotes): absent for a hosted-only registry. */
  proxy?: ProxyConfig;
  catalogMaxEntries: number;
  tagsMaxTags: number;
}

type N = Record<string, unknown>;

function get(t: unknown, ...path: string[]): unknown {
  let n = t;
  for (const p of path) {
    if (n === null || typeof n !== 'object') return undefined;
    n = (n as N)[p];
  }
  return n ?? undefined;
}

/** Reads config.yml text (and REGISTRY_* overrides from env) into the registry's settings. */
export function parseConfig(text: string, env: NodeJS.ProcessEnv = process.env): Config {
  const tree = parseTree(text) ?? {};
  if (!isTreeMap(tree)) throw new ConfigError('', 'the top level must be a map');
  const warnings: ConfigWarning[] = [];
  const secrets = new Set<string>();
  const durations = new Set<string>();
  applyEnv(tree, configSchema, env, warnings);
  const n = normalize(tree, configSchema, '', { warnings, secrets, durations, root: configSchema }) as N;
  const warn = (key: string, message: string) => warnings.push({ key, message });

  if (n.version === undefined) throw new ConfigError('version', 'is required (use 0.1)');
  if (n.version !== '0.1') throw new ConfigError('version', `must be 0.1, got ${String(n.version)}`);

  // Storage: exactly one driver beside the common sections.
  const storage = (n.storage ?? {}) as N;
  const drivers = Object.keys(storage).filter((k) => !STORAGE_SECTIONS.includes(k));
  if (drivers.length === 0) throw new ConfigError('storage', `names no driver (one of ${STORAGE_DRIVERS.join(', ')})`);
  if (drivers.length > 1) throw new ConfigError('storage', `names more than one driver: ${drivers.join(', ')}`);
  const driver = drivers[0];
  const dur = (v: unknown, dflt: number) => (v === undefined ? dflt : (v as number));
  const cacheKind = (get(storage, 'cache', 'blobdescriptor') ?? get(storage, 'cache', 'layerinfo')) as 'inmemory' | 'redis' | undefined;
  if (cacheKind === 'redis' && !n.redis) throw new ConfigError('storage.cache.blobdescriptor', 'is redis but the redis section is missing');
  let cacheSize = (get(storage, 'cache', 'blobdescriptorsize') as number | undefined) ?? 10_000;
  if (cacheSize === 0) {
    // distribution grows the cache without bound for 0; every cache here is bounded.
    warn('storage.cache.blobdescriptorsize', '0 (unbounded) is not allowed here: using the default, 10000 entries');
    cacheSize = 10_000;
  }

  // HTTP and TLS.
  const headers: Record<string, string[]> = { 'X-Content-Type-Options': ['nosniff'] };
  for (const [k, v] of Object.entries((get(n, 'http', 'headers') ?? {}) as Record<string, string[]>)) headers[k] = v;
  const tlsTree = (get(n, 'http', 'tls') ?? {}) as N;
  let tls: TLSConfig | undefined;
  if (tlsTree.certificate || tlsTree.key) {
    if (!tlsTree.certificate || !tlsTree.key) throw new ConfigError('http.tls', 'needs both certificate and key');
    const minimumtls = (tlsTree.minimumtls ?? 'tls1.2') as MinTLS;
    tls = {
      certificate: String(tlsTree.certificate), key: String(tlsTree.key),
      clientcas: (tlsTree.clientcas ?? []) as string[],
      clientauth: (tlsTree.clientauth ?? 'require-and-verify-client-cert') as ClientAuth,
      minimumtls,
      ciphers: cipherString(tlsTree.ciphersuites as string[] | undefined, minimumtls, 'http.tls.ciphersuites'),
    };
    if (get(tlsTree, 'letsencrypt', 'cachefile')) warn('http.tls.letsencrypt', 'is ignored: certificate and key are given (as distribution does)');
  } else if (get(tlsTree, 'letsencrypt', 'cachefile') || get(tlsTree, 'letsencrypt', 'email')) {
    throw new ConfigError('http.tls.letsencrypt', 'is not supported: certificates from Let\'s Encrypt are not obtained here, and serving plain HTTP instead would change security; give http.tls.certificate and http.tls.key (from certbot or cert-manager), or terminate TLS in front of the registry');
  } else if (tlsTree.ciphersuites || tlsTree.minimumtls || (tlsTree.clientcas as string[] | undefined)?.length) {
    warn('http.tls', 'sets TLS options but no certificate and key: the registry serves plain HTTP');
  }
  if (get(n, 'http', 'h2c', 'enabled') === true) warn('http.h2c.enabled', 'is ignored: the server speaks HTTP/1.1 (a load balancer must not send HTTP/2 cleartext with prior knowledge)');
  const debugTree = get(n, 'http', 'debug') as N | undefined;
  let debug: Config['http']['debug'];
  if (debugTree?.addr) {
    const dtls = (debugTree.tls ?? {}) as N;
    if ((dtls.certificate || dtls.key) && !(dtls.certificate && dtls.key)) throw new ConfigError('http.debug.tls', 'needs both certificate and key');
    debug = {
      addr: String(debugTree.addr),
      prometheus: {
        enabled: get(debugTree, 'prometheus', 'enabled') === true,
        path: String(get(debugTree, 'prometheus', 'path') ?? '/metrics'),
        repositoryLabels: (get(debugTree, 'prometheus', 'repositorylabels') as number | undefined) ?? 0,
      },
      tls: dtls.certificate && dtls.enabled !== false
        ? { certificate: String(dtls.certificate), key: String(dtls.key), clientcas: (dtls.clientcas ?? []) as string[], minimumtls: (dtls.minimumtls ?? 'tls1.2') as MinTLS }
        : undefined,
    };
  } else if (get(debugTree, 'prometheus', 'enabled') === true) {
    warn('http.debug.prometheus', 'is enabled but http.debug.addr is not set: no debug server, no metrics');
  }

  // Auth: one access controller ("none" is none).
  let auth: Config['auth'];
  const authTree = (get(n, 'auth') ?? {}) as N;
  const kinds = Object.keys(authTree).filter((k) => k !== 'none');
  if (kinds.length > 1) throw new ConfigError('auth', `names more than one access controller: ${kinds.join(', ')}`);
  if (kinds.length === 1) {
    const kind = kinds[0];
    const need = (key: string) => {
      const v = get(authTree, kind, key);
      if (typeof v !== 'string' || v === '') throw new ConfigError(`auth.${kind}.${key}`, 'is required');
      return v;
    };
    if (kind === 'htpasswd') {
      auth = { htpasswd: { realm: (get(authTree, 'htpasswd', 'realm') as string | undefined) ?? 'Registry Realm', path: need('path') } };
    } else if (kind === 'silly') {
      auth = { silly: { realm: need('realm'), service: need('service') } };
    } else {
      const rootcertbundle = get(authTree, 'token', 'rootcertbundle') as string | undefined;
      const jwks = get(authTree, 'token', 'jwks') as string | undefined;
      if (!rootcertbundle && !jwks) throw new ConfigError('auth.token', 'needs rootcertbundle or jwks (the keys that sign tokens)');
      const autoredirect = get(authTree, 'token', 'autoredirect') === true;
      auth = {
        token: {
          realm: autoredirect ? String(get(authTree, 'token', 'realm') ?? '') : need('realm'), service: need('service'), issuer: need('issuer'),
          rootcertbundle, jwks, autoredirect,
          autoredirectpath: String(get(authTree, 'token', 'autoredirectpath') ?? '/auth/token/'),
          signingalgorithms: (get(authTree, 'token', 'signingalgorithms') ?? []) as string[],
        },
      };
    }
  }

  // Middleware: distribution fails on a name it has not registered; so do we.
  const middleware: Config['middleware'] = { storage: [] };
  for (const point of ['registry', 'repository'] as const) {
    ((get(n, 'middleware', point) ?? []) as N[]).forEach((m, i) => {
      if (m.disabled !== true) throw new ConfigError(`middleware.${point}[${i}]`, `no ${point} middleware named ${String(m.name ?? '')} exists here (distribution ships none either); remove it or set disabled: true`);
    });
  }
  ((get(n, 'middleware', 'storage') ?? []) as N[]).forEach((m, i) => {
    if (m.disabled === true) return;
    const key = `middleware.storage[${i}]`;
    middleware.storage.push(storageMiddleware(key, String(m.name ?? ''), (m.options ?? {}) as N));
  });

  // Validation, as distribution: enabled unless disabled (and `enabled: true` wins).
  const validationEnabled = get(n, 'validation', 'enabled') === true || get(n, 'validation', 'disabled') !== true;

  const schema1 = get(n, 'compatibility', 'schema1') as N | undefined;
  if (schema1?.enabled === true) warn('compatibility.schema1.enabled', 'schema1 manifests are still refused (MANIFEST_INVALID), as in distribution 3');
  if (schema1?.signingkeyfile) warn('compatibility.schema1.signingkeyfile', 'is ignored: schema1 manifests are not served');

  // Health checks (lib/health).
  const checker = (t: N, key: string, dfltThreshold = 1) => {
    const intervalMs = dur(t.interval, 10_000) || 10_000;
    const threshold = (t.threshold as number | undefined) || dfltThreshold;
    if (threshold < 1) throw new ConfigError(`${key}.threshold`, 'must be a positive integer');
    return { intervalMs, threshold };
  };
  const sd = get(n, 'health', 'storagedriver') as N | undefined;
  const health: HealthConfig = {
    storagedriver: sd?.enabled === true ? checker(sd, 'health.storagedriver') : undefined,
    file: ((get(n, 'health', 'file') ?? []) as N[]).map((f, i) => {
      if (!f.file) throw new ConfigError(`health.file[${i}].file`, 'is required');
      return { file: String(f.file), ...checker(f, `health.file[${i}]`) };
    }),
    http: ((get(n, 'health', 'http') ?? []) as N[]).map((h, i) => {
      if (!h.uri) throw new ConfigError(`health.http[${i}].uri`, 'is required');
      return { uri: String(h.uri), headers: (h.headers ?? {}) as Record<string, string[]>, statuscode: (h.statuscode as number | undefined) || 200, timeoutMs: dur(h.timeout, 3000) || 3000, ...checker(h, `health.http[${i}]`) };
    }),
    tcp: ((get(n, 'health', 'tcp') ?? []) as N[]).map((h, i) => {
      if (!h.addr) throw new ConfigError(`health.tcp[${i}].addr`, 'is required');
      return { addr: String(h.addr), timeoutMs: dur(h.timeout, 3000) || 3000, ...checker(h, `health.tcp[${i}]`) };
    }),
  };

  const notifications = notificationsConfig((n.notifications ?? {}) as N, dur, String(get(n, 'http', 'addr') ?? ':5000'));
  const proxy = proxyConfig((n.proxy ?? {}) as N, dur);

  const positive = (v: unknown, dflt: number) => (typeof v === 'number' && v > 0 ? v : dflt);
  const tagConcurrency = (get(storage, 'tag', 'concurrencylimit') as number | undefined) || Math.max(4, availableParallelism());

  const config: Config = {
    version: '0.1',
    warnings, effective: n, secrets, durations,
    log: {
      level: (get(n, 'log', 'level') ?? n.loglevel ?? 'info') as Config['log']['level'],
      formatter: (get(n, 'log', 'formatter') ?? 'text') as Config['log']['formatter'],
      fields: (get(n, 'log', 'fields') ?? {}) as Record<string, unknown>,
      accessLog: get(n, 'log', 'accesslog', 'disabled') !== true,
    },
    storage: {
      driver,
      params: (storage[driver] ?? {}) as Record<string, unknown>,
      deleteEnabled: get(storage, 'delete', 'enabled') === true,
      redirectDisabled: get(storage, 'redirect', 'disable') === true,
      cache: { blobdescriptor: cacheKind ?? 'none', size: cacheSize },
      readOnly: get(storage, 'maintenance', 'readonly', 'enabled') === true,
      uploadPurging: {
        enabled: get(storage, 'maintenance', 'uploadpurging', 'enabled') !== false,
        ageMs: dur(get(storage, 'maintenance', 'uploadpurging', 'age'), 168 * 3600e3),
        intervalMs: dur(get(storage, 'maintenance', 'uploadpurging', 'interval'), 24 * 3600e3),
        dryRun: get(storage, 'maintenance', 'uploadpurging', 'dryrun') === true,
      },
      gcWriteWaitMs: dur(get(storage, 'maintenance', 'garbagecollect', 'writewait'), 60e3),
      tagConcurrency,
      tagDigestIndex: get(storage, 'tag', 'digestindex') !== false,
    },
    middleware,
    http: {
      addr: String(get(n, 'http', 'addr') ?? ':5000'),
      net: (get(n, 'http', 'net') ?? 'tcp') as 'tcp' | 'unix',
      prefix: String(get(n, 'http', 'prefix') ?? '/'),
      host: String(get(n, 'http', 'host') ?? ''),
      secret: String(get(n, 'http', 'secret') ?? ''),
      relativeUrls: get(n, 'http', 'relativeurls') === true,
      // Unset: drain for at most 60 s, so a stuck client cannot hold a stop forever.
      drainTimeoutMs: dur(get(n, 'http', 'draintimeout'), 60_000),
      headers,
      blobMaxAgeSeconds: Math.floor(dur(get(n, 'http', 'blobmaxage'), 7 * 24 * 3600e3) / 1000),
      readTimeoutMs: dur(get(n, 'http', 'timeout', 'read'), 60_000) || 60_000,
      idleTimeoutMs: dur(get(n, 'http', 'timeout', 'idle'), 65_000) || 65_000,
      stallTimeoutMs: dur(get(n, 'http', 'timeout', 'stall'), 120_000),
      minBodyRate: (get(n, 'http', 'limits', 'minbodyrate') as number | undefined) ?? 1024,
      minBodyRateGraceMs: dur(get(n, 'http', 'limits', 'minbodyrategrace'), 30_000),
      maxUploads: (get(n, 'http', 'limits', 'maxuploads') as number | undefined) ?? 256,
      maxManifestBytes: (get(n, 'http', 'limits', 'maxmanifestbytes') as number | undefined) || (4 << 20),
      tls,
      debug,
    },
    redis: n.redis && Object.keys(n.redis as N).length ? n.redis as Record<string, unknown> : undefined,
    auth,
    validation: {
      enabled: validationEnabled,
      urlsAllow: (get(n, 'validation', 'manifests', 'urls', 'allow') ?? []) as string[],
      urlsDeny: (get(n, 'validation', 'manifests', 'urls', 'deny') ?? []) as string[],
      indexPlatforms: (get(n, 'validation', 'manifests', 'indexes', 'platforms') ?? 'all') as 'all' | 'none' | 'list',
      platformList: (get(n, 'validation', 'manifests', 'indexes', 'platformlist') ?? []) as { os?: string; architecture?: string }[],
    },
    health,
    notifications,
    // distribution: 0 or less means the default.
    catalogMaxEntries: positive(get(n, 'catalog', 'maxentries'), 1000),
    tagsMaxTags: positive(get(n, 'tags', 'maxtags'), 1000),
    proxy,
  };
  if (config.redis && !config.redis.addr && !(config.redis.addrs as string[] | undefined)?.length) {
    throw new ConfigError('redis', 'needs addr (or addrs)');
  }
  return config;
}

/** A storage middleware entry, checked at load so a typo stops the start, as in distribution. */
function storageMiddleware(key: string, name: string, o: N): StorageMiddleware {
  const text = (k: string, required = false): string => {
    const v = o[k];
    if (v === undefined || v === null || v === '') {
      if (required) throw new ConfigError(`${key}.options.${k}`, 'is required');
      return '';
    }
    if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(`${key}.options.${k}`, 'must be a string');
    return String(v);
  };
  const baseurl = (): string => {
    const b = text('baseurl', true);
    let u: URL;
    try { u = new URL(b); } catch { throw new ConfigError(`${key}.options.baseurl`, `must be an absolute URL such as https://cdn.example.com/, got ${b}`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`${key}.options.baseurl`, 'must be an http or https URL');
    return b;
  };
  const durationOf = (k: string, dflt: number): number => {
    const v = o[k];
    if (v === undefined || v === null || v === '') return dflt;
    // distribution: an integer without a unit means the default.
    if (typeof v === 'number' || /^\d+$/.test(String(v))) return dflt;
    const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/.exec(String(v).trim());
    const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
    if (!m) throw new ConfigError(`${key}.options.${k}`, `must be a duration such as 20m or 3000s, got ${String(v)}`);
    return Number(m[1]) * unit[m[2]];
  };
  if (name === 'redirect') return { name, baseurl: baseurl() };
  if (name === 'cloudfront') {
    const filter = (text('ipfilteredby') || 'none').toLowerCase();
    if (!['none', 'aws', 'awsregion'].includes(filter)) throw new ConfigError(`${key}.options.ipfilteredby`, `must be none, aws or awsregion, got ${filter}`);
    const awsregion = text('awsregion').split(',').map((r) => r.trim()).filter(Boolean);
    if (filter === 'awsregion' && awsregion.length === 0) throw new ConfigError(`${key}.options.awsregion`, 'is required with ipfilteredby: awsregion');
    return {
      name, baseurl: baseurl(), privatekey: text('privatekey', true), keypairid: text('keypairid', true),
      durationMs: durationOf('duration', 20 * 60_000),
      ipfilteredby: filter as 'none' | 'aws' | 'awsregion', awsregion,
      updatefrequencyMs: durationOf('updatefrequency', 12 * 3600_000),
      iprangesurl: text('iprangesurl') || 'https://ip-ranges.amazonaws.com/ip-ranges.json',
    };
  }
  throw new ConfigError(`${key}.name`, `no storage middleware named ${name} exists here (redirect, cloudfront)`);
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  const path = file ?? env.REGISTRY_CONFIGURATION_PATH;
  if (!path) throw new ConfigError('', 'no configuration file given (registry serve CONFIG, or REGISTRY_CONFIGURATION_PATH)');
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new ConfigError('', `cannot read ${path}: ${(e as Error).message}`); }
  return parseConfig(text, env);
}

const QUEUE_DEFAULTS: QueueBounds = { maxEvents: 100_000, maxBytes: 128 << 20, maxAgeMs: 7 * 24 * 3600e3, maxDeadEvents: 100_000 };

function queueBounds(q: N, dur: (v: unknown, dflt: number) => number, dflt: QueueBounds): QueueBounds {
  return {
    maxEvents: (q.maxevents as number | undefined) ?? dflt.maxEvents,
    maxBytes: (q.maxbytes as number | undefined) ?? dflt.maxBytes,
    maxAgeMs: dur(q.maxage, dflt.maxAgeMs),
    maxDeadEvents: (q.maxdeadevents as number | undefined) ?? dflt.maxDeadEvents,
  };
}

/** distribution's notifications section (its defaults: timeout 1s, threshold
 *  10, backoff 1s, for values of 0 or less) and our queue keys. Disabled
 *  endpoints are dropped here; an enabled one needs a unique name (it names
 *  its queue) and an http(s) url. */
function notificationsConfig(s: N, dur: (v: unknown, dflt: number) => number, addr: string): NotificationsConfig {
  const q = (s.queue ?? {}) as N;
  const bounds = queueBounds(q, dur, QUEUE_DEFAULTS);
  const names = new Set<string>();
  const endpoints: NotificationEndpoint[] = [];
  ((s.endpoints ?? []) as N[]).forEach((e, i) => {
    if (e.disabled === true) return;
    const key = `notifications.endpoints[${i}]`;
    const name = String(e.name ?? '');
    if (!name) throw new ConfigError(`${key}.name`, 'is required (it names the endpoint\'s queue and its metrics)');
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(name)) throw new ConfigError(`${key}.name`, `${name.slice(0, 200)}: use up to 128 of [A-Za-z0-9._-] (it names the endpoint's queue)`);
    if (names.has(name)) throw new ConfigError(`${key}.name`, `${name} names two enabled endpoints: their queues would be one`);
    names.add(name);
    let url: URL;
    try { url = new URL(String(e.url ?? '')); } catch { throw new ConfigError(`${key}.url`, `is not a URL: ${String(e.url ?? '').slice(0, 200)}`); }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${key}.url`, `must be http or https: ${url.href.slice(0, 200)}`);
    const ignore = (e.ignore ?? {}) as N;
    const positiveDur = (v: unknown, d: number) => { const x = dur(v, d); return x > 0 ? x : d; };
    endpoints.push({
      name, url: url.href, headers: (e.headers ?? {}) as Record<string, string[]>,
      timeoutMs: positiveDur(e.timeout, 1000),
      threshold: typeof e.threshold === 'number' && e.threshold > 0 ? e.threshold : 10,
      backoffMs: positiveDur(e.backoff, 1000),
      ignoredMediaTypes: [...((ignore.mediatypes ?? []) as string[]), ...((e.ignoredmediatypes ?? []) as string[])],
      ignoredActions: (ignore.actions ?? []) as string[],
      format: (e.format as 'distribution' | 'cloudevents' | undefined) ?? 'distribution',
      queue: queueBounds((e.queue ?? {}) as N, dur, bounds),
    });
  });
  const directorySet = typeof q.directory === 'string' && q.directory !== '';
  // One default directory per listen address, so that several registries on one host never share a queue.
  const directory = directorySet ? String(q.directory) : join(tmpdir(), `registry-notifications-${process.getuid?.() ?? 0}`, addr.replace(/[^A-Za-z0-9._-]+/g, '_') || 'default');
  return {
    endpoints, includeReferences: get(s, 'events', 'includereferences') === true,
    directory, directorySet, fsync: q.fsync !== false,
  };
}

const DOCKER_HUB_HOSTS = new Set(['registry-1.docker.io', 'index.docker.io', 'docker.io', 'registry.hub.docker.com']);

/** The proxy section: distribution's single upstream (remoteurl: every
 *  repository is proxied, as there) and our proxy.remotes (prefixed names are
 *  proxied, the rest hosted). Absent when neither is set. */
function proxyConfig(p: N, dur: (v: unknown, dflt: number) => number): ProxyConfig | undefined {
  const remote = (r: N, key: string, prefix: string): ProxyRemoteConfig => {
    const url = String(r.remoteurl ?? '');
    let parsed: URL;
    try { parsed = new URL(url); } catch { throw new ConfigError(`${key}.remoteurl`, `is not a URL: ${url.slice(0, 200)}`); }
    if (!['http:', 'https:'].includes(parsed.protocol)) throw new ConfigError(`${key}.remoteurl`, `must be http or https, got ${parsed.protocol}`);
    if (parsed.username || parsed.password) throw new ConfigError(`${key}.remoteurl`, `must not carry credentials: give ${key}.username and ${key}.password`);
    const exec = r.exec as N | undefined;
    if (exec && !exec.command) throw new ConfigError(`${key}.exec.command`, 'is required');
    if (exec && (r.username || r.password)) throw new ConfigError(`${key}.exec`, 'and username/password are both set: give one');
    return {
      prefix, remoteurl: url,
      username: r.username as string | undefined, password: r.password as string | undefined,
      exec: exec ? { command: String(exec.command), lifetimeMs: exec.lifetime as number | undefined } : undefined,
      ttlMs: dur(r.ttl, 168 * 3600e3),
      tagTtlMs: dur(r.tagttl, 60_000),
      library: r.library === undefined ? DOCKER_HUB_HOSTS.has(parsed.hostname) : r.library === true,
      timeoutMs: dur(r.timeout, 30_000) || 30_000,
    };
  };
  const remotes: ProxyRemoteConfig[] = [];
  const seen = new Set<string>();
  ((p.remotes ?? []) as N[]).forEach((r, i) => {
    const key = `proxy.remotes[${i}]`;
    const prefix = String(r.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (!prefix) throw new ConfigError(`${key}.prefix`, 'is required (the top-level proxy.remoteurl is the upstream for every other name)');
    if (!validName(prefix)) throw new ConfigError(`${key}.prefix`, `${prefix.slice(0, 100)} is not a valid repository path (lower-case components such as docker.io or ghcr.io)`);
    if (seen.has(prefix)) throw new ConfigError(`${key}.prefix`, `${prefix} is given twice`);
    seen.add(prefix);
    remotes.push(remote(r, key, prefix));
  });
  if (p.remoteurl) remotes.push(remote(p, 'proxy', ''));
  else if (p.username || p.password || p.exec) throw new ConfigError('proxy', 'sets credentials but no remoteurl');
  if (remotes.length === 0) return undefined;
  const maxSizeBytes = (p.maxsize as number | undefined) ?? 0;
  if (maxSizeBytes < 0) throw new ConfigError('proxy.maxsize', 'must be 0 (no cap) or a number of bytes');
  return {
    // Longest prefix first: the first that matches is the one.
    remotes: remotes.sort((a, b) => b.prefix.length - a.prefix.length),
    maxSizeBytes,
    spoolDir: p.spooldir as string | undefined,
    expiryIntervalMs: dur(p.expiryinterval, 10 * 60_000) || 10 * 60_000,
  };
}
