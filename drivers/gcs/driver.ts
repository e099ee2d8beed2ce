// Google Cloud Storage driver (@google-cloud/storage), with distribution's
// parameters (bucket, keyfile or credentials, rootdirectory, chunksize) and
// `endpoint` for emulators and private endpoints. Keys are rootdirectory +
// path; directories are prefixes. The SDK retries 429 and 5xx with backoff.
// Its object reads never end when the connection breaks mid-body (v7 pipes
// node-fetch 2's response, which drops the error): every body is read through
// stallGuard, and small objects through readWhole, which reads them again.
import { type Bucket, type File, RETRYABLE_ERR_FN_DEFAULT, Storage } from '@google-cloud/storage';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import {
  type DriverContext, type DriverObserver, type FileInfo, type FileWriter, type StorageDriver, type WalkResult,
  InvalidOffsetError, PathNotFoundError, StorageDriverError,
} from '../driver.js';
import { AFTER_ALL, KeyMapper, flatWalk } from '../base.js';
import { STALL_MS, readWhole, stallGuard } from '../wholeRead.js';
import type { BatchEndpoint } from './batch.js';
import { EMPTY_MARK, type GcsContext, GcsWriter, PART_MARK, deleteObjects, listParts } from './writer.js';


const NAME = 'gcs';
const REDIRECT_TTL_MS = 20 * 60_000;

export interface GcsParams {
  bucket: string;
  keyfile?: string;
  credentials?: Record<string, unknown>;
  rootdirectory?: string;
  chunksize?: number;
  endpoint?: string;
  /** Retries after the first attempt (429, 5xx), with exponential backoff up to 8 s apart. */
  maxretries?: number;
  /** Added to the SDK's User-Agent. */
  useragent?: string;
  /** ms a body may give no byte while read before it is taken as dead (wholeRead.ts); 60 s by default. */
  readstalltimeout?: number;
  log?: Logger;
  observer?: DriverObserver;
}

/** Where and how batch requests go: the SDK's endpoint, with the SDK's
 *  credentials unless it sends none (a custom endpoint, as for emulators). */
function batchEndpoint(storage: Storage, p: GcsParams): BatchEndpoint {
  const s = storage as unknown as { customEndpoint?: boolean; useAuthWithCustomEndpoint?: boolean };
  const ua = `${p.useragent ? `${p.useragent} ` : ''}gcloud-node-storage`;
  return {
    apiEndpoint: storage.apiEndpoint,
    bucket: p.bucket,
    headers: async () => {
      const base = { 'User-Agent': ua, 'x-goog-api-client': `gl-node/${process.versions.node}` };
      if (s.customEndpoint && !s.useAuthWithCustomEndpoint) return base;
      return { ...(await storage.authClient.getRequestHeaders()) as Record<string, string>, ...base };
    },
  };
}

const code = (e: unknown) => (e as { code?: number })?.code;
const isPart = (key: string) => key.includes(PART_MARK); // parts and compose intermediates

export class GcsDriver implements StorageDriver {
  readonly flatWalk = true;
  readonly bucket: Bucket;
  private readonly c: GcsContext;
  private readonly keys: KeyMapper;
  private readonly canSign: boolean;
  private readonly warned = new Set<string>();

  constructor(private readonly p: GcsParams) {
    const storage = new Storage({
      apiEndpoint: p.endpoint,
      userAgent: p.useragent,
      keyFilename: p.keyfile,
      credentials: p.credentials as never,
      projectId: (p.credentials?.project_id as string | undefined) ?? (p.endpoint ? 'emulator' : undefined),
      // Retry every request kind on 429/5xx: our writes are idempotent or
      // guarded by preconditions, and the registry re-checks what it commits.
      // The SDK's default waits up to 64 s between tries (10 minutes in all):
      // a registry request would hang that long. 1+2+4+8 s is enough for throttling.
      retryOptions: {
        autoRetry: true, maxRetries: p.maxretries ?? 4, maxRetryDelay: 8, totalTimeout: 60, idempotencyStrategy: 0 /* RetryAlways */,
        // The SDK's own decision, told to the metrics.
        retryableErrorFn: (e) => {
          const retry = RETRYABLE_ERR_FN_DEFAULT(e);
          if (p.observer) {
            if (e?.code === 429 || e?.code === 503) p.observer.throttled();
            if (retry) p.observer.retry();
          }
          return retry;
        },
      },
    });
    this.bucket = storage.bucket(p.bucket);
    this.keys = new KeyMapper(p.rootdirectory);
    // Signing needs a private key: from keyfile or credentials (a service account).
    this.canSign = Boolean(p.keyfile || p.credentials?.private_key);
    this.c = {
      bucket: this.bucket,
      chunkSize: p.chunksize ?? 16 << 20,
      contentType: 'application/octet-stream',
      canCompose: true,
      stallMs: p.readstalltimeout ?? STALL_MS,
      batch: batchEndpoint(storage, p),
      throttled: () => p.observer?.throttled(),
      warnOnce: (kind, msg) => {
        if (this.warned.has(kind)) return;
        this.warned.add(kind);
        if (p.log) p.log.warn(msg); else process.emitWarning(msg);
      },
    };
  }

  name(): string { return NAME; }

  private key(p: string): string { return this.keys.key(p); }
  private pathOf(key: string): string { return this.keys.pathOf(key); }
  private dirPrefix(p: string): string { return this.keys.dirPrefix(p); }

  private async page(q: { prefix: string; delimiter?: string; maxResults?: number; pageToken?: string; startOffset?: string }): Promise<{ files: File[]; prefixes: string[]; next?: string }> {
    const [files, nextQuery, resp] = await this.bucket.getFiles({ ...q, autoPaginate: false, maxResults: q.maxResults ?? 1000 });
    return {
      files,
      prefixes: ((resp as { prefixes?: string[] } | undefined)?.prefixes) ?? [],
      next: (nextQuery as { pageToken?: string } | null)?.pageToken,
    };
  }

  async getContent(_ctx: DriverContext, p: string): Promise<Buffer> {
    const file = this.bucket.file(this.key(p));
    return readWhole(NAME, p, async () => {
      const r = await this.open(file, 0);
      if (typeof r === 'number') {
        if (r === 404) throw new PathNotFoundError(p, NAME);
        throw new StorageDriverError(`${NAME}: read of ${p} answered ${r}`, NAME);
      }
      return { body: r.stream, length: r.length };
    }, this.stallMs);
  }

  async putContent(_ctx: DriverContext, p: string, content: Buffer): Promise<void> {
    // One upload replaces the object whole: readers see the old content or the new.
    await this.bucket.file(this.key(p)).save(content, { resumable: false, validation: false, contentType: this.c.contentType });
  }

  /**
   * Opens a ranged read and waits for the answer, so a missing file fails
   * here, not mid-stream: the body (not yet guarded) and its announced length,
   * or the status of a refusal.
   */
  private async open(file: File, offset: number): Promise<{ stream: Readable; length?: number } | number> {
    const s = file.createReadStream({ start: offset, validation: false });
    let length: number | undefined;
    const status = await new Promise<number>((resolve, reject) => {
      s.once('response', (r: { statusCode: number; headers: Record<string, string | undefined> }) => {
        const n = Number(r.headers['content-length']);
        if (r.headers['content-length'] !== undefined && Number.isSafeInteger(n) && !r.headers['content-encoding']) length = n;
        // A server that ignores an unsatisfiable range (the emulator, at the
        // end of the file) answers 200 with everything: treat it as GCS's 416.
        resolve(offset > 0 && r.statusCode === 200 && !r.headers['content-range'] ? 416 : r.statusCode);
      });
      s.once('error', (e) => reject(e));
      s.read(0); // the SDK sends the request on the first read
    }).catch((e) => code(e) ?? Promise.reject(e));
    if (status >= 200 && status < 300) return { stream: s, length };
    s.on('error', () => { /* answered already: the status is what counts */ });
    s.destroy();
    return status;
  }

  private get stallMs(): number { return this.c.stallMs; }

  async reader(ctx: DriverContext, p: string, offset: number): Promise<Readable> {
    if (offset < 0) throw new InvalidOffsetError(p, offset, NAME);
    const r = await this.open(this.bucket.file(this.key(p)), offset);
    if (typeof r !== 'number') return stallGuard(r.stream, this.stallMs, `${NAME}: ${p}`);
    if (r === 404) {
      // A file being written is readable too: its parts, in order.
      const parts = await listParts(this.c, this.key(p), p);
      if (parts.length === 0 && !parts.marked) throw new PathNotFoundError(p, NAME);
      const size = parts.reduce((a, x) => a + x.size, 0);
      if (offset > size) throw new InvalidOffsetError(p, offset, NAME);
      const bucket = this.bucket;
      return stallGuard(Readable.from((async function* () {
        for (const part of parts) {
          if (part.offset + part.size <= offset || part.size === 0) continue;
          const start = Math.max(0, offset - part.offset);
          for await (const c of bucket.file(part.name).createReadStream({ start, validation: false })) yield c as Buffer;
        }
      })(), { objectMode: false }), this.stallMs, `${NAME}: ${p}`);
    }
    if (r !== 416) throw new StorageDriverError(`${NAME}: read of ${p} answered ${r}`, NAME);
    const size = (await this.stat(ctx, p)).size;
    if (offset === size) return Readable.from([]);
    throw new InvalidOffsetError(p, offset, NAME);
  }

  async writer(ctx: DriverContext, p: string, append: boolean): Promise<FileWriter> {
    const key = this.key(p);
    const keyOf = (path: string) => this.key(path);
    if (!append) return new GcsWriter(this.c, key, p, [], keyOf);
    const parts = await listParts(this.c, key, p);
    if (parts.length === 0 && !parts.marked) {
      const fi = await this.stat(ctx, p).catch(() => null);
      if (fi && !fi.isDir) throw new StorageDriverError(`${NAME}: ${p} is committed and cannot be appended to`, NAME);
      throw new PathNotFoundError(p, NAME);
    }
    return new GcsWriter(this.c, key, p, [...parts], keyOf, parts.marked);
  }

  async stat(_ctx: DriverContext, p: string): Promise<FileInfo> {
    if (p === '/') return { path: p, size: 0, modTime: new Date(0), isDir: true };
    const key = this.key(p);
    // One list answers file, file being written and directory: `key` sorts
    // first, then `key#part-…`, then siblings such as `key-x`, then `key/…`.
    const res = await this.page({ prefix: key, maxResults: 1 });
    const first = res.files[0];
    if (first?.name === key) {
      return { path: p, size: Number(first.metadata.size ?? 0), modTime: new Date(first.metadata.updated ?? 0), isDir: false };
    }
    if (first?.name.startsWith(key + PART_MARK)) {
      const parts = await listParts(this.c, key, p);
      const last = parts[parts.length - 1]?.name ?? (parts.marked ? key + PART_MARK + EMPTY_MARK : undefined);
      const lastFile = last ? await this.bucket.file(last).getMetadata().then(([m]) => m) : undefined;
      return { path: p, size: parts.reduce((a, x) => a + x.size, 0), modTime: new Date(lastFile?.updated ?? 0), isDir: false };
    }
    if (first?.name.startsWith(`${key}/`)) return { path: p, size: 0, modTime: new Date(0), isDir: true };
    if (first && res.next) {
      const dir = await this.page({ prefix: `${key}/`, maxResults: 1 });
      if (dir.files.length > 0) return { path: p, size: 0, modTime: new Date(0), isDir: true };
    }
    throw new PathNotFoundError(p, NAME);
  }

  async list(_ctx: DriverContext, p: string): Promise<string[]> {
    const out = new Set<string>();
    let pageToken: string | undefined;
    do {
      const res = await this.page({ prefix: this.dirPrefix(p), delimiter: '/', pageToken });
      for (const f of res.files) {
        // A file being written is listed under its own name, as on a filesystem.
        const i = f.name.indexOf(PART_MARK);
        out.add(this.pathOf(i === -1 ? f.name : f.name.slice(0, i)));
      }
      for (const pre of res.prefixes) out.add(this.pathOf(pre));
      pageToken = res.next;
    } while (pageToken);
    if (out.size === 0 && p !== '/') throw new PathNotFoundError(p, NAME);
    return [...out].sort();
  }

  async move(_ctx: DriverContext, src: string, dest: string): Promise<void> {
    const from = this.bucket.file(this.key(src));
    try {
      // rewrite (the SDK loops on its token for large objects), server-side.
      await from.copy(this.bucket.file(this.key(dest)));
    } catch (e) {
      if (code(e) === 404) throw new PathNotFoundError(src, NAME);
      throw e;
    }
    await from.delete({ ignoreNotFound: true });
  }

  async delete(_ctx: DriverContext, p: string): Promise<void> {
    const key = this.key(p);
    const below = `${key}/`;
    const names: string[] = [];
    let pageToken: string | undefined;
    outer: do {
      const res = await this.page({ prefix: key, pageToken });
      for (const f of res.files) {
        const k = f.name;
        if (k === key || k.startsWith(key + PART_MARK) || k.startsWith(below)) names.push(k);
        else if (k > below + AFTER_ALL) break outer;
      }
      pageToken = res.next;
    } while (pageToken);
    if (names.length === 0) throw new PathNotFoundError(p, NAME);
    await deleteObjects(this.c, names);
  }

  /** Batches of 100 (batch.ts), without the listing a path's delete needs. */
  async deleteFiles(_ctx: DriverContext, paths: string[]): Promise<void> {
    await deleteObjects(this.c, paths.map((p) => this.key(p)));
  }

  async walk(ctx: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
    if (!(await this.flat(ctx, p, fn)) && p !== '/') throw new PathNotFoundError(p, NAME);
  }

  async walkFrom(ctx: DriverContext, p: string, from: string, fn: (fi: FileInfo) => Promise<WalkResult | 'stop'> | WalkResult | 'stop'): Promise<void> {
    // startOffset is inclusive; from itself is a folder name, never a key.
    await this.flat(ctx, p, fn, from);
  }

  private flat(ctx: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult | 'stop'> | WalkResult | 'stop', from?: string): Promise<boolean> {
    const prefix = this.dirPrefix(p);
    return flatWalk(this.keys, prefix, async ({ token, after }) => {
      const res = await this.page({ prefix, pageToken: token, startOffset: after });
      return { keys: res.files.map((f) => ({ key: f.name, size: Number(f.metadata.size ?? 0), modTime: new Date(f.metadata.updated ?? 0) })), next: res.next };
    }, (k) => (isPart(k) ? k.slice(0, k.indexOf(PART_MARK)) : null), (path) => this.stat(ctx, path), fn, from);
  }

  async redirectURL(_ctx: DriverContext, method: string, p: string): Promise<string | null> {
    // A V4 signature covers the method: GET only (HEADs are answered by the registry).
    if (!this.canSign || method !== 'GET') return null;
    const [url] = await this.bucket.file(this.key(p)).getSignedUrl({
      version: 'v4', action: 'read', expires: Date.now() + REDIRECT_TTL_MS,
      ...(this.p.endpoint ? { host: this.p.endpoint } : {}),
    });
    return url;
  }
}

