// Writes errors as the spec's JSON: {"errors":[{"code","message","detail"}]}.
import type { Response } from 'express';
import type { Logger } from 'pino';
import { StorageDriverError } from '../../drivers/driver.js';
import { RegistryError } from '../errors.js';

export function sendError(res: Response, e: unknown, log: Logger, method: string): void {
  if (res.headersSent) {
    // Mid-body: nothing can be said any more; the client sees a cut connection.
    log.debug({ err: e }, 'response cut short');
    res.destroy();
    return;
  }
  let re: RegistryError;
  if (e instanceof RegistryError) {
    re = e;
  } else {
    const msg = e instanceof StorageDriverError ? 'storage error' : 'internal error';
    log.error({ err: e }, msg);
    re = new RegistryError('UNKNOWN', `${msg}: ${(e as Error)?.message ?? String(e)}`);
  }
  const body = JSON.stringify({ errors: [re.toJSON()] });
  res.status(re.status);
  // An upstream's rate limit (pull-through mode) says when to come back.
  const retryAfter = (re as { retryAfter?: string }).retryAfter;
  if (retryAfter && /^[\w ,:+-]{1,64}$/.test(retryAfter)) res.setHeader('Retry-After', retryAfter);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  if (method === 'HEAD') {
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end();
  } else {
    res.end(body);
  }
}
