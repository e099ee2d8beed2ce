// Builds a running registry from a Config: driver, cache, storage, HTTP.
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { createDriver } from '../drivers/factory.js';
import type { StorageDriver } from '../drivers/driver.js';
import { createApp } from './api/app.js';
import { BodyRateGuard } from './api/bodyRate.js';
import { type BlobDescriptorCache, MemoryDescriptorCache, NoopDescriptorCache } from './cache/descriptorCache.js';
import type { Config, TLSConfig } from './config/config.js';
import { ConfigError } from './config/schema.js';
import { nodeVersion } from './config/tls.js';
import { Registry } from './storage/registry.js';
import { createRedis, type RedisClient } from './cache/redisClient.js';
import { GC_LOCK, RedisLocker, holdRedisLock, uploadLockKey } from './cache/redisLock.js';
import type { AccessController } from './auth/access.js';
import { HtpasswdController } from './auth/htpasswd.js';
import { SillyController } from './auth/silly.js';
import { TokenController } from './auth/token.js';
import { RedisDescriptorCache } from './cache/redisDescriptorCache.js';
import { UploadPurger } from './storage/uploadPurger.js';
import { applyStorageMiddleware } from './middleware/storageMiddleware.js';

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

function accessController(config: Config, log: Logger): AccessController | undefined {
  const a = config.auth;
  const kind = a?.htpasswd ? 'htpasswd' : a?.token ? 'token' : a?.silly ? 'silly' : undefined;
  try {
    if (a?.htpasswd) return new HtpasswdController(a.htpasswd.realm, a.htpasswd.path, log);
    if (a?.token) return new TokenController(a.token);
    if (a?.silly) {
      log.warn('auth.silly lets in any request that carries an Authorization header: for development only');
      return new SillyController(a.silly.realm, a.silly.service);
    }
  } catch (e) {
    throw new ConfigError(`auth.${kind}`, (e as Error).message);
  }
  return undefined;
}

/** https.ServerOptions for http.tls: certificate, client CAs and clientauth, versions, cipher suites. */
export function tlsOptions(t: TLSConfig, key = 'http.tls'): https.ServerOptions {
  const read = (f: string, what: string) => {
    try { return readFileSync(f); } catch (e) { throw new ConfigError(`${key}.${what}`, `cannot read ${f}: ${(e as Error).message}`); }
  };
  const opts: https.ServerOptions = {
    cert: read(t.certificate, 'certificate'),
    key: read(t.key, 'key'),
    minVersion: nodeVersion(t.minimumtls),
    ciphers: t.ciphers,
    honorCipherOrder: true,
  };
  if (t.clientcas.length) {
    opts.ca = t.clientcas.map((f) => read(f, 'clientcas'));
    opts.requestCert = true;
    // Only require-and-verify is enforced by OpenSSL itself; the rest are checked per connection.
    opts.rejectUnauthorized = t.clientauth === 'require-and-verify-client-cert';
  }
  return opts;
}

/** distribution 3's clientauth modes OpenSSL cannot express alone. */
function enforceClientAuth(server: https.Server, mode: TLSConfig['clientauth'], log: Logger): void {
  if (mode === 'require-and-verify-client-cert' || mode === 'request-client-cert') return;
  server.on('secureConnection', (sock: TLSSocket) => {
    const cert = sock.getPeerCertificate();
    const has = cert && Object.keys(cert).length > 0;
    const refuse = mode === 'require-any-client-cert' ? !has : has && !sock.authorized;
    if (refuse) {
      log.info({ remote: sock.remoteAddress, mode, reason: sock.authorizationError }, 'TLS client certificate refused');
      sock.destroy();
    }
  });
}

export async function startRegistry(config: Config, log: Logger): Promise<RunningRegistry> {
  let driver: StorageDriver;
  try {
    driver = createDriver(config.storage.driver, config.storage.params, log);
  } catch (e) {
    throw new ConfigError(`storage.${config.storage.driver}`, (e as Error).message);
  }
  const middleware = applyStorageMiddleware(driver, config.middleware.storage, log);
  driver = middleware.driver;
  if (driver.init) {
    try {
      await driver.init({ log });
    } catch (e) {
      throw new ConfigError(`storage.${config.storage.driver}`, (e as Error).message);
    }
  }
  const compile = (list: string[], key: string) => list.map((src) => {
    try { return new RegExp(src); } catch (e) { throw new ConfigError(key, `invalid regular expression ${src}: ${(e as Error).message}`); }
  });
  const v = config.validation;
  const urlPolicy = v.enabled ? { allow: compile(v.urlsAllow, 'validation.manifests.urls.allow'), deny: compile(v.urlsDeny, 'validation.manifests.urls.deny') } : null;
  const created = createCache(config, log);
  const cache = created.cache;
  // The redis section also coordinates the cluster (the purge lock), cache or not.
  let redis = created.redis;
  if (!redis && config.redis) redis = createRedis(config.redis);
  const registry = new Registry(driver, cache, {
    urlPolicy, maxManifestBytes: config.http.maxManifestBytes, tagConcurrency: config.storage.tagConcurrency,
    indexPlatforms: v.indexPlatforms, platformList: v.platformList,
    // A manifest PUT and a DELETE of its digest serialise across the cluster.
    locks: redis ? new RedisLocker(redis, log) : undefined,
  });
  const gcRedis = redis;
  const access = accessController(config, log);
  const app = createApp(registry, config, log, {
    access,
    // Fail open: if Redis is unreachable, the collector cannot hold its lock
    // either, and it stops before its next deletion.
    gcActive: gcRedis ? async () => (await gcRedis.exists(GC_LOCK).catch(() => 0)) === 1 : undefined,
    // Fail open here too: with Redis away, nodes serialise within themselves only.
    uploadLock: gcRedis ? (uuid) => holdRedisLock(gcRedis, uploadLockKey(uuid), 60_000).catch(() => ({ release: async () => {} })) : undefined,
  });
  const common = { connectionsCheckingInterval: Math.min(1000, config.http.readTimeoutMs) };
  const server = config.http.tls
    ? https.createServer({ ...common, ...tlsOptions(config.http.tls) }, app)
    : http.createServer(common, app);
  if (config.http.tls && server instanceof https.Server) enforceClientAuth(server, config.http.tls.clientauth, log);
  // Slow clients cannot hold a connection forever: headers within
  // http.timeout.read, keep-alive idle at most http.timeout.idle, a request
  // whose socket moves no byte for http.timeout.stall is cut, and so is a
  // body slower than http.limits.minbodyrate. The whole request has no limit:
  // uploads of large blobs take what they take.
  server.keepAliveTimeout = config.http.idleTimeoutMs;
  server.headersTimeout = config.http.readTimeoutMs;
  server.requestTimeout = 0;
  if (config.http.stallTimeoutMs > 0) {
    server.setTimeout(config.http.stallTimeoutMs, (socket) => {
      log.info({ remote: socket.remoteAddress }, 'connection stalled: closed');
      socket.destroy();
    });
  }
  const bodyRate = new BodyRateGuard(config.http.minBodyRate, config.http.minBodyRateGraceMs, log);
  server.on('request', (req: http.IncomingMessage) => {
    if (req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined) bodyRate.watch(req);
  });
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
      bodyRate.stop();
      middleware.stop();
      // Connections that finish their request while draining close at once.
      const idle = setInterval(() => server.closeIdleConnections(), 50);
      server.close(() => { clearInterval(idle); redis?.disconnect(); resolve(); });
      server.closeIdleConnections();
      // draintimeout 0 means no draining, as in distribution: cut connections now.
      setTimeout(() => server.closeAllConnections(), config.http.drainTimeoutMs).unref();
    }),
  };
}
