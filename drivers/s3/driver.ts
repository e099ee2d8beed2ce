// S3 driver (@aws-sdk/client-s3), with distribution's parameters. Keys are
// rootdirectory + path; directories are key prefixes. The SDK retries
// throttling (SlowDown, 503) and transient 5xx with backoff; its retries end
// when the headers arrive, so a small object's body cut off mid-read is read
// again by readWhole (wholeRead.ts).
import {
  CopyObjectCommand, CreateMultipartUploadCommand, DeleteObjectCommand, CompleteMultipartUploadCommand, DeleteObjectsCommand,
  GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCopyCommand,
  type ListObjectsV2CommandOutput, type ObjectCannedACL, type StorageClass,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import {
  type DriverContext, type DriverObserver, type FileInfo, type FileWriter, type StorageDriver, type WalkResult,
  InvalidOffsetError, PathNotFoundError, StorageDriverError,
} from '../driver.js';
import { AFTER_ALL, KeyMapper, flatWalk } from '../base.js';
import type { ObjectOptions, S3Context } from './context.js';
import { MIN_PART, S3Writer, SIDECAR_SUFFIX, abortUpload, decodeSidecar } from './writer.js';
import { RateLimiter } from '../regulator.js';
import { readWhole } from '../wholeRead.js';

const NAME = 's3';
const REDIRECT_TTL_S = 20 * 60;
const MAX_COPY = 5 * 1024 ** 3; // CopyObject's limit

export interface S3Params {
  region: string;
  regionendpoint?: string;
  forcepathstyle?: boolean;
  bucket: string;
  rootdirectory?: string;
  accesskey?: string;
  secretkey?: string;
  sessiontoken?: string;
  encrypt?: boolean;
  keyid?: string;
  secure?: boolean;
  skipverify?: boolean;
  chunksize?: number;
  multipartcopychunksize?: number;
  multipartcopymaxconcurrency?: number;
  multipartcopythresholdsize?: number;
  storageclass?: string;
  objectacl?: string;
  useragent?: string;
  usedualstack?: boolean;
  accelerate?: boolean;
  usefipsendpoint?: boolean;
  /** At most this many requests a second to the store (0 or unset: no bound). */
  maxrequestspersecond?: number;
  /** Retries after the first attempt (the SDK's maxAttempts - 1). */
  maxretries?: number;
  log?: Logger;
  observer?: DriverObserver;
}

const status = (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
const notFound = (e: unknown) => status(e) === 404 || (e as Error)?.name === 'NoSuchKey' || (e as Error)?.name === 'NotFound';
const isSidecar = (key: string) => key.endsWith(SIDECAR_SUFFIX);

export class S3Driver implements StorageDriver {
  readonly flatWalk = true;
  readonly client: S3Client;
  private readonly c: S3Context;
  private readonly keys: KeyMapper;
  private readonly copyChunk: number;
  private readonly copyConcurrency: number;
  private readonly copyThreshold: number;
  private readonly warned = new Set<string>();
  /** Set once the store answers UploadPartCopy with NotImplemented (s3rver). */
  private noPartCopy = false;
  /** storage.s3.maxrequestspersecond, when set. */
  readonly limiter?: RateLimiter;

  constructor(private readonly p: S3Params) {
    let endpoint = p.regionendpoint;
    if (endpoint && !/^https?:\/\//.test(endpoint)) endpoint = `${p.secure === false ? 'http' : 'https'}://${endpoint}`;
    const maxSockets = 128;
    this.client = new S3Client({
      region: p.region,
      endpoint,
      // distribution 2.8 used path style whenever an endpoint was given.
      forcePathStyle: p.forcepathstyle ?? Boolean(endpoint),
      credentials: p.accesskey && p.secretkey
        ? { accessKeyId: p.accesskey, secretAccessKey: p.secretkey, sessionToken: p.sessiontoken }
        : undefined, // the SDK's default chain: env, profile, web identity, ECS, EC2 metadata
      customUserAgent: p.useragent,
      useDualstackEndpoint: p.usedualstack,
      useAccelerateEndpoint: p.accelerate,
      useFipsEndpoint: p.usefipsendpoint,
      retryMode: 'standard',
      maxAttempts: (p.maxretries ?? 4) + 1,
      // The SDK's default flexible checksums (CRC32 trailers on every PUT since
      // 3.729) are refused by many S3-compatible stores; S3 still gets the
      // checksums it requires (DeleteObjects), and the registry verifies digests itself.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets, rejectUnauthorized: !p.skipverify }),
      },
    });
    if (p.maxrequestspersecond) {
      // Below the retry step, so every attempt (retries too) waits for a token.
      const limiter = new RateLimiter(p.maxrequestspersecond);
      this.limiter = limiter;
      this.client.middlewareStack.add((next) => async (args) => { await limiter.take(); return next(args); }, { step: 'deserialize', name: 'registryRateLimit' });
    }
    const obs = p.observer;
    if (obs) {
      // Above the retry step: the attempts behind one call; below it: each answer that asks to slow down.
      const attempts = (x: unknown) => (x as { $metadata?: { attempts?: number } })?.$metadata?.attempts ?? 1;
      this.client.middlewareStack.add((next) => async (args) => {
        try {
          const out = await next(args);
          for (let i = 1; i < attempts(out.output); i++) obs.retry();
          return out;
        } catch (e) {
          for (let i = 1; i < attempts(e); i++) obs.retry();
          throw e;
        }
      }, { step: 'initialize', name: 'registryRetryCount' });
      // This step runs inside the SDK's deserializer: it sees each attempt's raw answer (a 503 is not yet an error).
      this.client.middlewareStack.add((next) => async (args) => {
        try {
          const out = await next(args);
          const code = (out.response as { statusCode?: number } | undefined)?.statusCode;
          if (code === 503 || code === 429) obs.throttled();
          return out;
        } catch (e) {
          if (status(e) === 503 || status(e) === 429 || (e as Error)?.name === 'SlowDown') obs.throttled();
          throw e;
        }
      }, { step: 'deserialize', name: 'registryThrottleCount' });
    }
    const objectOptions: ObjectOptions = { ContentType: 'application/octet-stream' };
    if (p.encrypt) {
      objectOptions.ServerSideEncryption = p.keyid ? 'aws:kms' : 'AES256';
      if (p.keyid) objectOptions.SSEKMSKeyId = p.keyid;
    }
    if (p.storageclass && p.storageclass !== 'NONE') objectOptions.StorageClass = p.storageclass as StorageClass;
    if (p.objectacl) objectOptions.ACL = p.objectacl as ObjectCannedACL;
    this.c = {
      client: this.client,
      bucket: p.bucket,
      chunkSize: p.chunksize ?? 2 * MIN_PART,
      objectOptions,
      warnOnce: (kind, msg) => {
        if (this.warned.has(kind)) return;
        this.warned.add(kind);
        if (p.log) p.log.warn(msg); else process.emitWarning(msg);
      },
    };
    this.keys = new KeyMapper(p.rootdirectory);
    this.copyChunk = p.multipartcopychunksize ?? 32 << 20;
    this.copyConcurrency = p.multipartcopymaxconcurrency ?? 100;
    this.copyThreshold = p.multipartcopythresholdsize ?? 32 << 20;
  }

  name(): string { return NAME; }

  private key(p: string): string { return this.keys.key(p); }
  private pathOf(key: string): string { return this.keys.pathOf(key); }
  private dirPrefix(p: string): string { return this.keys.dirPrefix(p); }

  private list1(input: { Prefix: string; Delimiter?: string; MaxKeys?: number; ContinuationToken?: string; StartAfter?: string }): Promise<ListObjectsV2CommandOutput> {
    return this.client.send(new ListObjectsV2Command({ Bucket: this.p.bucket, ...input }));
  }

  /** A whole small object; a body cut off is read again (wholeRead.ts). */
  private getObjectBytes(key: string): Promise<Buffer> {
    return readWhole(NAME, key, async () => {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.p.bucket, Key: key }));
      return { body: res.Body as Readable, length: res.ContentLength };
    });
  }

  async getContent(_ctx: DriverContext, p: string): Promise<Buffer> {
    try {
      return await this.getObjectBytes(this.key(p));
    } catch (e) {
      if (notFound(e)) throw new PathNotFoundError(p, NAME);
      throw e;
    }
  }

  async putContent(_ctx: DriverContext, p: string, content: Buffer): Promise<void> {
    // One PUT replaces the object whole: readers see the old content or the new.
    await this.client.send(new PutObjectCommand({ ...this.c.objectOptions, Bucket: this.p.bucket, Key: this.key(p), Body: content, ContentLength: content.length }));
  }

  async reader(ctx: DriverContext, p: string, offset: number): Promise<Readable> {
    return (await this.readerWithSize(ctx, p, offset)).stream;
  }

  /** One GET: the body and, from its headers, the object's whole size. */
  async readerWithSize(ctx: DriverContext, p: string, offset: number): Promise<{ stream: Readable; size: number }> {
    if (offset < 0) throw new InvalidOffsetError(p, offset, NAME);
    try {
      const res = await this.client.send(new GetObjectCommand({
        Bucket: this.p.bucket, Key: this.key(p), Range: offset > 0 ? `bytes=${offset}-` : undefined,
      }), { abortSignal: ctx.signal });
      const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
      return { stream: res.Body as Readable, size: total !== undefined ? Number(total) : offset + (res.ContentLength ?? 0) };
    } catch (e) {
      if (notFound(e)) throw new PathNotFoundError(p, NAME);
      if (status(e) !== 416) throw e;
    }
    const size = (await this.stat(ctx, p)).size;
    if (offset === size) return { stream: Readable.from([]), size };
    throw new InvalidOffsetError(p, offset, NAME);
  }

  async writer(_ctx: DriverContext, p: string, append: boolean): Promise<FileWriter> {
    const key = this.key(p);
    // A new writer costs no request until it has something to store.
    const keyOf = (path: string) => this.key(path);
    if (!append) return new S3Writer(this.c, key, p, { parts: [], size: 0 }, null, false, keyOf);
    let body: Buffer;
    try {
      body = await this.getObjectBytes(key + SIDECAR_SUFFIX);
    } catch (e) {
      if (!notFound(e)) throw e;
      const fi = await this.stat({}, p).catch(() => null);
      if (fi && !fi.isDir) throw new StorageDriverError(`${NAME}: ${p} is committed and cannot be appended to`, NAME);
      throw new PathNotFoundError(p, NAME);
    }
    const { state, tail } = decodeSidecar(body, p);
    return new S3Writer(this.c, key, p, state, tail, true, keyOf);
  }

  async stat(_ctx: DriverContext, p: string): Promise<FileInfo> {
    if (p === '/') return { path: p, size: 0, modTime: new Date(0), isDir: true };
    const key = this.key(p);
    // One LIST answers file, file being written and directory alike: `key`
    // sorts first, then `key#writer`, then siblings such as `key-x`, then `key/…`.
    const res = await this.list1({ Prefix: key, MaxKeys: 1 });
    const first = res.Contents?.[0];
    if (first?.Key === key) return { path: p, size: first.Size ?? 0, modTime: first.LastModified ?? new Date(0), isDir: false };
    if (first?.Key === key + SIDECAR_SUFFIX) {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.p.bucket, Key: first.Key }));
      return { path: p, size: Number(head.Metadata?.size ?? 0), modTime: head.LastModified ?? new Date(0), isDir: false };
    }
    if (first?.Key?.startsWith(`${key}/`)) return { path: p, size: 0, modTime: new Date(0), isDir: true };
    if (first && res.IsTruncated) {
      // A sibling sharing the prefix came first: ask about the directory alone.
      const dir = await this.list1({ Prefix: `${key}/`, MaxKeys: 1 });
      if ((dir.KeyCount ?? dir.Contents?.length ?? 0) > 0) return { path: p, size: 0, modTime: new Date(0), isDir: true };
    }
    throw new PathNotFoundError(p, NAME);
  }

  async list(_ctx: DriverContext, p: string): Promise<string[]> {
    const out = new Set<string>();
    let token: string | undefined;
    do {
      const res = await this.list1({ Prefix: this.dirPrefix(p), Delimiter: '/', ContinuationToken: token });
      for (const o of res.Contents ?? []) {
        // A file being written is listed under its own name, as on a filesystem.
        out.add(this.pathOf(isSidecar(o.Key!) ? o.Key!.slice(0, -SIDECAR_SUFFIX.length) : o.Key!));
      }
      for (const cp of res.CommonPrefixes ?? []) out.add(this.pathOf(cp.Prefix!));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    if (out.size === 0 && p !== '/') throw new PathNotFoundError(p, NAME);
    return [...out].sort();
  }

  async move(ctx: DriverContext, src: string, dest: string): Promise<void> {
    const from = this.key(src);
    const to = this.key(dest);
    let size: number;
    try {
      size = (await this.client.send(new HeadObjectCommand({ Bucket: this.p.bucket, Key: from }))).ContentLength ?? 0;
    } catch (e) {
      if (notFound(e)) throw new PathNotFoundError(src, NAME);
      throw e;
    }
    if (size > this.copyThreshold && !this.noPartCopy) {
      const copied = await this.multipartCopy(ctx, from, to, size);
      if (!copied && size > MAX_COPY) throw new StorageDriverError(`${NAME}: cannot copy ${size} bytes on a store without UploadPartCopy`, NAME);
      if (!copied) await this.copyObject(from, to);
    } else {
      await this.copyObject(from, to);
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.p.bucket, Key: from }));
  }

  private async copyObject(from: string, to: string): Promise<void> {
    await this.client.send(new CopyObjectCommand({
      ...this.c.objectOptions, Bucket: this.p.bucket, Key: to, CopySource: encodeURI(`${this.p.bucket}/${from}`),
    }));
  }

  /** Server-side copy in parts of multipartcopychunksize, a bounded number at a time. Returns false if the store lacks UploadPartCopy. */
  private async multipartCopy(ctx: DriverContext, from: string, to: string, size: number): Promise<boolean> {
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ ...this.c.objectOptions, Bucket: this.p.bucket, Key: to }));
    const count = Math.ceil(size / this.copyChunk);
    const parts: { PartNumber: number; ETag: string }[] = new Array(count);
    let next = 0;
    let unsupported = false;
    const worker = async () => {
      while (next < count && !unsupported) {
        const i = next++;
        const start = i * this.copyChunk;
        const end = Math.min(size, start + this.copyChunk) - 1;
        try {
          const res = await this.client.send(new UploadPartCopyCommand({
            Bucket: this.p.bucket, Key: to, UploadId, PartNumber: i + 1,
            CopySource: encodeURI(`${this.p.bucket}/${from}`), CopySourceRange: `bytes=${start}-${end}`,
          }), { abortSignal: ctx.signal });
          parts[i] = { PartNumber: i + 1, ETag: res.CopyPartResult?.ETag ?? '' };
        } catch (e) {
          if (status(e) === 501) { unsupported = true; return; }
          throw e;
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.copyConcurrency, count) }, worker));
    } catch (e) {
      await abortUpload(this.c, to, UploadId!).catch(() => {});
      throw e;
    }
    if (unsupported) {
      this.noPartCopy = true;
      this.c.warnOnce('partcopy', `${NAME}: the store does not support UploadPartCopy; moves use one CopyObject (up to 5 GiB)`);
      await abortUpload(this.c, to, UploadId!);
      return false;
    }
    await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.p.bucket, Key: to, UploadId, MultipartUpload: { Parts: parts } }));
    return true;
  }

  async delete(_ctx: DriverContext, p: string): Promise<void> {
    const key = this.key(p);
    const below = `${key}/`;
    const keys: string[] = [];
    let token: string | undefined;
    // `key`, `key#writer`, siblings like `key-x`, then everything under `key/`.
    outer: do {
      const res = await this.list1({ Prefix: key, ContinuationToken: token });
      for (const o of res.Contents ?? []) {
        const k = o.Key!;
        if (k === key || k === key + SIDECAR_SUFFIX || k.startsWith(below)) keys.push(k);
        else if (k > below + AFTER_ALL) break outer;
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    if (keys.length === 0) throw new PathNotFoundError(p, NAME);
    // Files still being written hold a multipart upload: abort it, or it is billed forever.
    for (const k of keys.filter(isSidecar)) {
      try {
        const { state } = decodeSidecar(await this.getObjectBytes(k), k);
        if (state.uploadId) await abortUpload(this.c, k.slice(0, -SIDECAR_SUFFIX.length), state.uploadId);
      } catch (e) {
        if (!notFound(e)) this.c.warnOnce('sidecar', `${NAME}: could not abort the upload behind ${k}: ${(e as Error).message}`);
      }
    }
    for (let i = 0; i < keys.length; i += 1000) {
      const res = await this.client.send(new DeleteObjectsCommand({
        Bucket: this.p.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
      }));
      if (res.Errors?.length) throw new StorageDriverError(`${NAME}: delete of ${p} failed for ${res.Errors.length} keys: ${res.Errors[0].Code} ${res.Errors[0].Message}`, NAME);
    }
  }

  async deleteFiles(_ctx: DriverContext, paths: string[]): Promise<void> {
    const keys = paths.map((p) => this.key(p));
    for (let i = 0; i < keys.length; i += 1000) {
      const res = await this.client.send(new DeleteObjectsCommand({
        Bucket: this.p.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
      }));
      if (res.Errors?.length) throw new StorageDriverError(`${NAME}: delete of ${res.Errors.length} of ${keys.length} keys failed: ${res.Errors[0].Code} ${res.Errors[0].Message}`, NAME);
    }
  }

  async walk(_ctx: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
    if (!(await this.flat(p, fn)) && p !== '/') throw new PathNotFoundError(p, NAME);
  }

  async walkFrom(_ctx: DriverContext, p: string, from: string, fn: (fi: FileInfo) => Promise<WalkResult | 'stop'> | WalkResult | 'stop'): Promise<void> {
    await this.flat(p, fn, from);
  }

  private flat(p: string, fn: (fi: FileInfo) => Promise<WalkResult | 'stop'> | WalkResult | 'stop', from?: string): Promise<boolean> {
    const prefix = this.dirPrefix(p);
    return flatWalk(this.keys, prefix, async ({ token, after }) => {
      const res = await this.list1({ Prefix: prefix, ContinuationToken: token, StartAfter: after });
      return {
        keys: (res.Contents ?? []).map((o) => ({ key: o.Key!, size: o.Size ?? 0, modTime: o.LastModified ?? new Date(0) })),
        next: res.IsTruncated ? res.NextContinuationToken : undefined,
      };
    }, (k) => (isSidecar(k) ? k.slice(0, -SIDECAR_SUFFIX.length) : null), (path) => this.stat({}, path), fn, from);
  }

  async redirectURL(_ctx: DriverContext, method: string, p: string): Promise<string | null> {
    if (method !== 'GET' && method !== 'HEAD') return null;
    const input = { Bucket: this.p.bucket, Key: this.key(p) };
    return getSignedUrl(this.client, method === 'GET' ? new GetObjectCommand(input) : new HeadObjectCommand(input), { expiresIn: REDIRECT_TTL_S });
  }
}
