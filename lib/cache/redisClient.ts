// A Redis client from distribution's `redis:` section, in either of the forms
// found in the wild: 2.8's (addr, password, db, dialtimeout, readtimeout,
// writetimeout, pool, tls) and 3.x's (addrs, username, poolsize, mastername...).
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { parseDuration } from '../config/duration.js';
import { ConfigError } from '../config/schema.js';

type RedisSection = Record<string, unknown>;

function hostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(addr);
  if (!m) throw new ConfigError('redis.addr', `must be host:port, got ${addr}`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

export function redisOptions(cfg: RedisSection): { addrs: string[]; options: RedisOptions; mastername?: string } {
  const addrs = Array.isArray(cfg.addrs) && cfg.addrs.length ? (cfg.addrs as string[]) : typeof cfg.addr === 'string' ? [cfg.addr] : [];
  if (addrs.length === 0) throw new ConfigError('redis', 'needs addr (or addrs)');
  const ms = (v: unknown) => (v === undefined ? undefined : parseDuration(v) ?? undefined);
  const read = ms(cfg.readtimeout);
  const write = ms(cfg.writetimeout);
  const tls = cfg.tls as { enabled?: boolean } | undefined;
  const options: RedisOptions = {
    username: typeof cfg.username === 'string' ? cfg.username : undefined,
    password: typeof cfg.password === 'string' && cfg.password !== '' ? cfg.password : undefined,
    db: typeof cfg.db === 'number' ? cfg.db : 0,
    connectTimeout: ms(cfg.dialtimeout) ?? 5000,
    // A slow Redis must not slow requests: give up and go to storage.
    commandTimeout: Math.max(read ?? 0, write ?? 0) || 1000,
    // Fail at once while disconnected instead of queueing (bounded: nothing queued).
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Reconnect forever, backing off to 2 s.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: false,
    ...(tls?.enabled ? { tls: {} } : {}),
  };
  return { addrs, options, mastername: typeof cfg.mastername === 'string' ? cfg.mastername : undefined };
}

export type RedisClient = Redis | Cluster;

export function createRedis(cfg: RedisSection): RedisClient {
  const { addrs, options, mastername } = redisOptions(cfg);
  const client: RedisClient = mastername
    ? new Redis({ ...options, name: mastername, sentinels: addrs.map(hostPort), sentinelPassword: typeof cfg.sentinelpassword === 'string' ? cfg.sentinelpassword : undefined })
    : addrs.length > 1
      ? new Cluster(addrs.map(hostPort), { redisOptions: options, enableOfflineQueue: false })
      : new Redis({ ...options, ...hostPort(addrs[0]) });
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
