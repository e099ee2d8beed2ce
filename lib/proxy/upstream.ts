// The upstream registry client of pull-through mode (issue 12): the
// Distribution API's reads, with the auth flows registries use: anonymous,
// Basic, and Bearer tokens fetched from the challenge's realm (Docker Hub's
// flow), cached per scope until they expire. Credentials go to the upstream
// and its token realm only: never logged, never in an error, never to a
// redirect's other host (fetch drops Authorization across origins).
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { parseChallenges } from './challenge.js';
import { type NodeResponse, nodeGet } from './nodeHttp.js';
import type { CredentialSource } from './credentials.js';

/** What a manifest request accepts: every type the registry stores. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Manifests are small; a bigger answer is refused rather than buffered. */
const MAX_MANIFEST_BYTES = 4 << 20;
/** Tokens are renewed this long before they expire. */
const TOKEN_MARGIN_MS = 10_000;

export type UpstreamFailure = 'unreachable' | 'timeout' | 'status';

/** The upstream failed: unreachable, too slow, or an answer we cannot use. */
export class UpstreamError extends Error {
  constructor(message: string, readonly kind: UpstreamFailure, readonly status = 0, readonly retryAfter?: string) {
    super(message);
    this.name = 'UpstreamError';
  }
}

export interface UpstreamOptions {
  /** proxy.remoteurl, e.g. https://registry-1.docker.io */
  url: string;
  credentials?: CredentialSource;
  /** Until the answer's headers arrive. */
  timeoutMs?: number;
}

type Auth = { scheme: 'none' } | { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service?: string };

export interface ManifestHead { digest?: string; mediaType?: string; size?: number }

export class UpstreamClient {
  readonly base: URL;
  private auth: Auth | null = null;
  private readonly tokens = new LRUCache<string, { token: string; until: number }>({ max: 10_000 });
  private readonly pendingTokens = new Map<string, Promise<string>>();
  private readonly timeoutMs: number;
  /** Requests sent, by method: for tests and the proxy's metrics. */
  readonly sent = { token: 0, HEAD: 0, GET: 0 };

  constructor(private readonly opts: UpstreamOptions) {
    this.base = new URL(opts.url.replace(/\/+$/, '') + '/');
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  get host(): string { return this.base.host; }

  private async basicHeader(): Promise<string | null> {
    const c = await this.opts.credentials?.get(this.base.host);
    return c ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` : null;
  }

  private async token(realm: string, service: string | undefined, scope: string): Promise<string> {
    const key = `${realm} ${service ?? ''} ${scope}`;
    const hit = this.tokens.get(key);
    if (hit && Date.now() < hit.until) return hit.token;
    let p = this.pendingTokens.get(key);
    if (!p) {
      p = this.fetchToken(realm, service, scope, key).finally(() => this.pendingTokens.delete(key));
      this.pendingTokens.set(key, p);
    }
    return p;
  }

  private async fetchToken(realm: string, service: string | undefined, scope: string, key: string): Promise<string> {
    const u = new URL(realm);
    if (service) u.searchParams.set('service', service);
    u.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    const basic = await this.basicHeader();
    if (basic) headers.Authorization = basic;
    this.sent.token++;
    const res = await this.send(u, 'GET', headers);
    if (!res.ok) {
      await res.body?.cancel();
      throw new UpstreamError(`the upstream's token service (${u.host}) answered ${res.status}${res.status === 401 ? ': check proxy.username and proxy.password' : ''}`, 'status', res.status);
    }
    const body = await res.json() as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamError(`the upstream's token service (${u.host}) sent no token`, 'status', 502);
    // The token spec's default lifetime is 60 s.
    const issued = body.issued_at ? Date.parse(body.issued_at) : NaN;
    const from = Number.isFinite(issued) && Math.abs(issued - Date.now()) < 300_000 ? issued : Date.now();
    this.tokens.set(key, { token, until: from + Math.max(60, body.expires_in ?? 60) * 1000 - TOKEN_MARGIN_MS });
    return token;
  }

  private tokenKey(a: Auth & { scheme: 'bearer' }, repo: string): [string, string] {
    const scope = `repository:${repo}:pull`;
    return [`${a.realm} ${a.service ?? ''} ${scope}`, scope];
  }

  private async authHeader(repo: string): Promise<string | null> {
    const a = this.auth;
    if (!a || a.scheme === 'none') return null;
    if (a.scheme === 'basic') return this.basicHeader();
    return `Bearer ${await this.token(a.realm, a.service, this.tokenKey(a, repo)[1])}`;
  }

  /** fetch with a deadline for the answer's headers (not for its body). */
  private async send(url: URL, method: string, headers: Record<string, string>, stream = false): Promise<Response> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.timeoutMs);
    try {
      // Blob bodies as Node streams (nodeHttp.ts says why); the rest through fetch.
      if (stream) return await nodeGet(url, method as 'GET', headers, ac.signal) as unknown as Response;
      return await fetch(url, { method, headers, signal: ac.signal, redirect: 'follow' });
    } catch (e) {
      if (ac.signal.aborted) throw new UpstreamError(`the upstream ${url.host} did not answer within ${this.timeoutMs} ms`, 'timeout');
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new UpstreamError(`the upstream ${url.host} is unreachable (${cause?.code ?? cause?.message ?? (e as Error).message})`, 'unreachable');
    } finally {
      clearTimeout(timer);
    }
  }

  /** A request for repo's content, authenticated as the upstream's challenge asks; one retry after a 401. */
  async request(method: 'GET' | 'HEAD', path: string, repo: string, headers: Record<string, string> = {}, stream = false): Promise<Response> {
    const url = new URL(path.replace(/^\/+/, ''), this.base);
    for (let attempt = 0; ; attempt++) {
      const h = { ...headers };
      const used = this.auth;
      const issuedBefore = this.sent.token;
      const auth = await this.authHeader(repo);
      if (auth) h.Authorization = auth;
      this.sent[method]++;
      const res = await this.send(url, method, h, stream);
      if (res.status !== 401 || attempt > 0) return res;
      const next = this.authFrom(res.headers.get('www-authenticate'));
      if (!next) return res;
      if (used?.scheme === 'bearer' && next.scheme === 'bearer') {
        // A token just issued that is refused grants nothing here: asking again would not help.
        if (this.sent.token !== issuedBefore) return res;
        // A cached one may have been revoked: drop it and ask once more.
        this.tokens.delete(this.tokenKey(used, repo)[0]);
      } else if (used?.scheme === 'basic' && next.scheme === 'basic') {
        return res;
      }
      await res.body?.cancel();
      this.auth = next;
    }
  }

  private authFrom(header: string | null): Auth | null {
    const cs = parseChallenges(header);
    const bearer = cs.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) return { scheme: 'bearer', realm: bearer.params.realm, service: bearer.params.service };
    if (cs.some((c) => c.scheme === 'basic')) return { scheme: 'basic' };
    return null;
  }

  private failure(res: Response, what: string): UpstreamError {
    return new UpstreamError(`the upstream ${this.base.host} answered ${res.status} to ${what}`, 'status', res.status, res.headers.get('retry-after') ?? undefined);
  }

  /** The manifest's digest and type by HEAD (not counted against Docker Hub's pull limit); null when unknown upstream. */
  async headManifest(repo: string, ref: string): Promise<ManifestHead | null> {
    const res = await this.request('HEAD', `v2/${repo}/manifests/${ref}`, repo, { Accept: MANIFEST_ACCEPT });
    if (res.status === 404) return null;
    if (!res.ok) throw this.failure(res, `HEAD of manifest ${repo}:${ref}`);
    const len = Number(res.headers.get('content-length'));
    return {
      digest: res.headers.get('docker-content-digest') ?? undefined,
      mediaType: res.headers.get('content-type')?.split(';')[0].trim() || undefined,
      size: Number.isFinite(len) && res.headers.has('content-length') ? len : undefined,
    };
  }

  /** The manifest's bytes and type; null when unknown upstream. */
  async getManifest(repo: string, ref: string): Promise<{ content: Buffer; mediaType?: string; digest?: string } | null> {
    const res = await this.request('GET', `v2/${repo}/manifests/${ref}`, repo, { Accept: MANIFEST_ACCEPT });
    if (res.status === 404) { await res.body?.cancel(); return null; }
    if (!res.ok) { await res.body?.cancel(); throw this.failure(res, `GET of manifest ${repo}:${ref}`); }
    const len = Number(res.headers.get('content-length'));
    if (len > MAX_MANIFEST_BYTES) { await res.body?.cancel(); throw new UpstreamError(`the upstream's manifest ${repo}:${ref} is ${len} bytes, over ${MAX_MANIFEST_BYTES}`, 'status', 502); }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      n += c.length;
      if (n > MAX_MANIFEST_BYTES) throw new UpstreamError(`the upstream's manifest ${repo}:${ref} is over ${MAX_MANIFEST_BYTES} bytes`, 'status', 502);
      chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    }
    return {
      content: Buffer.concat(chunks),
      mediaType: res.headers.get('content-type')?.split(';')[0].trim() || undefined,
      digest: res.headers.get('docker-content-digest') ?? undefined,
    };
  }

  /** The blob's size; null when unknown upstream. */
  async headBlob(repo: string, dgst: string): Promise<{ size: number } | null> {
    const res = await this.request('HEAD', `v2/${repo}/blobs/${dgst}`, repo);
    if (res.status === 404) return null;
    if (!res.ok) throw this.failure(res, `HEAD of blob ${dgst}`);
    const size = Number(res.headers.get('content-length'));
    if (!res.headers.has('content-length') || !Number.isSafeInteger(size) || size < 0) throw new UpstreamError(`the upstream ${this.base.host} sent no size for blob ${dgst}`, 'status', 502);
    return { size };
  }

  /** The blob's bytes as a stream, with the size the upstream says; null when unknown upstream. */
  async getBlob(repo: string, dgst: string): Promise<{ size: number | undefined; body: Readable } | null> {
    const res = await this.request('GET', `v2/${repo}/blobs/${dgst}`, repo, {}, true) as unknown as NodeResponse;
    if (res.status === 404) { await res.body?.cancel(); return null; }
    if (!res.ok) { await res.body?.cancel(); throw this.failure(res as unknown as Response, `GET of blob ${dgst}`); }
    const size = Number(res.headers.get('content-length'));
    return {
      size: res.headers.has('content-length') && Number.isSafeInteger(size) ? size : undefined,
      body: res.stream,
    };
  }

  /** The referrers index of a digest (the upstream's first page, filtered
   *  by artifactType when it filters); null when the upstream has no
   *  referrers API or does not know the repository. */
  async referrers(repo: string, dgst: string, artifactType?: string): Promise<{ manifests: unknown[]; filtered: boolean } | null> {
    const q = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
    const res = await this.request('GET', `v2/${repo}/referrers/${dgst}${q}`, repo, { Accept: 'application/vnd.oci.image.index.v1+json' });
    if (res.status === 404 || res.status === 405) { await res.body?.cancel(); return null; }
    if (!res.ok) { await res.body?.cancel(); throw this.failure(res, `referrers of ${dgst}`); }
    const body = await this.json(res, `referrers of ${dgst}`) as { manifests?: unknown };
    if (!Array.isArray(body?.manifests)) throw new UpstreamError(`the upstream ${this.base.host} answered referrers of ${dgst} with no manifests list`, 'status', 502);
    return { manifests: body.manifests, filtered: (res.headers.get('oci-filters-applied') ?? '').includes('artifactType') };
  }

  /** A JSON body, bounded like a manifest. */
  private async json(res: Response, what: string): Promise<unknown> {
    const len = Number(res.headers.get('content-length'));
    if (len > MAX_MANIFEST_BYTES) { await res.body?.cancel(); throw new UpstreamError(`the upstream's answer to ${what} is ${len} bytes, over ${MAX_MANIFEST_BYTES}`, 'status', 502); }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of (res.body ?? []) as unknown as AsyncIterable<Uint8Array>) {
      n += c.length;
      if (n > MAX_MANIFEST_BYTES) throw new UpstreamError(`the upstream's answer to ${what} is over ${MAX_MANIFEST_BYTES} bytes`, 'status', 502);
      chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    }
    try { return JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch {
      throw new UpstreamError(`the upstream ${this.base.host} answered ${what} with invalid JSON`, 'status', 502);
    }
  }

  /** Every tag, following Link pages (bounded: at most maxPages). */
  async tags(repo: string, maxPages = 100): Promise<string[] | null> {
    const out: string[] = [];
    let path: string | null = `v2/${repo}/tags/list`;
    for (let page = 0; path && page < maxPages; page++) {
      const res = await this.request('GET', path, repo);
      if (res.status === 404) { await res.body?.cancel(); return page === 0 ? null : out; }
      if (!res.ok) { await res.body?.cancel(); throw this.failure(res, `tags/list of ${repo}`); }
      const body = await this.json(res, `tags/list of ${repo}`) as { tags?: unknown };
      if (Array.isArray(body.tags)) for (const t of body.tags) if (typeof t === 'string') out.push(t);
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(res.headers.get('link') ?? '');
      path = link ? new URL(link[1], this.base).pathname.replace(/^\/+/, '') + new URL(link[1], this.base).search : null;
    }
    return out;
  }
}
