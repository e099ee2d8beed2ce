// Maps /v2/ paths to handlers. Repository names contain slashes, so routes
// are matched from the right, as distribution's router does.
import type { Request, Response, NextFunction } from 'express';
import { err } from '../errors.js';
import { validName } from '../reference.js';
import { deleteBlob, getBlob } from './blobs.js';
import { type App, type Handler, type Params } from './context.js';
import { neededAccess } from '../auth/scope.js';
import { sendError } from './errors.js';
import { catalog, listTags, referrers } from './listings.js';
import { deleteManifest, getManifest, putManifest } from './manifests.js';
import { deleteUpload, getUpload, patchUpload, putUpload, startUpload } from './uploads.js';

interface Route {
  re: RegExp;
  keys: (keyof Params)[];
  kind: Parameters<typeof neededAccess>[1];
  /** distribution's route name, as its metrics label it (blob-upload -> blob_upload). */
  handler: string;
  /** The route's template, for trace span names. */
  template: string;
  methods: Record<string, Handler>;
}

const base: Handler = async (_app, _req, res) => {
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', '2');
  res.status(200).end('{}');
};

const routes: Route[] = [
  { re: /^\/v2\/?$/, keys: [], kind: 'base', handler: 'base', template: '/v2/', methods: { GET: base, HEAD: base } },
  { re: /^\/v2\/_catalog\/?$/, keys: [], kind: 'catalog', handler: 'catalog', template: '/v2/_catalog', methods: { GET: catalog } },
  { re: /^\/v2\/(.+)\/tags\/list\/?$/, keys: ['name'], kind: 'tags', handler: 'tags', template: '/v2/{name}/tags/list', methods: { GET: listTags } },
  { re: /^\/v2\/(.+)\/manifests\/([^/]+)$/, keys: ['name', 'reference'], kind: 'manifest', handler: 'manifest', template: '/v2/{name}/manifests/{reference}', methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest } },
  { re: /^\/v2\/(.+)\/blobs\/uploads\/?$/, keys: ['name'], kind: 'upload', handler: 'blob_upload', template: '/v2/{name}/blobs/uploads/', methods: { POST: startUpload } },
  { re: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, keys: ['name', 'uuid'], kind: 'upload', handler: 'blob_upload_chunk', template: '/v2/{name}/blobs/uploads/{uuid}', methods: { GET: getUpload, PATCH: patchUpload, PUT: putUpload, DELETE: deleteUpload } },
  { re: /^\/v2\/(.+)\/blobs\/([^/]+)$/, keys: ['name', 'digest'], kind: 'blob', handler: 'blob', template: '/v2/{name}/blobs/{digest}', methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob } },
  { re: /^\/v2\/(.+)\/referrers\/([^/]+)$/, keys: ['name', 'digest'], kind: 'referrers', handler: 'referrers', template: '/v2/{name}/referrers/{digest}', methods: { GET: referrers } },
];

/** The client closed the connection (mid-body, or before the answer). A
 *  request whose body was read to the end is destroyed too (by its async
 *  iterator), so only the socket tells. */
function clientGone(req: Request, res: Response): boolean {
  return !req.socket || req.socket.destroyed || res.destroyed;
}

export function v2Router(app: App) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (!req.path.startsWith('/v2')) { next(); return; }
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    let path: string;
    try { path = decodeURI(req.path); } catch { path = req.path; }
    for (const r of routes) {
      const m = r.re.exec(path);
      if (!m) continue;
      const params = {} as Params;
      r.keys.forEach((k, i) => { params[k] = m[i + 1]; });
      res.locals.handler = r.handler;
      res.locals.route = r.template;
      if (params.name !== undefined) res.locals.repository = params.name;
      const inFlight = app.metrics?.inFlight.labels(r.handler);
      if (inFlight) { inFlight.inc(); res.once('close', () => inFlight.dec()); }
      const run = async () => {
        if (params.name !== undefined && !validName(params.name)) {
          throw err('NAME_INVALID', `invalid repository name: ${params.name.slice(0, 300)}`, { name: params.name.slice(0, 300) });
        }
        const h = r.methods[req.method];
        if (!h) {
          res.setHeader('Allow', Object.keys(r.methods).join(', '));
          throw err('UNSUPPORTED', `${req.method} is not supported on ${path.slice(0, 300)}`);
        }
        if (app.access) {
          const needed = neededAccess(req.method, r.kind, params.name);
          const result = await app.access.authorize(req, needed);
          if ('challenge' in result) {
            res.setHeader('WWW-Authenticate', result.challenge);
            throw err('UNAUTHORIZED', result.error, needed.map((a) => ({ Type: a.type, Name: a.name, Action: a.action })));
          }
          res.locals.grant = result.grant;
        }
        if (params.name !== undefined && req.method !== 'GET' && req.method !== 'HEAD' && app.registry.proxy?.resolve(params.name)) {
          // As distribution in proxy mode: a proxied repository is read-only.
          throw err('UNSUPPORTED', `${params.name.slice(0, 300)} is a pull-through cache of an upstream registry: ${req.method} is not supported (push to a hosted repository)`);
        }
        if (r.kind === 'upload' && req.method !== 'GET' && req.method !== 'DELETE' && app.config.http.maxUploads > 0) {
          // Bounded concurrent uploads per node: the rest are told to come back.
          if (app.stats.uploads >= app.config.http.maxUploads) {
            res.setHeader('Retry-After', '5');
            throw err('TOOMANYREQUESTS', `this node is taking ${app.stats.uploads} uploads at once (http.limits.maxuploads); retry shortly`);
          }
        }
        if (r.kind === 'upload' && req.method !== 'GET' && req.method !== 'DELETE') {
          app.stats.uploads++;
          app.metrics?.uploadsInFlight.inc();
          res.once('close', () => { app.stats.uploads--; app.metrics?.uploadsInFlight.dec(); });
        }
        await h(app, req, res, params);
      };
      run().catch((e) => {
        if (clientGone(req, res)) {
          // Nothing can be answered on a closed connection; it is not our error.
          app.log.info({ method: req.method, uri: req.originalUrl.slice(0, 300), err: (e as Error)?.message }, 'client closed');
          res.destroy();
          return;
        }
        if (!req.complete) {
          // The body was refused unread: answer, then close rather than read it all.
          if (!res.headersSent) res.setHeader('Connection', 'close');
          req.resume();
        }
        sendError(res, e, app.log, req.method);
      });
      return;
    }
    sendError(res, err('NAME_UNKNOWN', `no route for ${path.slice(0, 300)}`, undefined, 404), app.log, req.method);
  };
}
