// distribution's config.yml, with REGISTRY_* environment overrides applied
// in name order, validated with messages that name the offending key.
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { parseDuration } from './duration.js';
import {
  ConfigError, type Schema, any, bool, duration, int, obj, oneOf, str, stringlist, unsupported, validate,
} from './schema.js';

export const STORAGE_DRIVERS = ['filesystem', 'inmemory', 's3', 'azure', 'gcs'];
const STORAGE_SECTIONS = ['delete', 'redirect', 'cache', 'maintenance'];

const redisSchema = obj({
  // distribution 2.8 (what Harbor still writes)
  addr: str, password: str, db: int, dialtimeout: duration, readtimeout: duration, writetimeout: duration,
  pool: obj({ maxidle: int, maxactive: int, idletimeout: duration }),
  tls: obj({ enabled: bool, certificate: str, key: str, clientcas: stringlist }),
  // distribution 3.x (go-redis options)
  addrs: stringlist, username: str, poolsize: int, minidleconns: int, maxidleconns: int, maxactiveconns: int,
  connmaxidletime: duration, connmaxlifetime: duration, pooltimeout: duration, maxretries: int,
  mastername: str, clientname: str, protocol: int, sentinelusername: str, sentinelpassword: str,
  minretrybackoff: duration, maxretrybackoff: duration, readonly: bool, routebylatency: bool, routerandomly: bool,
});

export const configSchema: Schema = obj({
  version: str,
  loglevel: oneOf('error', 'warn', 'info', 'debug'),
  log: obj({
    level: oneOf('error', 'warn', 'info', 'debug'),
    formatter: oneOf('text', 'json', 'logstash'),
    fields: { kind: 'object', fields: {}, other: any },
    accesslog: obj({ disabled: bool }),
    reportcaller: bool,
    hooks: unsupported('log hooks (mail) are not implemented'),
  }),
  storage: obj({
    filesystem: obj({ rootdirectory: str, maxthreads: int }),
    inmemory: obj({}),
    s3: { kind: 'object', fields: {}, other: any },
    azure: { kind: 'object', fields: {}, other: any },
    gcs: { kind: 'object', fields: {}, other: any },
    delete: obj({ enabled: bool }),
    redirect: obj({ disable: bool }),
    cache: obj({ blobdescriptor: oneOf('inmemory', 'redis'), blobdescriptorsize: int }),
    maintenance: obj({
      uploadpurging: obj({ enabled: bool, age: duration, interval: duration, dryrun: bool }),
      readonly: obj({ enabled: bool }),
      // ours: how long writes wait for a running garbage collection (docs/maintenance.md)
      garbagecollect: obj({ writewait: duration }),
    }),
  }),
  http: obj({
    addr: { kind: 'addr' }, net: oneOf('tcp', 'unix'), prefix: str, host: str, secret: str,
    relativeurls: bool, draintimeout: duration,
    headers: { kind: 'object', fields: {}, other: stringlist },
    tls: obj({
      certificate: str, key: str, clientcas: stringlist, minimumtls: oneOf('tls1.0', 'tls1.1', 'tls1.2', 'tls1.3'),
      ciphersuites: stringlist, letsencrypt: unsupported('Let\'s Encrypt is not implemented; give certificate and key'),
    }),
    debug: unsupported('the debug server is not implemented yet'),
    http2: obj({ disabled: bool }),
    // Our extension: max-age of blob responses' Cache-Control.
    blobmaxage: duration,
    // distribution 3's timeouts; stall is ours (docs/configuration.md).
    timeout: obj({ read: duration, write: duration, idle: duration, stall: duration }),
    // Ours: limits per node.
    limits: obj({ maxuploads: int, maxmanifestbytes: int }),
  }),
  redis: redisSchema,
  validation: obj({
    enabled: bool, disabled: bool,
    manifests: obj({
      urls: obj({ allow: stringlist, deny: stringlist }),
      indexes: obj({ platforms: oneOf('none', 'all', 'list'), platformlist: any }),
    }),
  }),
  auth: obj({
    htpasswd: obj({ realm: str, path: str }),
    token: obj({ realm: str, service: str, issuer: str, rootcertbundle: str, jwks: str, autoredirect: bool, autoredirectpath: str, signingalgorithms: stringlist }),
    silly: unsupported('silly auth is for development of distribution itself; use htpasswd'),
  }),
  notifications: unsupported('notifications are not implemented yet'),
  proxy: unsupported('pull-through cache mode is not implemented'),
  health: unsupported('health checks are not implemented yet'),
  middleware: unsupported('middleware is not implemented'),
  reporting: unsupported('bugsnag/newrelic reporting is not implemented'),
  compatibility: unsupported('schema1 compatibility is not implemented: schema1 manifests are refused'),
  catalog: obj({ maxentries: int }),
  tags: obj({ maxtags: int }),
});

export interface Config {
  version: string;
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
  };
  http: {
    addr: string; net: 'tcp' | 'unix'; prefix: string; host: string; secret: string; relativeUrls: boolean;
    drainTimeoutMs: number; headers: Record<string, string[]>; blobMaxAgeSeconds: number;
    /** Headers must arrive within readTimeoutMs; keep-alive connections close after idleTimeoutMs; a request whose socket moves no byte for stallTimeoutMs is cut. */
    readTimeoutMs: number; idleTimeoutMs: number; stallTimeoutMs: number;
    /** Concurrent upload requests (POST/PATCH/PUT of uploads) per node; 0: no limit. */
    maxUploads: number;
    maxManifestBytes: number;
    tls?: { certificate: string; key: string; clientcas: string[]; minimumtls?: string };
  };
  redis?: Record<string, unknown>;
  auth?: { htpasswd?: { realm: string; path: string }; token?: { realm: string; service: string; issuer: string; rootcertbundle?: string; jwks?: string } };
  validation: { disabled: boolean; urlsAllow: string[]; urlsDeny: string[] };
  catalogMaxEntries: number;
  tagsMaxTags: number;
}

type Tree = Record<string, unknown>;

/** Applies REGISTRY_* variables the way distribution does. */
export function applyEnv(tree: Tree, env: NodeJS.ProcessEnv): Tree {
  const names = Object.keys(env).filter((k) => k.startsWith('REGISTRY_') && k !== 'REGISTRY_CONFIGURATION_PATH').sort();
  for (const name of names) {
    const segs = name.slice('REGISTRY_'.length).split('_').filter((s) => s !== '');
    if (segs.length === 0) continue;
    let value: unknown;
    try { value = YAML.parse(env[name] ?? ''); } catch { value = env[name]; }
    if (segs.length === 1 && segs[0].toLowerCase() === 'storage' && typeof value === 'string') {
      // Naming a driver replaces the driver section and keeps the rest.
      const old = (tree.storage ?? {}) as Tree;
      const next: Tree = { [value]: {} };
      for (const k of Object.keys(old)) if (STORAGE_SECTIONS.includes(k)) next[k] = old[k];
      tree.storage = next;
      continue;
    }
    let node: unknown = tree;
    for (let i = 0; i < segs.length; i++) {
      const last = i === segs.length - 1;
      const seg = segs[i];
      if (Array.isArray(node)) {
        const idx = Number(seg);
        if (!Number.isInteger(idx) || idx < 0 || idx > node.length) throw new ConfigError(name, `index ${seg} is out of range for a list of ${node.length}`);
        if (last) { node[idx] = value; break; }
        node[idx] ??= /^\d+$/.test(segs[i + 1]) ? [] : {};
        node = node[idx];
        continue;
      }
      if (typeof node !== 'object' || node === null) throw new ConfigError(name, `cannot set ${seg} inside a scalar value`);
      const map = node as Tree;
      const key = Object.keys(map).find((k) => k.toLowerCase() === seg.toLowerCase()) ?? seg.toLowerCase();
      if (last) { map[key] = value; break; }
      if (map[key] === null || map[key] === undefined || typeof map[key] !== 'object') map[key] = /^\d+$/.test(segs[i + 1]) ? [] : {};
      node = map[key];
    }
  }
  return tree;
}

function get(t: unknown, ...path: string[]): unknown {
  let n = t;
  for (const p of path) {
    if (n === null || typeof n !== 'object') return undefined;
    n = (n as Tree)[p];
  }
  return n ?? undefined;
}

function nonNegative(v: unknown, key: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ConfigError(key, 'must be a non-negative integer');
  return v;
}

export function parseConfig(text: string, env: NodeJS.ProcessEnv = process.env): Config {
  let tree: unknown;
  try {
    tree = YAML.parse(text) ?? {};
  } catch (e) {
    throw new ConfigError('', `not valid YAML: ${(e as Error).message}`);
  }
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) throw new ConfigError('', 'the top level must be a map');
  const t = tree as Tree;
  if (typeof t.storage === 'string') t.storage = { [t.storage]: {} }; // `storage: s3`
  applyEnv(t, env);
  if (t.storage && typeof t.storage === 'object') {
    for (const [k, v] of Object.entries(t.storage as Tree)) if (v === null && STORAGE_DRIVERS.includes(k)) (t.storage as Tree)[k] = {};
  }
  validate(t, configSchema, '');

  if (t.version === undefined || t.version === null) throw new ConfigError('version', 'is required (use 0.1)');
  if (String(t.version) !== '0.1') throw new ConfigError('version', `must be 0.1, got ${String(t.version)}`);
  const storage = (t.storage ?? {}) as Tree;
  const drivers = Object.keys(storage).filter((k) => !STORAGE_SECTIONS.includes(k));
  if (drivers.length === 0) throw new ConfigError('storage', `names no driver (one of ${STORAGE_DRIVERS.join(', ')})`);
  if (drivers.length > 1) throw new ConfigError('storage', `names more than one driver: ${drivers.join(', ')}`);
  const driver = drivers[0];

  const dur = (v: unknown, dflt: number) => (v === undefined ? dflt : parseDuration(v)!);
  const level = (get(t, 'log', 'level') ?? t.loglevel ?? 'info') as Config['log']['level'];
  const headers: Record<string, string[]> = { 'X-Content-Type-Options': ['nosniff'] };
  for (const [k, v] of Object.entries((get(t, 'http', 'headers') ?? {}) as Record<string, string[]>)) headers[k] = v;
  const tlsTree = get(t, 'http', 'tls') as Tree | undefined;
  let tls: Config['http']['tls'];
  if (tlsTree && (tlsTree.certificate || tlsTree.key)) {
    if (!tlsTree.certificate || !tlsTree.key) throw new ConfigError('http.tls', 'needs both certificate and key');
    tls = { certificate: String(tlsTree.certificate), key: String(tlsTree.key), clientcas: (tlsTree.clientcas ?? []) as string[], minimumtls: tlsTree.minimumtls as string | undefined };
  }
  let auth: Config['auth'];
  const authTree = get(t, 'auth') as Tree | undefined;
  if (authTree && Object.keys(authTree).length) {
    const kinds = Object.keys(authTree);
    if (kinds.length > 1) throw new ConfigError('auth', `names more than one access controller: ${kinds.join(', ')}`);
    const need = (kind: string, key: string) => {
      const v = get(authTree, kind, key);
      if (typeof v !== 'string' || v === '') throw new ConfigError(`auth.${kind}.${key}`, 'is required');
      return v;
    };
    if (kinds[0] === 'htpasswd') {
      auth = { htpasswd: { realm: (get(authTree, 'htpasswd', 'realm') as string | undefined) ?? 'Registry Realm', path: need('htpasswd', 'path') } };
    } else {
      const rootcertbundle = get(authTree, 'token', 'rootcertbundle') as string | undefined;
      const jwks = get(authTree, 'token', 'jwks') as string | undefined;
      if (!rootcertbundle && !jwks) throw new ConfigError('auth.token', 'needs rootcertbundle or jwks (the keys that sign tokens)');
      if (get(authTree, 'token', 'autoredirect') === true) throw new ConfigError('auth.token.autoredirect', 'is not supported: give the token server\'s full URL as realm');
      auth = { token: { realm: need('token', 'realm'), service: need('token', 'service'), issuer: need('token', 'issuer'), rootcertbundle, jwks } };
    }
  }
  const cacheKind = get(storage, 'cache', 'blobdescriptor') as 'inmemory' | 'redis' | undefined;
  if (cacheKind === 'redis' && !t.redis) throw new ConfigError('storage.cache.blobdescriptor', 'is redis but the redis section is missing');
  const valDisabled = get(t, 'validation', 'disabled') === true || get(t, 'validation', 'enabled') === false;
  const secret = String(get(t, 'http', 'secret') ?? '');
  const positive = (v: unknown, key: string, dflt: number) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || v < 1) throw new ConfigError(key, 'must be a positive integer');
    return v;
  };

  return {
    version: '0.1',
    log: {
      level,
      formatter: (get(t, 'log', 'formatter') ?? 'text') as Config['log']['formatter'],
      fields: (get(t, 'log', 'fields') ?? {}) as Record<string, unknown>,
      accessLog: get(t, 'log', 'accesslog', 'disabled') !== true,
    },
    storage: {
      driver,
      params: (storage[driver] ?? {}) as Record<string, unknown>,
      deleteEnabled: get(storage, 'delete', 'enabled') === true,
      redirectDisabled: get(storage, 'redirect', 'disable') === true,
      cache: { blobdescriptor: cacheKind ?? 'none', size: positive(get(storage, 'cache', 'blobdescriptorsize'), 'storage.cache.blobdescriptorsize', 10000) },
      readOnly: get(storage, 'maintenance', 'readonly', 'enabled') === true,
      uploadPurging: {
        enabled: get(storage, 'maintenance', 'uploadpurging', 'enabled') !== false,
        ageMs: dur(get(storage, 'maintenance', 'uploadpurging', 'age'), 168 * 3600e3),
        intervalMs: dur(get(storage, 'maintenance', 'uploadpurging', 'interval'), 24 * 3600e3),
        dryRun: get(storage, 'maintenance', 'uploadpurging', 'dryrun') === true,
      },
      gcWriteWaitMs: dur(get(storage, 'maintenance', 'garbagecollect', 'writewait'), 60e3),
    },
    http: {
      addr: String(get(t, 'http', 'addr') ?? ':5000'),
      net: (get(t, 'http', 'net') ?? 'tcp') as 'tcp' | 'unix',
      prefix: String(get(t, 'http', 'prefix') ?? '/'),
      host: String(get(t, 'http', 'host') ?? ''),
      secret,
      relativeUrls: get(t, 'http', 'relativeurls') === true,
      // Unset: drain for at most 60 s, so a stuck client cannot hold a stop forever.
      drainTimeoutMs: dur(get(t, 'http', 'draintimeout'), 60_000),
      headers,
      blobMaxAgeSeconds: Math.floor(dur(get(t, 'http', 'blobmaxage'), 7 * 24 * 3600e3) / 1000),
      readTimeoutMs: dur(get(t, 'http', 'timeout', 'read'), 60_000) || 60_000,
      idleTimeoutMs: dur(get(t, 'http', 'timeout', 'idle'), 65_000) || 65_000,
      stallTimeoutMs: dur(get(t, 'http', 'timeout', 'stall'), 120_000),
      maxUploads: nonNegative(get(t, 'http', 'limits', 'maxuploads'), 'http.limits.maxuploads', 256),
      maxManifestBytes: nonNegative(get(t, 'http', 'limits', 'maxmanifestbytes'), 'http.limits.maxmanifestbytes', 4 << 20) || (4 << 20),
      tls,
    },
    redis: t.redis as Record<string, unknown> | undefined,
    auth,
    validation: {
      disabled: valDisabled,
      urlsAllow: (get(t, 'validation', 'manifests', 'urls', 'allow') ?? []) as string[],
      urlsDeny: (get(t, 'validation', 'manifests', 'urls', 'deny') ?? []) as string[],
    },
    catalogMaxEntries: positive(get(t, 'catalog', 'maxentries'), 'catalog.maxentries', 1000),
    tagsMaxTags: positive(get(t, 'tags', 'maxtags'), 'tags.maxtags', 1000),
  };
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  const path = file ?? env.REGISTRY_CONFIGURATION_PATH;
  if (!path) throw new ConfigError('', 'no configuration file given (registry serve CONFIG, or REGISTRY_CONFIGURATION_PATH)');
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new ConfigError('', `cannot read ${path}: ${(e as Error).message}`); }
  return parseConfig(text, env);
}
