// Blob uploads: POST (session, monolithic ?digest=, mount), PATCH (chunked
// with Content-Range or streamed), PUT (finish), GET (status), DELETE.
import type { Request, Response } from 'express';
import { mustDigest, parseDigest } from '../digest.js';
import { err, RegistryError } from '../errors.js';
import { gcGate } from './gcGate.js';
import type { Grant } from '../auth/access.js';
import { validName } from '../reference.js';
import type { BlobWriter } from '../storage/blobWriter.js';
import { type App, type Handler, driverContext, urlFor } from './context.js';
import { contentLength, contentRange } from './body.js';
import { packUploadState, unpackUploadState } from './uploadState.js';
import { events } from './notify.js';

function rangeHeader(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}

function uploadLocation(app: App, req: Request, name: string, id: string, offset: number, startedAt: Date): string {
  const state = packUploadState(app.secret, { name, uuid: id, offset, startedAt });
  return urlFor(app, req, `/v2/${name}/blobs/uploads/${id}?_state=${encodeURIComponent(state)}`);
}

/** A request that carries `_state` must carry a valid one for this upload; URLs
 *  without it (clients that build them from the UUID) are still accepted. */
function checkState(app: App, req: Request, name: string, uuid: string): void {
  const token = req.query._state;
  if (token === undefined) return;
  if (typeof token !== 'string') throw err('BLOB_UPLOAD_INVALID', 'upload state invalid: more than one _state');
  unpackUploadState(app.secret, token, name, uuid);
}

function sendUploadStatus(app: App, req: Request, res: Response, name: string, id: string, size: number, startedAt: Date, status: number): void {
  res.setHeader('Location', uploadLocation(app, req, name, id, size, startedAt));
  res.setHeader('Range', rangeHeader(size));
  res.setHeader('Docker-Upload-UUID', id);
  res.setHeader('Content-Length', '0');
  res.status(status).end();
}

/** Commits an upload, counting the result (and a digest that did not match). */
async function commit(app: App, req: Request, w: BlobWriter, dgst: string): Promise<number> {
  try {
    const desc = await w.commit(driverContext(app, req), dgst);
    app.metrics?.uploadsCompleted.labels('committed').inc();
    return desc.size;
  } catch (e) {
    const code = e instanceof RegistryError ? e.code : 'UNKNOWN';
    app.metrics?.uploadsCompleted.labels(code).inc();
    if (code === 'DIGEST_INVALID') app.metrics?.digestFailures.labels('blob').inc();
    throw e;
  }
}

/** Answers 201 for a stored blob, once its push (or mount) event is recorded. */
async function sendBlobCreated(app: App, req: Request, res: Response, name: string, dgst: string, size: number, from?: string): Promise<void> {
  const ev = events(app, req, res);
  if (ev) await (from !== undefined ? ev.blobMounted(name, { digest: dgst, size }, from) : ev.blobPushed(name, { digest: dgst, size }));
  res.setHeader('Location', urlFor(app, req, `/v2/${name}/blobs/${dgst}`));
  res.setHeader('Docker-Content-Digest', dgst);
  res.setHeader('Content-Length', '0');
  res.status(201).end();
}

function readOnly(app: App): void {
  if (app.config.storage.readOnly) throw err('UNSUPPORTED', 'the registry is in read-only mode (storage.maintenance.readonly)');
}

/** Yields at most limit bytes of a chunked body; a longer body is refused (416) after the bytes within the range are taken. */
async function* within(body: Request, limit: number): AsyncGenerator<Buffer> {
  let left = limit;
  // Stopping early must not destroy the request: the 416 still has to be sent.
  for await (const c of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    if (c.length > left) {
      if (left > 0) yield c.subarray(0, left);
      throw err('RANGE_INVALID', `the body is longer than its Content-Range (${limit} bytes)`, undefined, 416);
    }
    left -= c.length;
    yield c;
  }
}

/** Streams the request body into the upload, checking Content-Length and Content-Range. */
async function takeBody(app: App, req: Request, w: BlobWriter, allowRange: boolean): Promise<void> {
  const ctx = driverContext(app, req);
  const len = contentLength(req);
  const range = allowRange ? contentRange(req) : undefined;
  let declared = len;
  if (range) {
    if (range.start !== w.size()) {
      throw err('RANGE_INVALID', `chunk starts at ${range.start} but the upload has ${w.size()} bytes; resume at ${w.size()}`, { offset: w.size() }, 416);
    }
    const rlen = range.end - range.start + 1;
    if (len !== undefined && len !== rlen) {
      throw err('SIZE_INVALID', `Content-Length ${len} does not match Content-Range ${range.start}-${range.end}`);
    }
    declared = rlen;
  }
  if (len === 0) return;
  const before = w.size();
  try {
    // A chunked body (no Content-Length) is held to its Content-Range.
    await w.write(ctx, range && len === undefined ? within(req, declared!) : req);
  } finally {
    // What was stored counts, even from a body cut short.
    const stored = w.size() - before;
    req.res!.locals.bodyBytes = stored;
    app.metrics?.bytesPushed.inc(stored);
  }
  const got = w.size() - before;
  if (declared !== undefined && got !== declared) {
    throw err('SIZE_INVALID', `received ${got} bytes, ${len !== undefined ? 'Content-Length' : 'Content-Range'} said ${declared}`);
  }
}

/** A query parameter given once, or undefined; given twice it is ambiguous, and refused. */
function single(req: Request, name: string, code: 'DIGEST_INVALID' | 'NAME_INVALID'): string | undefined {
  const v = req.query[name];
  if (v === undefined || typeof v === 'string') return v;
  throw err(code, `${name} is given more than once`, { [name]: ([] as unknown[]).concat(v).map((x) => String(x).slice(0, 200)) });
}

export const startUpload: Handler = async (app, req, res, p) => {
  readOnly(app);
  const ctx = driverContext(app, req);
  const repo = app.registry.repository(p.name);
  const mount = single(req, 'mount', 'DIGEST_INVALID');
  const digest = single(req, 'digest', 'DIGEST_INVALID');
  const from = single(req, 'from', 'NAME_INVALID');
  if (mount !== undefined || digest !== undefined) await gcGate(app, res, [mount ?? digest!]);
  if (mount !== undefined) {
    const dgst = mustDigest(mount, 'mount digest');
    // With auth, a mount needs a named source the client may pull from; else
    // it becomes an upload session, as the spec requires for any unmountable blob.
    const grant = res.locals.grant as Grant | undefined;
    const mayMount = !app.access || (from !== undefined && grant?.allows({ type: 'repository', name: from, action: 'pull' }) === true);
    if (mayMount && (from === undefined || validName(from))) {
      // Without "from" the spec lets the registry mount any blob it holds.
      const desc = from
        ? await app.registry.repository(from).blobs.stat(ctx, dgst).catch(() => undefined)
        : await app.registry.blobStore.stat(ctx, dgst).catch(() => undefined);
      if (desc) {
        await repo.blobs.link(ctx, desc);
        await sendBlobCreated(app, req, res, p.name, dgst, desc.size, from ?? '');
        return;
      }
    }
    // Not mountable: fall back to an upload session, as the spec requires.
  }
  if (digest !== undefined) {
    mustDigest(digest);
    const w = await repo.uploads.create(ctx);
    let size: number;
    try {
      await takeBody(app, req, w, false);
      size = await commit(app, req, w, digest);
    } catch (e) {
      await w.cancel(ctx).catch(() => {});
      throw e;
    }
    await sendBlobCreated(app, req, res, p.name, digest, size);
    return;
  }
  const w = await repo.uploads.create(ctx);
  try {
    if (contentLength(req)) await takeBody(app, req, w, false);
  } finally {
    await w.close();
  }
  sendUploadStatus(app, req, res, p.name, w.id, w.size(), w.startedAt, 202);
};

/** Resumes the upload under its lock and appends the request body; on a
 *  refused chunk the answer says where the upload stands. Resolves with
 *  then()'s result once the lock is released: the caller answers only
 *  after that, or a client that sends its next chunk to another node on
 *  the answer would find the session still locked (seen in CI: 416). */
async function withBody<T>(app: App, req: Request, res: Response, name: string, uuid: string, then: (w: BlobWriter) => Promise<T>): Promise<T> {
  const ctx = driverContext(app, req);
  const repo = app.registry.repository(name);
  checkState(app, req, name, uuid);
  // One writer per session: within this node by a mutex, across nodes by a
  // Redis lock (a client sending two chunks of one session at once to two
  // nodes would otherwise interleave them).
  return app.uploadLocks.run(uuid, async () => {
    const held = app.uploadLock ? await app.uploadLock(uuid) : undefined;
    if (held === null) {
      throw err('RANGE_INVALID', 'another request is writing to this upload session: send chunks one at a time, in order', { uuid });
    }
    try {
      const w = await repo.uploads.resume(ctx, uuid);
      try {
        await takeBody(app, req, w, true);
      } catch (e) {
        if (e instanceof RegistryError && (e.code === 'RANGE_INVALID' || e.code === 'SIZE_INVALID')) {
          res.setHeader('Location', uploadLocation(app, req, name, uuid, w.size(), w.startedAt));
          res.setHeader('Range', rangeHeader(w.size()));
          res.setHeader('Docker-Upload-UUID', uuid);
        }
        await w.close();
        throw e;
      }
      return await then(w);
    } finally {
      await held?.release();
    }
  });
}

export const patchUpload: Handler = async (app, req, res, p) => {
  readOnly(app);
  const w = await withBody(app, req, res, p.name, p.uuid!, async (w) => {
    await w.close();
    return w;
  });
  sendUploadStatus(app, req, res, p.name, w.id, w.size(), w.startedAt, 202);
};

export const putUpload: Handler = async (app, req, res, p) => {
  readOnly(app);
  const digest = req.query.digest;
  if (typeof digest !== 'string' || !parseDigest(digest)) {
    throw err('DIGEST_INVALID', digest === undefined ? 'the digest query parameter is required to finish an upload' : `invalid digest: ${String(digest).slice(0, 200)}`);
  }
  await gcGate(app, res, [digest]);
  const size = await withBody(app, req, res, p.name, p.uuid!, (w) => commit(app, req, w, digest));
  await sendBlobCreated(app, req, res, p.name, digest, size);
};

export const getUpload: Handler = async (app, req, res, p) => {
  checkState(app, req, p.name, p.uuid!);
  const info = await app.registry.repository(p.name).uploads.status(driverContext(app, req), p.uuid!);
  sendUploadStatus(app, req, res, p.name, info.id, info.size, info.startedAt, 204);
};

export const deleteUpload: Handler = async (app, req, res, p) => {
  readOnly(app);
  checkState(app, req, p.name, p.uuid!);
  const ctx = driverContext(app, req);
  const repo = app.registry.repository(p.name);
  await app.uploadLocks.run(p.uuid!, async () => {
    const w = await repo.uploads.resume(ctx, p.uuid!);
    await w.cancel(ctx);
  });
  res.setHeader('Content-Length', '0');
  res.status(204).end();
};
