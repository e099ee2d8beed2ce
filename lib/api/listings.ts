// Tags list, catalog and referrers: paginated listings.
import type { Request, Response } from 'express';
import { mustDigest } from '../digest.js';
import { err } from '../errors.js';
import { isIndexType, MT } from '../storage/mediaTypes.js';
import { type App, type Handler, driverContext } from './context.js';

/** n and last from the query; n is clamped to max. */
function page(req: Request, max: number): { n: number; last: string } {
  const q = req.query;
  let n = max;
  if (q.n !== undefined) {
    if (typeof q.n !== 'string' || !/^\d+$/.test(q.n)) throw err('PAGINATION_NUMBER_INVALID', `invalid n: ${String(q.n).slice(0, 50)}`);
    n = Math.min(Number(q.n), max);
  }
  const last = typeof q.last === 'string' ? q.last : '';
  return { n, last };
}

function setLink(app: App, res: Response, path: string, n: number, last: string): void {
  const prefix = app.config.http.prefix.replace(/\/+$/, '');
  res.setHeader('Link', `<${prefix}${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`);
}

function sendJSON(res: Response, body: unknown, contentType = 'application/json; charset=utf-8'): void {
  const s = JSON.stringify(body);
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(s));
  res.status(200).end(s);
}

export const listTags: Handler = async (app, req, res, p) => {
  const ctx = driverContext(app, req);
  const repo = app.registry.repository(p.name);
  const { n, last } = page(req, app.config.tagsMaxTags);
  let tags: string[];
  let more: boolean;
  if (repo.proxy) {
    // Pull-through: the upstream's tags, the cached ones when it fails.
    const up = await repo.proxy.tags.all(ctx);
    if (up === null) throw err('NAME_UNKNOWN', `repository ${p.name} is not known to the upstream ${repo.proxy.target.remote.upstream.host}`, { name: p.name });
    const after = up.filter((t) => t > last);
    tags = after.slice(0, n);
    more = after.length > n;
  } else {
    const pg = await repo.tags.page(ctx, last, n);
    if (pg.folders === 0 && !(await repo.exists(ctx))) {
      throw err('NAME_UNKNOWN', `repository ${p.name} is not known to the registry`, { name: p.name });
    }
    tags = pg.tags;
    more = pg.more;
  }
  if (more && n > 0) setLink(app, res, `/v2/${p.name}/tags/list`, n, tags[tags.length - 1]);
  sendJSON(res, { name: p.name, tags });
};

export const catalog: Handler = async (app, req, res) => {
  const { n, last } = page(req, app.config.catalogMaxEntries);
  const repos = await app.registry.repositories(driverContext(app, req), last, n + 1);
  const out = repos.slice(0, n);
  if (repos.length > n && n > 0) setLink(app, res, '/v2/_catalog', n, out[out.length - 1]);
  sendJSON(res, { repositories: out });
};

/** The referrers tag schema's tag for a digest (distribution-spec). */
export function referrersTag(dgst: string): string {
  const [alg, enc] = dgst.split(':');
  return `${alg.slice(0, 32)}-${enc.slice(0, 64)}`.replace(/[^a-zA-Z0-9._-]/g, '-');
}

export const referrers: Handler = async (app, req, res, p) => {
  const ctx = driverContext(app, req);
  const subject = mustDigest(p.digest);
  const repo = app.registry.repository(p.name);
  const filter = typeof req.query.artifactType === 'string' && req.query.artifactType !== '' ? req.query.artifactType : undefined;
  if (repo.proxy) {
    // Pull-through: the upstream's answer when it has the API; else (or when
    // it fails) what is cached here.
    const up = await repo.proxy.manifests.referrers(ctx, subject, filter);
    if (up) {
      if (filter) res.setHeader('OCI-Filters-Applied', 'artifactType');
      sendJSON(res, { schemaVersion: 2, mediaType: MT.ociIndex, manifests: up.manifests }, MT.ociIndex);
      return;
    }
  }
  const candidates = new Set(await repo.referrers.list(ctx, subject));
  // Referrers pushed before this API (to a registry without it, such as
  // distribution) live in an index tagged with the referrers tag schema: the
  // spec requires listing those whose subject is this digest.
  try {
    const tagged = await repo.manifests.get(ctx, await repo.tags.get(ctx, referrersTag(subject)));
    if (isIndexType(tagged.mediaType)) {
      const body = JSON.parse(tagged.content.toString('utf8')) as { manifests?: { digest?: unknown }[] };
      for (const d of body.manifests ?? []) if (typeof d.digest === 'string') candidates.add(d.digest);
    }
  } catch (e) {
    if (!['MANIFEST_UNKNOWN', 'DIGEST_INVALID'].includes((e as { code?: string }).code ?? '')) throw e;
  }
  const manifests = [];
  for (const dgst of [...candidates].sort()) {
    let m;
    try { m = await repo.manifests.get(ctx, dgst); } catch { continue; } // deleted meanwhile, or never here
    if (m.subject !== subject) continue;
    const artifactType = m.artifactType ?? (isIndexType(m.mediaType) ? undefined : m.configMediaType);
    if (filter && artifactType !== filter) continue;
    manifests.push({
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.content.length,
      ...(artifactType ? { artifactType } : {}),
      ...(m.annotations ? { annotations: m.annotations } : {}),
    });
  }
  if (filter) res.setHeader('OCI-Filters-Applied', 'artifactType');
  sendJSON(res, { schemaVersion: 2, mediaType: MT.ociIndex, manifests }, MT.ociIndex);
};
