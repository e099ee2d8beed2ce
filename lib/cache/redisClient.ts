// A Redis client from distribution's `redis:` section, in the forms found in
// the wild, on ioredis:
// - 2.8's: addr, password, db, dialtimeout, readtimeout, writetimeout, pool,
//   tls.enabled (what Harbor still writes; Harbor's fork adds sentinels as a
//   comma-separated addr with sentinelMasterSet);
// - 3.x's go-redis UniversalOptions: addrs (one address: a server; several: a
//   Redis Cluster; with mastername: Sentinel), username, clientname,
//   protocol, sentinel credentials, retry backoff, readonly/route* (replica
//   reads in a cluster), and tls with certificate, key and CAs.
// Pool sizes have no meaning here: ioredis multiplexes one connection per
// node, so they are accepted and do nothing (docs/configuration.md).
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { ConfigError } from '../config/schema.js';

type RedisSection = Record<string, unknown>;

function hostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(addr.trim());
  if (!m) throw new ConfigError('redis.addr', `must be host:port, got ${addr}`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

function tlsOf(cfg: RedisSection): ConnectionOptions | undefined {
  const t = (cfg.tls ?? {}) as { enabled?: boolean; certificate?: string; key?: string; clientcas?: string[]; rootcas?: string[]; insecureskipverify?: boolean };
  const cas = [...(t.rootcas ?? []), ...(t.clientcas ?? [])];
  // 3.x turns TLS on by giving files; 2.8 by enabled: true.
  if (!t.enabled && !t.certificate && !t.key && cas.length === 0) return undefined;
  if (Boolean(t.certificate) !== Boolean(t.key)) throw new ConfigError('redis.tls', 'certificate and key go together');
  const read = (f: string, key: string) => {
    try { return readFileSync(f); } catch (e) { throw new ConfigError(`redis.tls.${key}`, `cannot read ${f}: ${(e as Error).message}`); }
  };
  return {
    ...(t.certificate ? { cert: read(t.certificate, 'certificate'), key: read(t.key!, 'key') } : {}),
    // go-redis verifies the server against the system roots; CAs given here
    // (rootcas, and clientcas, which operators give for the same purpose) are trusted too.
    ...(cas.length ? { ca: cas.map((f) => read(f, 'clientcas')) } : {}),
    rejectUnauthorized: t.insecureskipverify !== true,
  };
}

export interface RedisSetup {
  mode: 'standalone' | 'cluster' | 'sentinel';
  addrs: string[];
  options: RedisOptions;
  mastername?: string;
  tls?: ConnectionOptions;
}

export function redisOptions(cfg: RedisSection): RedisSetup {
  const list = Array.isArray(cfg.addrs) && cfg.addrs.length ? (cfg.addrs as string[]) : typeof cfg.addr === 'string' ? cfg.addr.split(',') : [];
  const addrs = list.map((a) => a.trim()).filter(Boolean);
  if (addrs.length === 0) throw new ConfigError('redis', 'needs addr (or addrs)');
  addrs.forEach(hostPort);
  const ms = (v: unknown) => (typeof v === 'number' ? v : undefined);
  const read = ms(cfg.readtimeout);
  const write = ms(cfg.writetimeout);
  const minBackoff = ms(cfg.minretrybackoff) ?? 50;
  const maxBackoff = ms(cfg.maxretrybackoff) ?? 2000;
  const tls = tlsOf(cfg);
  const options: RedisOptions = {
    username: typeof cfg.username === 'string' && cfg.username !== '' ? cfg.username : undefined,
    password: typeof cfg.password === 'string' && cfg.password !== '' ? cfg.password : undefined,
    db: typeof cfg.db === 'number' ? cfg.db : 0,
    connectionName: typeof cfg.clientname === 'string' && cfg.clientname !== '' ? cfg.clientname : undefined,
    protocol: cfg.protocol === 3 ? 3 : 2,
    connectTimeout: ms(cfg.dialtimeout) ?? 5000,
    // A slow Redis must not slow requests: give up and go to storage.
    commandTimeout: Math.max(read ?? 0, write ?? 0) || 1000,
    // Fail at once while disconnected instead of queueing (bounded: nothing queued).
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Reconnect forever, backing off from minretrybackoff to maxretrybackoff.
    retryStrategy: (times) => Math.min(minBackoff * 2 ** Math.min(times, 16), maxBackoff),
    lazyConnect: false,
    ...(tls ? { tls } : {}),
  };
  const mastername = (typeof cfg.mastername === 'string' && cfg.mastername) || (typeof cfg.sentinelMasterSet === 'string' && cfg.sentinelMasterSet) || undefined;
  const mode = mastername ? 'sentinel' : addrs.length > 1 ? 'cluster' : 'standalone';
  return { mode, addrs, options, mastername, tls };
}

export type RedisClient = Redis | Cluster;

export function createRedis(cfg: RedisSection): RedisClient {
  const s = redisOptions(cfg);
  let client: RedisClient;
  if (s.mode === 'sentinel') {
    client = new Redis({
      ...s.options,
      name: s.mastername,
      sentinels: s.addrs.map(hostPort),
      sentinelUsername: typeof cfg.sentinelusername === 'string' ? cfg.sentinelusername : undefined,
      sentinelPassword: typeof cfg.sentinelpassword === 'string' ? cfg.sentinelpassword : undefined,
      ...(s.tls ? { enableTLSForSentinelMode: true, sentinelTLS: s.tls } : {}),
    });
  } else if (s.mode === 'cluster') {
    const { retryStrategy, ...nodeOptions } = s.options;
    const cluster: ClusterOptions = {
      redisOptions: nodeOptions,
      enableOfflineQueue: false,
      clusterRetryStrategy: retryStrategy,
      // go-redis: readonly, routebylatency and routerandomly read from replicas too.
      scaleReads: cfg.readonly === true || cfg.routebylatency === true || cfg.routerandomly === true ? 'all' : 'master',
      ...(typeof cfg.maxredirects === 'number' ? { maxRedirections: cfg.maxredirects } : {}),
    };
    client = new Cluster(s.addrs.map(hostPort), cluster);
  } else {
    client = new Redis({ ...s.options, ...hostPort(s.addrs[0]) });
  }
  // Connection errors surface as failed commands, where callers handle them.
  client.on('error', () => {});
  return client;
}

/** Resolves once the client is connected (commands fail fast before that: no offline queue). */
export function waitReady(redis: RedisClient, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { redis.removeListener('ready', onReady); reject(new Error(`redis not ready after ${ms} ms`)); }, ms);
    const onReady = () => { clearTimeout(t); resolve(); };
    redis.once('ready', onReady);
  });
}
