// Blob GET, HEAD and DELETE.
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { Response } from 'express';
import { err } from '../errors.js';
import { mustDigest } from '../digest.js';
import type { BlobStore } from '../storage/blobStore.js';
import type { DriverContext } from '../../drivers/driver.js';
import { type ByteRange, ifRangeHolds, noneMatch, parseRanges } from './conditional.js';
import { type Handler, driverContext } from './context.js';
import type { ProxiedRepository } from '../proxy/proxyRegistry.js';
import { afterSuccess, events } from './notify.js';

async function* take(r: Readable, n: number): AsyncGenerator<Buffer> {
  let left = n;
  try {
    for await (const c of r) {
      const b = c as Buffer;
      if (b.length >= left) { yield b.subarray(0, left); left = 0; break; }
      yield b;
      left -= b.length;
    }
  } finally {
    r.destroy();
  }
}

/** Several ranges as multipart/byteranges (RFC 9110 §14.6), with an exact Content-Length. */
async function sendMultipart(ctx: DriverContext, bs: BlobStore, dgst: string, size: number, ranges: ByteRange[], res: Response, head: boolean): Promise<void> {
  const boundary = randomBytes(12).toString('hex');
  const partHead = (r: ByteRange, i: number) => `${i ? '\r\n' : ''}--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  const length = ranges.reduce((n, r, i) => n + Buffer.byteLength(partHead(r, i)) + (r.end - r.start + 1), 0) + tail.length;
  res.status(206);
  res.setHeader('Content-Type', `multipart/byteranges; boundary=${boundary}`);
  res.setHeader('Content-Length', String(length));
  if (head) { res.end(); return; }
  for (const [i, r] of ranges.entries()) {
    res.write(partHead(r, i));
    await pipeline(take(await bs.open(ctx, dgst, r.start), r.end - r.start + 1), res, { end: false });
  }
  res.end(tail);
}

export const getBlob: Handler = async (app, req, res, p) => {
  const ctx = driverContext(app, req);
  const dgst = mustDigest(p.digest);
  const repo = app.registry.repository(p.name);
  const bs = repo.blobs.blobStore;
  const ev = events(app, req, res);
  // The size is what the response said (a redirect or a 304 says none: the blob's size is read then).
  if (ev) afterSuccess(res, async () => {
    const size = res.statusCode === 200 && res.getHeader('Content-Length') !== undefined && !res.getHeader('Content-Range')
      ? Number(res.getHeader('Content-Length')) : (await repo.blobs.stat(ctx, dgst).catch(() => null))?.size ?? 0;
    await ev.blobPulled(p.name, { digest: dgst, size });
  });
  const etag = `"${dgst}"`;
  const notModified = () => noneMatch(req.headers['if-none-match'], etag);
  const common = () => {
    res.setHeader('Docker-Content-Digest', dgst);
    res.setHeader('ETag', etag);
    res.setHeader('Cache-Control', `max-age=${app.config.http.blobMaxAgeSeconds}`);
  };
  if (repo.proxy) {
    // Pull-through: what is stored is served below as any blob is; the rest
    // streams from the upstream's one fetch.
    const proxy = repo.proxy;
    const cached = await proxy.blobs.cached(ctx, dgst);
    res.once('finish', () => {
      if (res.statusCode >= 400) return;
      proxy.served('blob', dgst, cached !== null, req.method === 'GET' ? Number(res.getHeader('Content-Length') ?? 0) : 0, cached?.size ?? Number(res.getHeader('Content-Length') ?? 0));
    });
    if (!cached) {
      common();
      if (notModified()) { res.status(304).end(); return; }
      await sendFromUpstream(req.method === 'HEAD', proxy, ctx, dgst, res);
      return;
    }
  }
  // A redirect needs no size: one link read instead of link + blob stat.
  const url = !app.config.storage.redirectDisabled && req.method === 'GET' ? await bs.redirectURL(ctx, req.method, dgst) : null;
  if (url) {
    await repo.blobs.checkLinked(ctx, dgst);
    common();
    if (notModified()) { res.status(304).end(); return; }
    res.setHeader('Location', url);
    res.status(307).end();
    return;
  }
  // A failed If-Range means the whole body (RFC 9110 §13.1.5).
  const range = req.headers.range !== undefined && ifRangeHolds(req.headers['if-range'] as string | undefined, etag) ? req.headers.range : undefined;
  if (req.method === 'GET' && range === undefined && !bs.driver.sendTo && bs.driver.readerWithSize) {
    // Object stores: the GET itself says the size, so no stat (LIST) first.
    await repo.blobs.checkLinked(ctx, dgst);
    common();
    if (notModified()) { res.status(304).end(); return; }
    const { stream, size } = await bs.openWithSize(ctx, dgst);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', String(size));
    res.status(200);
    await pipeline(stream, res);
    return;
  }
  const desc = await repo.blobs.stat(ctx, dgst);
  common();
  res.setHeader('Accept-Ranges', 'bytes');
  if (notModified()) { res.status(304).end(); return; }
  res.setHeader('Content-Type', 'application/octet-stream');
  let start = 0;
  let length = desc.size;
  if (range !== undefined && desc.size > 0) {
    let ranges: ByteRange[] | null;
    try {
      ranges = parseRanges(range, desc.size);
    } catch (e) {
      res.setHeader('Content-Range', `bytes */${desc.size}`);
      throw e;
    }
    if (ranges && ranges.length > 1) {
      await sendMultipart(ctx, bs, dgst, desc.size, ranges, res, req.method === 'HEAD');
      return;
    }
    if (ranges) {
      start = ranges[0].start;
      length = ranges[0].end - start + 1;
      res.status(206);
      res.setHeader('Content-Range', `bytes ${start}-${ranges[0].end}/${desc.size}`);
    } else {
      res.status(200);
    }
  } else {
    res.status(200);
  }
  res.setHeader('Content-Length', String(length));
  if (req.method === 'HEAD') { res.end(); return; }
  if (await bs.sendTo(ctx, dgst, start, length, res)) { res.end(); return; }
  const body = await bs.open(ctx, dgst, start);
  await pipeline(start + length === desc.size ? body : take(body, length), res);
};

/** A blob not stored yet, from the upstream: HEAD asks it for the size; GET
 *  streams the shared fetch (Range is not honoured on this first pull: the
 *  whole blob is sent, as RFC 9110 allows; later ones are served from storage). */
async function sendFromUpstream(head: boolean, proxy: ProxiedRepository, ctx: DriverContext, dgst: string, res: Response): Promise<void> {
  res.setHeader('Content-Type', 'application/octet-stream');
  if (head) {
    res.setHeader('Content-Length', String(await proxy.blobs.remoteSize(dgst)));
    res.status(200).end();
    return;
  }
  const { size, stream } = await proxy.blobs.open(ctx, dgst);
  if (size !== undefined) res.setHeader('Content-Length', String(size));
  res.status(200);
  await pipeline(stream, res);
}

export const deleteBlob: Handler = async (app, req, res, p) => {
  if (!app.config.storage.deleteEnabled) throw err('UNSUPPORTED', 'deletes are disabled (storage.delete.enabled is false)');
  if (app.config.storage.readOnly) throw err('UNSUPPORTED', 'the registry is in read-only mode (storage.maintenance.readonly)');
  const dgst = mustDigest(p.digest);
  await app.registry.repository(p.name).blobs.unlink(driverContext(app, req), dgst);
  await events(app, req, res)?.blobDeleted(p.name, dgst);
  res.setHeader('Docker-Content-Digest', dgst);
  res.setHeader('Content-Length', '0');
  res.status(202).end();
};
