// Request body helpers: bounded reads for small bodies, checks for streams.
import type { Request } from 'express';
import { err } from '../errors.js';

/** Reads a body of at most limit bytes, refusing larger ones before reading them. */
export async function readBounded(req: Request, limit: number, what: string): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    req.resume();
    throw err('MANIFEST_INVALID', `${what} is ${declared} bytes, over the ${limit}-byte limit`, { limit }, 413);
  }
  const parts: Buffer[] = [];
  let n = 0;
  // Leaving the loop early must not destroy the request: the 413 still has to be sent.
  for await (const c of req.iterator({ destroyOnReturn: false })) {
    n += (c as Buffer).length;
    if (n > limit) {
      req.resume();
      throw err('MANIFEST_INVALID', `${what} is over the ${limit}-byte limit`, { limit }, 413);
    }
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts, n);
}

/** Content-Length as a number, or undefined; a malformed one is a client error. */
export function contentLength(req: Request): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw err('SIZE_INVALID', `invalid Content-Length: ${v.slice(0, 50)}`);
  return Number(v);
}

/** Parses Content-Range "start-end" (with or without "bytes "). */
export function contentRange(req: Request): { start: number; end: number } | undefined {
  const v = req.headers['content-range'];
  if (v === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(v.trim());
  if (!m) throw err('RANGE_INVALID', `invalid Content-Range: ${v.slice(0, 50)}`, undefined, 416);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw err('RANGE_INVALID', `invalid Content-Range: ${v.slice(0, 50)}`, undefined, 416);
  return { start, end };
}
