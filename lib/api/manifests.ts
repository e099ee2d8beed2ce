// Manifest GET, HEAD, PUT and DELETE, by tag or by digest.
import type { Request } from 'express';
import { isDigest, mustDigest } from '../digest.js';
import { gcGate, manifestItems } from './gcGate.js';
import { err } from '../errors.js';
import { validTag } from '../reference.js';
import { type Handler, driverContext, urlFor } from './context.js';
import { readBounded } from './body.js';
import { noneMatch } from './conditional.js';
import type { StoredManifest } from '../storage/manifestStore.js';
import { afterSuccess, events } from './notify.js';

function isDigestRef(ref: string): boolean {
  return ref.includes(':');
}

/** A reference that is neither a valid tag nor a valid digest names no manifest that can exist: 404, as distribution and the conformance suite expect. */
function unknownRef(ref: string) {
  return err('MANIFEST_UNKNOWN', `manifest unknown: ${ref.slice(0, 200)} is neither a valid tag nor a digest`, { reference: ref.slice(0, 200) });
}

function accepts(req: Request, mediaType: string): boolean {
  const header = req.headers.accept;
  if (!header) return true;
  const types = header.split(',').map((t) => t.split(';')[0].trim().toLowerCase()).filter(Boolean);
  if (types.length === 0) return true;
  return types.some((t) => t === mediaType || t === '*/*' || t === 'application/*' || t === 'application/json');
}

export const getManifest: Handler = async (app, req, res, p) => {
  const ctx = driverContext(app, req);
  const ref = p.reference!;
  const repo = app.registry.repository(p.name);
  let dgst: string;
  let m: StoredManifest;
  const proxy = repo.proxy;
  if (proxy) {
    // Pull-through: by tag, revalidated upstream once per tag ttl; by digest, stored or fetched.
    let hit = true;
    if (isDigest(ref)) dgst = ref;
    else if (validTag(ref)) ({ digest: dgst, hit } = await proxy.tags.get(ctx, ref));
    else throw unknownRef(ref);
    const got = await proxy.manifests.get(ctx, dgst);
    m = got.manifest;
    const bytes = req.method === 'GET' ? m.content.length : 0;
    res.once('finish', () => { if (res.statusCode < 400) proxy.served('manifest', m.digest, hit && got.hit, bytes, m.content.length); });
  } else {
    if (isDigest(ref)) dgst = ref;
    else if (validTag(ref)) dgst = await repo.tags.get(ctx, ref);
    else throw unknownRef(ref);
    m = await repo.manifests.get(ctx, dgst);
  }
  if (!isDigestRef(ref) && !accepts(req, m.mediaType)) {
    // As distribution: a tag whose manifest the client cannot read is unknown to it.
    throw err('MANIFEST_UNKNOWN', `manifest ${ref} is ${m.mediaType}, which the Accept header does not list`, { mediaType: m.mediaType });
  }
  const ev = events(app, req, res);
  if (ev) afterSuccess(res, () => ev.manifestPulled(p.name, m, isDigestRef(ref) ? undefined : ref));
  const etag = `"${dgst}"`;
  res.setHeader('Docker-Content-Digest', dgst);
  res.setHeader('ETag', etag);
  if (noneMatch(req.headers['if-none-match'], etag)) {
    res.status(304).end();
    return;
  }
  res.setHeader('Content-Type', m.mediaType);
  res.setHeader('Content-Length', String(m.content.length));
  res.status(200);
  if (req.method === 'HEAD') { res.end(); return; }
  // The blob GETs come next; their link reads can be answered from the
  // manifest (not when proxied: its blobs may not be stored yet).
  if (!proxy) void repo.manifests.primeLayers(m).catch(() => {});
  res.end(m.content);
};

export const putManifest: Handler = async (app, req, res, p) => {
  if (app.config.storage.readOnly) throw err('UNSUPPORTED', 'the registry is in read-only mode (storage.maintenance.readonly)');
  const ctx = driverContext(app, req);
  const ref = p.reference!;
  let target: { digest?: string; tag?: string };
  if (isDigestRef(ref)) target = { digest: mustDigest(ref) };
  else if (validTag(ref)) target = { tag: ref };
  else throw err('TAG_INVALID', `invalid tag: ${ref.slice(0, 200)} (up to 128 of [A-Za-z0-9_.-], not starting with . or -)`, { tag: ref.slice(0, 200) });
  const content = await readBounded(req, app.config.http.maxManifestBytes, 'manifest');
  res.locals.bodyBytes = content.length;
  // Before the put checks the references exist: a collection then keeps them.
  await gcGate(app, res, manifestItems(p.name, content, req.headers['content-type'], target.digest));
  const repo = app.registry.repository(p.name);
  let m;
  try {
    m = await repo.manifests.put(ctx, content, req.headers['content-type'], target);
  } catch (e) {
    if ((e as { code?: string }).code === 'DIGEST_INVALID' && target.digest) app.metrics?.digestFailures.labels('manifest').inc();
    throw e;
  }
  // Recorded before the answer: a client told 201 has its event queued.
  await events(app, req, res)?.manifestPushed(p.name, m, target.tag);
  res.setHeader('Location', urlFor(app, req, `/v2/${p.name}/manifests/${m.digest}`));
  res.setHeader('Docker-Content-Digest', m.digest);
  if (m.subject) res.setHeader('OCI-Subject', m.subject);
  res.setHeader('Content-Length', '0');
  res.status(201).end();
};

export const deleteManifest: Handler = async (app, req, res, p) => {
  if (!app.config.storage.deleteEnabled) throw err('UNSUPPORTED', 'deletes are disabled (storage.delete.enabled is false)');
  if (app.config.storage.readOnly) throw err('UNSUPPORTED', 'the registry is in read-only mode (storage.maintenance.readonly)');
  await gcGate(app, res, []);
  const ctx = driverContext(app, req);
  const ref = p.reference!;
  const repo = app.registry.repository(p.name);
  const ev = events(app, req, res);
  if (isDigest(ref)) {
    await repo.manifests.delete(ctx, ref);
    await ev?.manifestDeleted(p.name, ref);
  } else if (validTag(ref)) {
    await repo.tags.untag(ctx, ref);
    await ev?.tagDeleted(p.name, ref);
  } else throw unknownRef(ref);
  res.setHeader('Content-Length', '0');
  res.status(202).end();
};
