// What every handler gets: the registry, the config and request helpers.
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import type { DriverContext } from '../../drivers/driver.js';
import type { Config } from '../config/config.js';
import type { Registry } from '../storage/registry.js';
import type { KeyedMutex } from '../storage/locks.js';
import type { AccessController } from '../auth/access.js';
import type { Tracer } from '@opentelemetry/api';
import type { HealthChecks } from '../health/checks.js';
import type { RegistryMetrics } from '../metrics/metrics.js';
import { requestId } from './observe.js';
import type { Notifier } from '../notifications/notifier.js';

export interface App {
  registry: Registry;
  config: Config;
  log: Logger;
  uploadLocks: KeyedMutex;
  /** http.secret: signs the upload state in upload URLs. */
  secret: Buffer;
  /** With Redis: what a write that references these items (blob digests,
   *  repo@manifest) does while `registry garbage-collect` runs: go on
   *  (journaled or rescued), wait (one of them is being deleted right now),
   *  or hold (a collector without a journal holds the lock). lib/cache/gcJournal.ts. */
  gcReference?: (items: string[]) => Promise<'go' | 'hold' | 'wait'>;
  /** With Redis: takes the cluster-wide lock of an upload session (null: another node holds it). */
  uploadLock?: (uuid: string) => Promise<{ release(): Promise<void> } | null>;
  /** auth: the access controller; none means everything is open. */
  access?: AccessController;
  /** Prometheus metrics, when http.debug.prometheus is enabled. */
  metrics: RegistryMetrics | null;
  /** The tracer, when OTEL_* asks for traces. */
  tracer: Tracer | null;
  /** The health section's checks (none configured: always healthy). */
  health?: HealthChecks;
  /** Notification endpoints, when any is enabled. */
  notifier?: Notifier;
  /** Requests and upload requests being served now (/debug/vars). */
  stats: { inFlight: number; uploads: number };
}

export interface Params {
  name: string;
  reference?: string;
  digest?: string;
  uuid?: string;
}

export type Handler = (app: App, req: Request, res: Response, params: Params) => Promise<void>;

/** The client's address as distribution's RemoteIP reads it: X-Forwarded-For's first, X-Real-Ip, else the socket's. */
export function remoteIP(req: Request): string {
  const xff = req.headers['x-forwarded-for'];
  const first = (Array.isArray(xff) ? xff[0] : xff)?.split(',')[0].trim();
  if (first) return first;
  const real = req.headers['x-real-ip'];
  if (typeof real === 'string' && real.trim()) return real.trim();
  // A destroyed socket has no address any more.
  return req.socket?.remoteAddress ?? '';
}

/** The request's context for the storage layer, made once per request; its
 *  logger (made only if something logs) carries the request id. */
export function driverContext(app: App, req: Request): DriverContext {
  const r = req as Request & { registryCtx?: DriverContext };
  if (!r.registryCtx) {
    const id = requestId(req);
    let log: Logger | undefined;
    r.registryCtx = {
      requestId: id,
      remoteIP: remoteIP(req),
      get log() { log ??= app.log.child({ 'http.request.id': id }); return log; },
    };
  }
  return r.registryCtx;
}

/** Absolute or relative URL for Location headers, as distribution's urls.Builder. */
export function urlFor(app: App, req: Request, path: string): string {
  const prefix = app.config.http.prefix.replace(/\/+$/, '');
  const full = `${prefix}${path}`;
  if (app.config.http.relativeUrls) return full;
  if (app.config.http.host) return `${app.config.http.host.replace(/\/+$/, '')}${full}`;
  const proto = (req.headers['x-forwarded-proto'] as string | undefined)?.split(',')[0].trim() || (app.config.http.tls ? 'https' : 'http');
  const host = (req.headers['x-forwarded-host'] as string | undefined)?.split(',')[0].trim() || req.headers.host || 'localhost';
  return `${proto}://${host}${full}`;
}
