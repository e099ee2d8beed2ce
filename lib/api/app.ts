// The Express application: headers, access log, the /v2 router.
import type { AccessController } from '../auth/access.js';
import express from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { Registry } from '../storage/registry.js';
import { KeyedMutex } from '../storage/locks.js';
import type { App } from './context.js';
import { observeRequest } from './observe.js';
import { sendError } from './errors.js';
import { v2Router } from './router.js';
import { err } from '../errors.js';
import { randomSecret } from './uploadState.js';

export interface AppOptions extends Partial<Pick<App, 'gcReference' | 'access' | 'uploadLock' | 'metrics' | 'tracer' | 'health' | 'notifier'>> {
  /** Where the combined-format access log goes (stdout, as distribution), or null for none. */
  accessLog?: NodeJS.WritableStream | null;
}

export interface RegistryApp { express: express.Express; app: App }

export function createApp(registry: Registry, config: Config, log: Logger, opts: AppOptions = {}): RegistryApp {
  let secret: Buffer;
  if (config.http.secret) {
    secret = Buffer.from(config.http.secret);
  } else {
    secret = randomSecret();
    log.warn('http.secret is not set: generated a random one. Upload URLs from this process will be refused by every other registry process (BLOB_UPLOAD_INVALID). Behind a load balancer, give every node the same http.secret (or REGISTRY_HTTP_SECRET).');
  }
  const app: App = {
    registry, config, log, uploadLocks: new KeyedMutex(), secret,
    gcReference: opts.gcReference, access: opts.access, uploadLock: opts.uploadLock,
    metrics: opts.metrics ?? null, tracer: opts.tracer ?? null, health: opts.health, notifier: opts.notifier,
    stats: { inFlight: 0, uploads: 0 },
  };
  const accessLog = config.log.accessLog ? (opts.accessLog === undefined ? process.stdout : opts.accessLog) : null;
  const e = express();
  e.disable('x-powered-by');
  e.disable('etag');
  e.set('query parser', 'simple');
  e.use(observeRequest(app, accessLog));
  e.use((req, res, next) => {
    for (const [k, v] of Object.entries(config.http.headers)) res.setHeader(k, v);
    // distribution's health.Handler: while a check fails, every API request is 503.
    if (app.health && !app.health.healthy) {
      res.setHeader('Retry-After', '10');
      sendError(res, err('UNAVAILABLE', 'health check failed: please see /debug/health', app.health.failing(), 503), log, req.method);
      return;
    }
    next();
  });
  const prefix = config.http.prefix.replace(/\/+$/, '');
  if (prefix) e.use(prefix, v2Router(app));
  else e.use(v2Router(app));
  e.use((req, res) => {
    res.status(404).type('text/plain').end('404 page not found\n');
  });
  // Whatever Express itself catches (a malformed URL, a throwing middleware)
  // is answered as an OCI error, never as Express's HTML page.
  e.use((e2: unknown, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const status = (e2 as { status?: number })?.status;
    sendError(res, status && status >= 400 && status < 500 ? err('UNSUPPORTED', (e2 as Error).message, undefined, status) : e2, log, req.method);
  });
  return { express: e, app };
}
