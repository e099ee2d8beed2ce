// Blob GET, HEAD and DELETE.
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { err } from '../errors.js';
import { mustDigest } from '../digest.js';
import { type Handler, driverContext } from './context.js';

/** Parses a single "bytes=" range against size; throws RANGE_INVALID (416). */
export function parseRange(header: string, size: number): { start: number; end: number } {
  const bad = (why: string) => err('RANGE_INVALID', `${why}: ${header.slice(0, 100)} (blob is ${size} bytes)`, { size }, 416);
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw bad('unsupported or malformed Range (one "bytes=start-end" range is served)');
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw bad('empty suffix range');
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) throw bad('range ends before it starts');
  }
  if (start >= size) throw bad('range starts past the end');
  return { start, end };
}

async function* take(r: Readable, n: number): AsyncGenerator<Buffer> {
  let left = n;
  for await (const c of r) {
    const b = c as Buffer;
    if (b.length >= left) { yield b.subarray(0, left); left = 0; break; }
    yield b;
    left -= b.length;
  }
  r.destroy();
}

export const getBlob: Handler = async (app, req, res, p) => {
  const ctx = driverContext(app, req);
  const dgst = mustDigest(p.digest);
  const repo = app.registry.repository(p.name);
  const etag = `"${dgst}"`;
  const notModified = () => {
    const inm = req.headers['if-none-match'];
    return Boolean(inm && inm.split(',').map((s) => s.trim()).some((t) => t === etag || t === '*' || t === `W/${etag}`));
  };
  const common = () => {
    res.setHeader('Docker-Content-Digest', dgst);
    res.setHeader('ETag', etag);
    res.setHeader('Cache-Control', `max-age=${app.config.http.blobMaxAgeSeconds}`);
  };
  // A redirect needs no size: one link read instead of link + blob stat.
  const url = !app.config.storage.redirectDisabled && req.method === 'GET' ? await repo.blobs.blobStore.redirectURL(ctx, req.method, dgst) : null;
  if (url) {
    await repo.blobs.checkLinked(ctx, dgst);
    common();
    if (notModified()) { res.status(304).end(); return; }
    res.setHeader('Location', url);
    res.status(307).end();
    return;
  }
  const desc = await repo.blobs.stat(ctx, dgst);
  common();
  res.setHeader('Accept-Ranges', 'bytes');
  if (notModified()) { res.status(304).end(); return; }
  res.setHeader('Content-Type', 'application/octet-stream');
  let start = 0;
  let length = desc.size;
  const range = req.headers.range;
  if (range !== undefined && desc.size > 0) {
    try {
      const r = parseRange(range, desc.size);
      start = r.start;
      length = r.end - r.start + 1;
      res.status(206);
      res.setHeader('Content-Range', `bytes ${r.start}-${r.end}/${desc.size}`);
    } catch (e) {
      res.setHeader('Content-Range', `bytes */${desc.size}`);
      throw e;
    }
  } else {
    res.status(200);
  }
  res.setHeader('Content-Length', String(length));
  if (req.method === 'HEAD') { res.end(); return; }
  const bs = repo.blobs.blobStore;
  if (await bs.sendTo(ctx, dgst, start, length, res)) { res.end(); return; }
  const body = await bs.open(ctx, dgst, start);
  await pipeline(start + length === desc.size ? body : take(body, length), res);
};

export const deleteBlob: Handler = async (app, req, res, p) => {
  if (!app.config.storage.deleteEnabled) throw err('UNSUPPORTED', 'deletes are disabled (storage.delete.enabled is false)');
  if (app.config.storage.readOnly) throw err('UNSUPPORTED', 'the registry is in read-only mode (storage.maintenance.readonly)');
  const dgst = mustDigest(p.digest);
  await app.registry.repository(p.name).blobs.unlink(driverContext(app, req), dgst);
  res.setHeader('Docker-Content-Digest', dgst);
  res.setHeader('Content-Length', '0');
  res.status(202).end();
};
