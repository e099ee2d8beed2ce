// An HTTP proxy between a registry and a storage stand-in: counts and names
// every request (bench/requests.ts), and can answer some with a fault
// (throttling, 5xx), or cut an object's body off halfway (a reset connection
// after the headers), to prove the drivers' retries.
import * as http from 'node:http';

export type Classifier = (method: string, url: URL, headers: http.IncomingHttpHeaders) => string;

/** S3 requests by operation name. */
export const s3Kind: Classifier = (m, u, h) => {
  const q = u.searchParams;
  if (m === 'GET' && q.has('list-type')) return 'ListObjectsV2';
  if (m === 'GET' && q.has('uploads')) return 'ListMultipartUploads';
  if (m === 'GET' && q.has('uploadId')) return 'ListParts';
  if (m === 'GET') return 'GetObject';
  if (m === 'HEAD') return 'HeadObject';
  if (m === 'PUT' && q.has('partNumber')) return h['x-amz-copy-source'] ? 'UploadPartCopy' : 'UploadPart';
  if (m === 'PUT') return h['x-amz-copy-source'] ? 'CopyObject' : 'PutObject';
  if (m === 'POST' && q.has('uploads')) return 'CreateMultipartUpload';
  if (m === 'POST' && q.has('uploadId')) return 'CompleteMultipartUpload';
  if (m === 'POST' && q.has('delete')) return 'DeleteObjects';
  if (m === 'DELETE') return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
  return `${m} ${u.pathname}`;
};

export interface Counts { registry: Map<string, number>; client: Map<string, number> }

export interface Fault { status: number; headers?: Record<string, string>; body: string }

export interface StorageProxy {
  url: string;
  take(): Counts;
  /** The next `count` requests from the SDK are answered with `fault` instead of being forwarded. */
  inject(fault: Fault, count: number): void;
  faultsServed(): number;
  /** The next `count` object bodies sent to the SDK (GETs answered 200, not a listing's XML or JSON) stop halfway: the connection is destroyed. */
  cutBodies(count: number): void;
  bodiesCut(): number;
  close(): Promise<void>;
}

export async function startStorageProxy(target: string, classify: Classifier = (m, u) => `${m} ${u.pathname}`, trace = false): Promise<StorageProxy> {
  const t = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let counts: Counts = { registry: new Map(), client: new Map() };
  let fault: Fault | null = null;
  let faultsLeft = 0;
  let served = 0;
  let cutsLeft = 0;
  let cut = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, target);
    const kind = classify(req.method!, url, req.headers);
    const ua = String(req.headers['user-agent'] ?? '');
    // SDK requests carry their SDK's User-Agent; anything else is a client following a redirect.
    const fromSdk = /aws-sdk|azsdk|gcloud|gl-node|gccl|google-api-nodejs-client/i.test(ua) || req.headers['x-goog-api-client'] !== undefined;
    const m = fromSdk ? counts.registry : counts.client;
    m.set(kind, (m.get(kind) ?? 0) + 1);
    if (trace) console.error(`${fromSdk ? 'registry' : 'client  '} ${kind} ${decodeURIComponent(url.pathname).slice(0, 140)}`);
    if (fromSdk && fault && faultsLeft > 0) {
      faultsLeft--;
      served++;
      const f = fault;
      req.resume();
      req.on('end', () => res.writeHead(f.status, { 'Content-Type': 'application/xml', ...f.headers }).end(f.body));
      return;
    }
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
      const isObjectBody = fromSdk && req.method === 'GET' && (ur.statusCode === 200 || ur.statusCode === 206) && !/xml|json/.test(String(ur.headers['content-type'] ?? ''));
      if (isObjectBody && cutsLeft > 0) {
        cutsLeft--;
        const parts: Buffer[] = [];
        ur.on('data', (c: Buffer) => parts.push(c));
        ur.on('end', () => {
          const body = Buffer.concat(parts);
          if (body.length < 2) { res.writeHead(ur.statusCode!, ur.headers).end(body); return; }
          cut++;
          res.writeHead(ur.statusCode!, ur.headers);
          res.write(body.subarray(0, body.length >> 1), () => res.destroy());
        });
        return;
      }
      res.writeHead(ur.statusCode!, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    take() { const c = counts; counts = { registry: new Map(), client: new Map() }; return c; },
    inject(f, count) { fault = f; faultsLeft = count; },
    faultsServed: () => served,
    cutBodies(count) { cutsLeft = count; },
    bodiesCut: () => cut,
    close: () => new Promise<void>((r) => { agent.destroy(); server.close(() => r()); server.closeAllConnections(); }),
  };
}
