// Builds a running registry from a Config: driver, cache, storage, HTTP.
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createDriver } from '../drivers/factory.js';
import type { StorageDriver } from '../drivers/driver.js';
import { createApp } from './api/app.js';
import { BodyRateGuard } from './api/bodyRate.js';
import { type BlobDescriptorCache, MemoryDescriptorCache, NoopDescriptorCache } from './cache/descriptorCache.js';
import type { Config } from './config/config.js';
import { enforceClientAuth, parseAddr, tlsOptions } from './listen.js';
import { ConfigError } from './config/schema.js';
import { Registry } from './storage/registry.js';
import { createRedis, redisOptions, type RedisClient, waitReady } from './cache/redisClient.js';
import { RedisLocker, holdRedisLock, proxyFetchLockKey, uploadLockKey } from './cache/redisLock.js';
import { gcReference } from './cache/gcJournal.js';
import type { AccessController } from './auth/access.js';
import { HtpasswdController } from './auth/htpasswd.js';
import { SillyController } from './auth/silly.js';
import { TokenController } from './auth/token.js';
import { RedisDescriptorCache } from './cache/redisDescriptorCache.js';
import { UploadPurger } from './storage/uploadPurger.js';
import { applyStorageMiddleware } from './middleware/storageMiddleware.js';
import type { App } from './api/context.js';
import { type DebugServer, startDebugServer } from './debug/debugServer.js';
import { HealthChecks } from './health/checks.js';
import { InstrumentedCache } from './metrics/instrumentedCache.js';
import { InstrumentedDriver } from './metrics/instrumentedDriver.js';
import { instrumentRedis } from './metrics/instrumentedRedis.js';
import { RegistryMetrics } from './metrics/metrics.js';
import { tracer } from './tracing/tracing.js';
import { ProxyRegistry } from './proxy/proxyRegistry.js';
import { ProxyObserver } from './proxy/proxyObserver.js';
import { ProxyExpiryScheduler } from './proxy/proxyExpiryScheduler.js';
import { proxyMetrics } from './metrics/proxyMetrics.js';
import { Notifier } from './notifications/notifier.js';
import { notificationMetrics } from './metrics/notificationMetrics.js';

export interface RunningRegistry {
  server: http.Server;
  registry: Registry;
  driver: StorageDriver;
  app: App;
  /** The pull-through cache's expiry (proxy.ttl, proxy.maxsize), when it has work. */
  expiry?: ProxyExpiryScheduler;
  /** The debug listener (http.debug), when configured. */
  debug?: DebugServer;
  /** http://host:port of the listener (tcp only). */
  url: string;
  close(): Promise<void>;
}

function createCache(config: Config, log: Logger, metrics: RegistryMetrics | null): { cache: BlobDescriptorCache; redis?: RedisClient } {
  switch (config.storage.cache.blobdescriptor) {
    case 'inmemory': return { cache: new MemoryDescriptorCache(config.storage.cache.size) };
    case 'redis': {
      const redis = createRedis(config.redis ?? {});
      return { cache: new RedisDescriptorCache(redis, log, metrics ? () => metrics.cacheErrors.inc() : undefined), redis };
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

export interface StartOptions {
  /** The version /debug/vars reports. */
  version?: string;
  /** The combined access log's destination (default stdout; null: none). */
  accessLog?: NodeJS.WritableStream | null;
}

export async function startRegistry(config: Config, log: Logger, opts: StartOptions = {}): Promise<RunningRegistry> {
  const metrics = config.http.debug?.prometheus.enabled ? new RegistryMetrics(config.http.debug.prometheus.repositoryLabels) : null;
  const tr = tracer();
  let driver: StorageDriver;
  const driverLabel = config.storage.driver === 's3' ? 's3aws' : config.storage.driver;
  try {
    driver = await createDriver(config.storage.driver, config.storage.params, log, metrics ? {
      retry: () => metrics.storageRetries.labels(driverLabel).inc(),
      throttled: () => metrics.storageThrottled.labels(driverLabel).inc(),
    } : undefined);
  } catch (e) {
    throw new ConfigError(`storage.${config.storage.driver}`, (e as Error).message);
  }
  if (metrics || tr) driver = new InstrumentedDriver(driver, metrics, tr);
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
  const created = createCache(config, log, metrics);
  const cache = metrics ? new InstrumentedCache(created.cache, metrics) : created.cache;
  // The redis section also coordinates the cluster (the purge lock), cache or not.
  let redis = created.redis;
  if (!redis && config.redis) redis = createRedis(config.redis);
  if (redis) {
    instrumentRedis(redis, metrics, tr);
    // Without an offline queue, commands fail until the client is ready (a
    // Cluster needs its slot map first): wait for it, at most dialtimeout, so
    // the first requests do not all fall back to storage. A Redis that is down
    // does not stop the start: the cache reads as misses until it is back.
    const dial = redisOptions(config.redis ?? {}).options.connectTimeout ?? 5000;
    try { await waitReady(redis, dial); } catch {
      log.warn({ waitedMs: dial }, 'redis is not reachable at start; serving from storage until it is');
    }
  }
  const registry = new Registry(driver, cache, {
    urlPolicy, maxManifestBytes: config.http.maxManifestBytes, tagConcurrency: config.storage.tagConcurrency, tagDigestIndex: config.storage.tagDigestIndex,
    indexPlatforms: v.indexPlatforms, platformList: v.platformList,
    // A manifest PUT and a DELETE of its digest serialise across the cluster.
    locks: redis ? new RedisLocker(redis, log, metrics ? (ms) => { metrics.lockWaits.inc(); metrics.lockWaitSeconds.observe(ms / 1000); } : undefined) : undefined,
  });
  if (config.proxy) {
    const lockRedis = redis;
    registry.proxy = new ProxyRegistry(config.proxy, log, new ProxyObserver(metrics ? proxyMetrics(metrics) : undefined), driver,
      lockRedis ? (key) => holdRedisLock(lockRedis, proxyFetchLockKey(key), 60_000) : undefined);
    for (const r of config.proxy.remotes) log.info({ prefix: r.prefix || '(every repository)', upstream: new URL(r.remoteurl).host }, 'pull-through cache of an upstream registry');
  }
  const gcRedis = redis;
  let notifier: Notifier | null;
  try {
    notifier = await Notifier.create(config, log, redis, metrics ? notificationMetrics(metrics) : undefined);
  } catch (e) {
    redis?.disconnect();
    throw new ConfigError('notifications.queue.directory', (e as Error).message);
  }
  const access = accessController(config, log);
  const health = HealthChecks.fromConfig(config.health, driver, log, metrics ?? undefined);
  const { express: handler, app } = createApp(registry, config, log, {
    access, metrics, tracer: tr, health: health.size ? health : undefined, accessLog: opts.accessLog, notifier: notifier ?? undefined,
    // Fail open: if Redis is unreachable, the collector cannot hold its lock
    // either, and it stops before its next deletion.
    gcReference: gcRedis ? (items) => gcReference(gcRedis, items).catch(() => 'go' as const) : undefined,
    // Fail open here too: with Redis away, nodes serialise within themselves only.
    uploadLock: gcRedis ? (uuid) => holdRedisLock(gcRedis, uploadLockKey(uuid), 60_000).catch(() => ({ release: async () => {} })) : undefined,
  });
  const common = { connectionsCheckingInterval: Math.min(1000, config.http.readTimeoutMs) };
  const server = config.http.tls
    ? https.createServer({ ...common, ...tlsOptions(config.http.tls) }, handler)
    : http.createServer(common, handler);
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
  const bodyRate = new BodyRateGuard(config.http.minBodyRate, config.http.minBodyRateGraceMs, log, metrics ? () => metrics.bodyRateCuts.inc() : undefined);
  server.on('request', (req: http.IncomingMessage) => {
    if (req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined) bodyRate.watch(req);
  });
  health.start();
  let debug: DebugServer | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (config.http.net === 'unix') server.listen(config.http.addr, resolve);
      else {
        const { host, port } = parseAddr(config.http.addr);
        server.listen(port, host, resolve);
      }
    });
    if (config.http.debug) debug = await startDebugServer(config.http.debug, { app, version: opts.version ?? 'unknown', redis }, log);
  } catch (e) {
    health.stop();
    server.close();
    await notifier?.stop();
    throw e;
  }
  notifier?.start();
  const a = server.address();
  const url = typeof a === 'object' && a
    ? `${config.http.tls ? 'https' : 'http'}://${(a as AddressInfo).family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
    : String(a);
  log.info({ addr: url, storage: config.storage.driver }, 'listening');
  const up = config.storage.uploadPurging;
  const purger = up.enabled && !config.storage.readOnly
    ? new UploadPurger(driver, { ageMs: up.ageMs, intervalMs: up.intervalMs, dryRun: up.dryRun }, log, redis,
      metrics ? (ok, secs, sum) => metrics.maintenance('purge-uploads', ok, secs, { uploads: sum?.purged ?? 0 }, sum?.bytes ?? 0) : undefined)
    : null;
  purger?.start();
  const proxy = registry.proxy instanceof ProxyRegistry ? registry.proxy : undefined;
  const expiry = proxy?.expires && !config.storage.readOnly
    ? new ProxyExpiryScheduler(registry, proxy, log, redis,
      metrics ? (ok, secs, s) => metrics.maintenance('proxy-expiry', ok, secs, { manifests: s?.manifestsExpired ?? 0, blobs: (s?.blobsExpired ?? 0) + (s?.blobsEvicted ?? 0) }, s?.bytesDeleted ?? 0) : undefined)
    : null;
  expiry?.start();
  return {
    server, registry, driver, url, app, debug, expiry: expiry ?? undefined,
    close: () => new Promise<void>((resolve) => {
      void purger?.stop();
      void expiry?.stop();
      bodyRate.stop();
      middleware.stop();
      health.stop();
      void debug?.close();
      // Connections that finish their request while draining close at once.
      const idle = setInterval(() => server.closeIdleConnections(), 50);
      // Requests still draining record their events before the queues close.
      server.close(() => { clearInterval(idle); void (notifier?.stop() ?? Promise.resolve()).catch(() => {}).then(() => { redis?.disconnect(); resolve(); }); });
      server.closeIdleConnections();
      // draintimeout 0 means no draining, as in distribution: cut connections now.
      setTimeout(() => server.closeAllConnections(), config.http.drainTimeoutMs).unref();
    }),
  };
}
