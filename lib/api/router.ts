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
  methods: Record<string, Handler>;
}

const base: Handler = async (_app, _req, res) => {
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', '2');
  res.status(200).end('{}');
};

const routes: Route[] = [
  { re: /^\/v2\/?$/, keys: [], kind: 'base', methods: { GET: base, HEAD: base } },
  { re: /^\/v2\/_catalog\/?$/, keys: [], kind: 'catalog', methods: { GET: catalog } },
  { re: /^\/v2\/(.+)\/tags\/list\/?$/, keys: ['name'], kind: 'tags', methods: { GET: listTags } },
  { re: /^\/v2\/(.+)\/manifests\/([^/]+)$/, keys: ['name', 'reference'], kind: 'manifest', methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest } },
  { re: /^\/v2\/(.+)\/blobs\/uploads\/?$/, keys: ['name'], kind: 'upload', methods: { POST: startUpload } },
  { re: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, keys: ['name', 'uuid'], kind: 'upload', methods: { GET: getUpload, PATCH: patchUpload, PUT: putUpload, DELETE: deleteUpload } },
  { re: /^\/v2\/(.+)\/blobs\/([^/]+)$/, keys: ['name', 'digest'], kind: 'blob', methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob } },
  { re: /^\/v2\/(.+)\/referrers\/([^/]+)$/, keys: ['name', 'digest'], kind: 'referrers', methods: { GET: referrers } },
];

/** The client closed the connection (mid-body, or before the answer). A
 *  request whose body was read to the end is destroyed too (by its async
 *  iterator), so only the socket tells. */
function clientGone(req: Request, res: Response): boolean {
  return !req.socket || req.socket.destroyed || res.destroyed;
}

export function v2Router(app: App) {
  let uploadsInFlight = 0;
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
        if (r.kind === 'upload' && req.method !== 'GET' && req.method !== 'DELETE' && app.config.http.maxUploads > 0) {
          // Bounded concurrent uploads per node: the rest are told to come back.
          if (uploadsInFlight >= app.config.http.maxUploads) {
            res.setHeader('Retry-After', '5');
            throw err('TOOMANYREQUESTS', `this node is taking ${uploadsInFlight} uploads at once (http.limits.maxuploads); retry shortly`);
          }
          uploadsInFlight++;
          res.once('close', () => { uploadsInFlight--; });
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
