// Builds a running registry from a Config: driver, cache, storage, HTTP.
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createDriver } from '../drivers/factory.js';
import type { StorageDriver } from '../drivers/driver.js';
import { createApp } from './api/app.js';
import { type BlobDescriptorCache, MemoryDescriptorCache, NoopDescriptorCache } from './cache/descriptorCache.js';
import type { Config } from './config/config.js';
import { ConfigError } from './config/schema.js';
import { Registry } from './storage/registry.js';
import { createRedis, type RedisClient } from './cache/redisClient.js';
import { GC_LOCK, holdRedisLock, uploadLockKey } from './cache/redisLock.js';
import type { AccessController } from './auth/access.js';
import { HtpasswdController } from './auth/htpasswd.js';
import { TokenController } from './auth/token.js';
import { RedisDescriptorCache } from './cache/redisDescriptorCache.js';
import { UploadPurger } from './storage/uploadPurger.js';

export interface RunningRegistry {
  server: http.Server;
  registry: Registry;
  driver: StorageDriver;
  /** http://host:port of the listener (tcp only). */
  url: string;
  close(): Promise<void>;
}

export function parseAddr(addr: string): { host?: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new ConfigError('http.addr', `must be host:port or :port, got ${addr}`);
  const host = m[1] ?? m[2];
  return { host: host || undefined, port: Number(m[3]) };
}

function createCache(config: Config, log: Logger): { cache: BlobDescriptorCache; redis?: RedisClient } {
  switch (config.storage.cache.blobdescriptor) {
    case 'inmemory': return { cache: new MemoryDescriptorCache(config.storage.cache.size) };
    case 'redis': {
      const redis = createRedis(config.redis ?? {});
      return { cache: new RedisDescriptorCache(redis, log), redis };
    }
    default: return { cache: new NoopDescriptorCache() };
  }
}

export async function startRegistry(config: Config, log: Logger): Promise<RunningRegistry> {
  let driver: StorageDriver;
  try {
    driver = createDriver(config.storage.driver, config.storage.params, log);
  } catch (e) {
    throw new ConfigError(`storage.${config.storage.driver}`, (e as Error).message);
  }
  const compile = (list: string[], key: string) => list.map((src) => {
    try { return new RegExp(src); } catch (e) { throw new ConfigError(key, `invalid regular expression ${src}: ${(e as Error).message}`); }
  });
  const urlPolicy = config.validation.disabled ? null : {
    allow: compile(config.validation.urlsAllow, 'validation.manifests.urls.allow'),
    deny: compile(config.validation.urlsDeny, 'validation.manifests.urls.deny'),
  };
  const created = createCache(config, log);
  const cache = created.cache;
  // The redis section also coordinates the cluster (the purge lock), cache or not.
  let redis = created.redis;
  if (!redis && config.redis) {
    redis = createRedis(config.redis);
  }
  const registry = new Registry(driver, cache, { urlPolicy, maxManifestBytes: config.http.maxManifestBytes });
  const gcRedis = redis;
  let access: AccessController | undefined;
  try {
    if (config.auth?.htpasswd) access = new HtpasswdController(config.auth.htpasswd.realm, config.auth.htpasswd.path);
    if (config.auth?.token) access = new TokenController(config.auth.token);
  } catch (e) {
    throw new ConfigError(config.auth?.htpasswd ? 'auth.htpasswd' : 'auth.token', (e as Error).message);
  }
  const app = createApp(registry, config, log, {
    access,
    // Fail open: if Redis is unreachable, the collector cannot hold its lock
    // either, and it stops before its next deletion.
    gcActive: gcRedis ? async () => (await gcRedis.exists(GC_LOCK).catch(() => 0)) === 1 : undefined,
    // Fail open here too: with Redis away, nodes serialise within themselves only.
    uploadLock: gcRedis ? (uuid) => holdRedisLock(gcRedis, uploadLockKey(uuid), 60_000).catch(() => ({ release: async () => {} })) : undefined,
  });
  const server = config.http.tls
    ? https.createServer({
      connectionsCheckingInterval: Math.min(1000, config.http.readTimeoutMs),
      cert: readFileSync(config.http.tls.certificate),
      key: readFileSync(config.http.tls.key),
      ...(config.http.tls.clientcas.length ? { ca: config.http.tls.clientcas.map((f) => readFileSync(f)), requestCert: true, rejectUnauthorized: true } : {}),
      minVersion: (config.http.tls.minimumtls?.replace('tls', 'TLSv') ?? 'TLSv1.2') as 'TLSv1.2',
    }, app)
    : http.createServer({ connectionsCheckingInterval: Math.min(1000, config.http.readTimeoutMs) }, app);
  // Slow clients cannot hold a connection forever: headers within
  // http.timeout.read, keep-alive idle at most http.timeout.idle, and a
  // request whose socket moves no byte for http.timeout.stall is cut. The
  // whole request has no limit: uploads of large blobs take what they take.
  server.keepAliveTimeout = config.http.idleTimeoutMs;
  server.headersTimeout = config.http.readTimeoutMs;
  server.requestTimeout = 0;
  if (config.http.stallTimeoutMs > 0) {
    server.setTimeout(config.http.stallTimeoutMs, (socket) => {
      log.info({ remote: socket.remoteAddress }, 'connection stalled: closed');
      socket.destroy();
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (config.http.net === 'unix') server.listen(config.http.addr, resolve);
    else {
      const { host, port } = parseAddr(config.http.addr);
      server.listen(port, host, resolve);
    }
  });
  const a = server.address();
  const url = typeof a === 'object' && a
    ? `${config.http.tls ? 'https' : 'http'}://${(a as AddressInfo).family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
    : String(a);
  log.info({ addr: url, storage: config.storage.driver }, 'listening');
  const up = config.storage.uploadPurging;
  const purger = up.enabled && !config.storage.readOnly
    ? new UploadPurger(driver, { ageMs: up.ageMs, intervalMs: up.intervalMs, dryRun: up.dryRun }, log, redis)
    : null;
  purger?.start();
  return {
    server, registry, driver, url,
    close: () => new Promise<void>((resolve) => {
      void purger?.stop();
      // Connections that finish their request while draining close at once.
      const idle = setInterval(() => server.closeIdleConnections(), 50);
      server.close(() => { clearInterval(idle); redis?.disconnect(); resolve(); });
      server.closeIdleConnections();
      // draintimeout 0 means no draining, as in distribution: cut connections now.
      setTimeout(() => server.closeAllConnections(), config.http.drainTimeoutMs).unref();
    }),
  };
}
