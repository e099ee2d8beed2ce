// http.debug: a second listener, never reachable through the API's, for
// operators and their tools: /debug/health (distribution's: 200 {} or 503
// with the failing checks by name), /debug/live (ours: 200 while the process
// serves, for liveness probes that must not follow the storage), /metrics
// (http.debug.prometheus), and /debug/vars (version, uptime, in-flight
// requests and uploads, cache sizes, Redis state, health states).
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { parseAddr, tlsOptions } from '../listen.js';
import type { App } from '../api/context.js';
import type { RedisClient } from '../cache/redisClient.js';
import { InstrumentedCache } from '../metrics/instrumentedCache.js';
import { MemoryDescriptorCache } from '../cache/descriptorCache.js';
import { RedisDescriptorCache } from '../cache/redisDescriptorCache.js';

export interface DebugServer { server: http.Server; url: string; close(): Promise<void> }

export interface DebugSources {
  app: App;
  version: string;
  redis?: RedisClient;
  /** Extra sections (notification queues, once they exist). */
  vars?: () => Record<string, unknown>;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(s) });
  res.end(s);
}

function cacheVars(app: App): Record<string, unknown> {
  let c = app.registry.cache;
  if (c instanceof InstrumentedCache) c = c.inner;
  if (c instanceof MemoryDescriptorCache) return c.stats();
  if (c instanceof RedisDescriptorCache) return { kind: 'redis', errors: c.errors };
  return { kind: 'none' };
}

export async function startDebugServer(cfg: NonNullable<Config['http']['debug']>, src: DebugSources, log: Logger): Promise<DebugServer> {
  const { app } = src;
  const started = Date.now();
  const metricsPath = cfg.prometheus.enabled && app.metrics ? cfg.prometheus.path : null;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { Allow: 'GET, HEAD' }).end(); return; }
    if (path === '/debug/health') {
      const failing = app.health?.failing() ?? {};
      json(res, Object.keys(failing).length ? 503 : 200, failing);
      return;
    }
    if (path === '/debug/live') { json(res, 200, {}); return; }
    if (metricsPath && path === metricsPath) {
      app.metrics!.registry.metrics().then((text) => {
        res.writeHead(200, { 'Content-Type': app.metrics!.registry.contentType });
        res.end(text);
      }, (e) => { log.error({ err: e }, 'metrics collection failed'); res.writeHead(500).end(); });
      return;
    }
    if (path === '/debug/vars') {
      const r = app.registry;
      void (app.notifier?.vars() ?? Promise.resolve(null)).catch(() => null).then((endpoints) => json(res, 200, {
        version: src.version,
        node: process.version,
        pid: process.pid,
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
        requests: { inFlight: app.stats.inFlight },
        uploads: { inFlight: app.stats.uploads },
        caches: {
          blobDescriptors: cacheVars(app),
          manifests: { entries: r.manifestCache.size, bytes: r.manifestCache.calculatedSize, maxBytes: r.manifestCache.maxSize },
          tagsSeen: { entries: r.tagSeen.size, max: r.tagSeen.max },
          uploadSessions: { entries: r.uploadSessions.size },
        },
        redis: src.redis ? { status: src.redis.status, cluster: 'isCluster' in src.redis && src.redis.isCluster === true } : null,
        health: app.health?.states() ?? [],
        proxy: r.proxy?.vars() ?? null,
        // distribution: registry.notifications.endpoints
        notifications: endpoints ? { endpoints } : null,
        memory: process.memoryUsage(),
        ...(src.vars?.() ?? {}),
      }));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found\n');
  };
  const server = cfg.tls
    ? https.createServer(tlsOptions({ ...cfg.tls, clientauth: 'require-and-verify-client-cert', ciphers: 'DEFAULT' }, 'http.debug.tls'), handler)
    : http.createServer(handler);
  const { host, port } = parseAddr(cfg.addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const a = server.address() as AddressInfo;
  const url = `${cfg.tls ? 'https' : 'http'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  log.info({ addr: url, metrics: metricsPath }, 'debug server listening');
  return {
    server, url,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
