// Request body helpers: bounded reads for small bodies, checks for streams.
import type { Request } from 'express';
import { err } from '../errors.js';

// A refused body is read to its end before the answer, up to these bounds:
// an answer sent while the client still writes, followed by the close, makes
// the client's kernel see a reset, and the client loses the answer (EPIPE).
// Past them the answer goes out and the connection closes anyway.
const LINGER_BYTES = 16 << 20;
const LINGER_MS = 2000;

/** Resolves once the request's body has ended, or the bounds above are reached. */
function linger(req: Request): Promise<void> {
  if (req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let n = 0;
    const done = () => { clearTimeout(t); req.off('data', onData); req.off('end', done); req.off('close', done); resolve(); };
    const onData = (c: Buffer) => { n += c.length; if (n > LINGER_BYTES) done(); };
    const t = setTimeout(done, LINGER_MS);
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.resume();
  });
}

/** Reads a body of at most limit bytes, refusing larger ones before reading them. */
export async function readBounded(req: Request, limit: number, what: string): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    if (Number(declared) - limit <= LINGER_BYTES) await linger(req); else req.resume();
    throw err('MANIFEST_INVALID', `${what} is ${declared} bytes, over the ${limit}-byte limit`, { limit }, 413);
  }
  const parts: Buffer[] = [];
  let n = 0;
  // Leaving the loop early must not destroy the request: the 413 still has to be sent.
  for await (const c of req.iterator({ destroyOnReturn: false })) {
    n += (c as Buffer).length;
    if (n > limit) {
      await linger(req);
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
