// The request's side of notifications: who asked (distribution's
// RequestRecord and ActorRecord) and the URLs events link to. Null when no
// endpoint is enabled, so handlers pay nothing then.
import type { Request, Response } from 'express';
import type { Grant } from '../auth/access.js';
import { Bridge } from '../notifications/bridge.js';
import { type App, urlFor } from './context.js';
import { requestId } from './observe.js';

/** distribution's RemoteAddr: X-Forwarded-For's first, X-Real-Ip, else the socket's address with its port. */
function remoteAddr(req: Request): string {
  const xff = req.headers['x-forwarded-for'];
  const first = (Array.isArray(xff) ? xff[0] : xff)?.split(',')[0].trim();
  if (first) return first;
  const real = req.headers['x-real-ip'];
  if (typeof real === 'string' && real.trim()) return real.trim();
  const a = req.socket?.remoteAddress;
  if (!a) return '';
  return a.includes(':') ? `[${a}]:${req.socket.remotePort}` : `${a}:${req.socket.remotePort}`;
}

export function events(app: App, req: Request, res: Response): Bridge | null {
  if (!app.notifier) return null;
  const r = req as Request & { registryBridge?: Bridge };
  r.registryBridge ??= new Bridge(app.notifier, {
    id: requestId(req), addr: remoteAddr(req), host: req.headers.host ?? '', method: req.method, useragent: req.headers['user-agent'] ?? '',
  }, { name: (res.locals.grant as Grant | undefined)?.subject || undefined }, (path) => urlFor(app, req, path));
  return r.registryBridge;
}

/** Runs fn once the response went out with a success status (pull events, as distribution's after ServeBlob). */
export function afterSuccess(res: Response, fn: () => Promise<void>): void {
  res.once('finish', () => { if (res.statusCode < 400) void fn(); });
}
