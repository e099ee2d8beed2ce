// A GET whose body is a Node stream, for blob bodies: fetch's web streams,
// turned back into a Node stream, cost the proxy about as much CPU per byte
// as storing and serving the blob (measured: a 128 MiB cold pull took twice
// the time with fetch). Redirects are followed as fetch follows them, and
// Authorization is dropped when one leaves the origin (Docker Hub sends blob
// GETs to a CDN with a signed URL).
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';

export interface NodeResponse {
  status: number;
  ok: boolean;
  headers: Headers;
  body: { cancel(): Promise<void> } | null;
  /** The body as a Node stream. */
  stream: Readable;
}

const MAX_REDIRECTS = 5;
const keepAlive = { http: new http.Agent({ keepAlive: true, maxSockets: 256 }), https: new https.Agent({ keepAlive: true, maxSockets: 256 }) };

export function nodeGet(url: URL, method: 'GET' | 'HEAD', headers: Record<string, string>, signal: AbortSignal, hops = 0): Promise<NodeResponse> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method, headers, signal, agent: url.protocol === 'https:' ? keepAlive.https : keepAlive.http }, (res) => {
      const status = res.statusCode ?? 0;
      const loc = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(status) && loc && hops < MAX_REDIRECTS) {
        res.resume();
        const next = new URL(loc, url);
        const h = { ...headers };
        if (next.origin !== url.origin) delete h.Authorization;
        nodeGet(next, method, h, signal, hops + 1).then(resolve, reject);
        return;
      }
      const hs = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        if (v === undefined) continue;
        for (const x of Array.isArray(v) ? v : [v]) hs.append(k, x);
      }
      resolve({
        status, ok: status >= 200 && status < 300, headers: hs, stream: res,
        body: { cancel: async () => { res.destroy(); } },
      });
    });
    req.on('error', reject);
    req.end();
  });
}
