// Azure Blob driver (@azure/storage-blob). Files being written are append
// blobs: any process can continue one (its size is the blob's length), and
// its bytes are readable before commit, so an upload resumes anywhere.
import {
  AnonymousCredential, BlobSASPermissions, BlobServiceClient, type ContainerClient, RestError, StorageSharedKeyCredential,
  type UserDelegationKey, newPipeline,
} from '@azure/storage-blob';
import { ClientSecretCredential, DefaultAzureCredential } from '@azure/identity';
import type { TokenCredential } from '@azure/core-auth';
import { Agent as HttpsAgent } from 'node:https';
import type { Logger } from 'pino';
import { Readable } from 'node:stream';
import {
  type DriverContext, type DriverObserver, type FileInfo, type FileWriter, type StorageDriver, type WalkResult,
  InvalidOffsetError, PathNotFoundError, StorageDriverError,
} from '../driver.js';
import { KeyMapper, flatWalk } from '../base.js';
import { AzureWriter } from './writer.js';
import { readWhole } from '../wholeRead.js';

const NAME = 'azure';
const REDIRECT_TTL_MS = 20 * 60_000;
const SAS_VERSION = '2025-11-05';
/** List Blobs' largest page. */
const LIST_PAGE = 5000;

export interface AzureParams {
  accountname: string;
  accountkey?: string;
  container: string;
  realm?: string;
  serviceurl?: string;
  rootdirectory?: string;
  /** distribution 3's credentials: default (DefaultAzureCredential), client_secret, or shared_key (accountkey). */
  credentials?: { type?: 'default' | 'client_secret' | 'shared_key'; clientid?: string; tenantid?: string; secret?: string };
  /** An Azure Storage connection string (AccountName/AccountKey/BlobEndpoint..., or SharedAccessSignature). */
  connectionstring?: string;
  /** Retries after the first attempt (the SDK's maxTries - 1; exponential backoff). */
  maxretries?: number;
  /** The first retry's delay (the SDK's retryDelayInMs; it doubles after). */
  retrydelayMs?: number;
  /** Do not verify the endpoint's TLS certificate. */
  skipverify?: boolean;
  /** A copy the service runs asynchronously is polled this often (ms), at most this many times. */
  copyPollDelayMs?: number;
  copyPollMaxRetry?: number;
  /** Blobs per page of a walk's listing (5,000, the service's largest); smaller in tests. */
  listPageSize?: number;
  log?: Logger;
  observer?: DriverObserver;
}

/** Reads a connection string into an endpoint and a credential. */
export function parseConnectionString(cs: string): { url: string; credential: StorageSharedKeyCredential | AnonymousCredential; sas?: string; accountname?: string } {
  const kv = new Map<string, string>();
  for (const part of cs.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) kv.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim());
  }
  if (kv.get('usedevelopmentstorage') === 'true') {
    kv.set('accountname', 'devstoreaccount1');
    kv.set('accountkey', 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==');
    kv.set('blobendpoint', 'http://127.0.0.1:10000/devstoreaccount1');
  }
  const account = kv.get('accountname');
  const url = kv.get('blobendpoint')
    ?? (account ? `${kv.get('defaultendpointsprotocol') ?? 'https'}://${account}.blob.${kv.get('endpointsuffix') ?? 'core.windows.net'}` : undefined);
  if (!url) throw new Error('storage.azure.connectionstring names no BlobEndpoint and no AccountName');
  const key = kv.get('accountkey');
  if (key) {
    if (!account) throw new Error('storage.azure.connectionstring has an AccountKey but no AccountName');
    return { url, credential: new StorageSharedKeyCredential(account, key), accountname: account };
  }
  const sas = kv.get('sharedaccesssignature');
  if (!sas) throw new Error('storage.azure.connectionstring has neither AccountKey nor SharedAccessSignature');
  return { url, credential: new AnonymousCredential(), sas: sas.replace(/^\?/, ''), accountname: account };
}

/** Counts each attempt's answer: a second attempt of one request is a retry;
 *  503, 429 and ServerBusy ask to slow down. The SDK runs pipeline steps of a
 *  factory named InjectorPolicyFactory after its retry policy, per attempt. */
class InjectorPolicyFactory {
  // Each attempt reaches this policy as a new request object (the SDK's
  // compatibility layer converts it per attempt), but with the call's
  // x-ms-client-request-id: a request id seen again is a retry. Bounded:
  // the oldest ids are forgotten first, long after their retries are done.
  private readonly seen = new Map<string, true>();
  constructor(private readonly obs: DriverObserver) {}
  create(next: { sendRequest(r: object): Promise<{ status: number; headers?: { get(n: string): string | undefined } }> }) {
    const { obs, seen } = this;
    return {
      async sendRequest(request: { requestId?: string }) {
        const id = request.requestId;
        if (id) {
          if (seen.has(id)) obs.retry();
          else {
            seen.set(id, true);
            if (seen.size > 4096) seen.delete(seen.keys().next().value!);
          }
        }
        const res = await next.sendRequest(request);
        if (res.status === 503 || res.status === 429 || res.headers?.get('x-ms-error-code') === 'ServerBusy') obs.throttled();
        return res;
      },
    };
  }
}

/** skipverify: a pipeline step that sends requests through an agent that does not check certificates. */
function insecureAgentFactory() {
  const agent = new HttpsAgent({ keepAlive: true, rejectUnauthorized: false });
  return {
    create: (next: { sendRequest(r: { agent?: unknown }): Promise<unknown> }) => ({
      sendRequest: (request: { agent?: unknown; url?: string }) => {
        if (request.url?.startsWith('https:')) request.agent = agent;
        return next.sendRequest(request);
      },
    }),
  };
}

const notFound = (e: unknown) => e instanceof RestError && e.statusCode === 404;

export class AzureDriver implements StorageDriver {
  readonly flatWalk = true;
  readonly container: ContainerClient;
  private readonly service: BlobServiceClient;
  private readonly keys: KeyMapper;
  private readonly sharedKey: boolean;
  private delegation: { expires: number; key: Promise<UserDelegationKey> } | null = null;
  private warnedDelegation = false;
  private readonly log?: Logger;

  constructor(private readonly params: AzureParams) {
    // A connection string, or an account key (shared-key signing), or a token
    // credential: client_secret, else DefaultAzureCredential (environment,
    // workload identity, managed identity, Azure CLI ...), whose redirects are
    // signed with a user delegation key.
    let url = params.serviceurl ?? `https://${params.accountname}.blob.${params.realm ?? 'core.windows.net'}`;
    let cred: StorageSharedKeyCredential | AnonymousCredential | TokenCredential;
    const type = params.credentials?.type ?? (params.accountkey ? 'shared_key' : 'default');
    if (params.connectionstring) {
      const cs = parseConnectionString(params.connectionstring);
      url = cs.sas ? `${cs.url}?${cs.sas}` : cs.url;
      cred = cs.credential;
    } else if (type === 'shared_key') {
      if (!params.accountkey) throw new Error('storage.azure.credentials.type shared_key needs storage.azure.accountkey');
      cred = new StorageSharedKeyCredential(params.accountname, params.accountkey);
    } else if (type === 'client_secret') {
      const c = params.credentials!;
      if (!c.tenantid || !c.clientid || !c.secret) throw new Error('storage.azure.credentials.type client_secret needs tenantid, clientid and secret');
      cred = new ClientSecretCredential(c.tenantid, c.clientid, c.secret);
    } else {
      cred = new DefaultAzureCredential();
    }
    const pipeline = newPipeline(cred, { retryOptions: { maxTries: (params.maxretries ?? 3) + 1, ...(params.retrydelayMs ? { retryDelayInMs: params.retrydelayMs } : {}) } });
    if (params.skipverify) (pipeline.factories as unknown[]).push(insecureAgentFactory());
    if (params.observer) (pipeline.factories as unknown[]).push(new InjectorPolicyFactory(params.observer));
    this.service = new BlobServiceClient(url, pipeline);
    this.container = this.service.getContainerClient(params.container);
    this.keys = new KeyMapper(params.rootdirectory);
    this.sharedKey = cred instanceof StorageSharedKeyCredential;
    this.log = params.log;
  }

  /** As distribution's driver: create the container if it does not exist. */
  async init(): Promise<void> {
    try {
      await this.container.createIfNotExists();
      return;
    } catch (e) {
      // Not allowed to create (a SAS or a role scoped to the container): fine if it exists.
      let exists: boolean | undefined;
      try { exists = await this.container.exists(); } catch { exists = undefined; }
      if (exists) return;
      const why = e instanceof RestError ? `${e.statusCode ?? ''} ${e.code ?? ''} ${e.message.split('\n')[0]}`.trim() : (e as Error).message;
      if (exists === undefined && e instanceof RestError && e.statusCode === 403) {
        // Credentials scoped to blobs only (a SAS without container rights) see
        // neither: the container may well exist; requests will tell.
        this.log?.warn(`${NAME}: cannot check or create container ${this.params.container} with these credentials (${why}); assuming it exists`);
        return;
      }
      throw new StorageDriverError(`${NAME}: container ${this.params.container} does not exist${exists === undefined ? ' or cannot be reached' : ''}, and creating it failed (${why}): create it, or give the registry's identity the right to (Storage Blob Data Contributor)`, NAME);
    }
  }

  /** A user delegation key (valid a day), renewed when less than an hour is left. */
  private async delegationKey(): Promise<UserDelegationKey> {
    const now = Date.now();
    if (!this.delegation || this.delegation.expires - now < 3600_000) {
      this.delegation ??= { expires: 0, key: null as unknown as Promise<UserDelegationKey> };
      const expires = now + 24 * 3600_000;
      const key = this.service.getUserDelegationKey(new Date(now - 5 * 60_000), new Date(expires)).then((r) => r as UserDelegationKey);
      this.delegation = { expires, key };
      key.catch(() => { if (this.delegation?.key === key) this.delegation = null; });
    }
    return this.delegation.key;
  }

  name(): string { return NAME; }

  private key(p: string): string { return this.keys.key(p); }
  private pathOf(key: string): string { return this.keys.pathOf(key); }
  private dirPrefix(p: string): string { return this.keys.dirPrefix(p); }

  async getContent(_ctx: DriverContext, p: string): Promise<Buffer> {
    try {
      // download() is one request; downloadToBuffer() asks for the properties
      // first. A body cut off is read again (wholeRead.ts): the SDK's stream
      // fails it with an AbortError.
      const blob = this.container.getBlobClient(this.key(p));
      return await readWhole(NAME, p, async () => {
        const res = await blob.download();
        return { body: res.readableStreamBody as Readable, length: res.contentLength };
      });
    } catch (e) {
      if (notFound(e)) throw new PathNotFoundError(p, NAME);
      throw e;
    }
  }

  async putContent(_ctx: DriverContext, p: string, content: Buffer): Promise<void> {
    // One PUT replaces the blob whole: readers see the old content or the new.
    await this.container.getBlockBlobClient(this.key(p)).uploadData(content);
  }

  async reader(ctx: DriverContext, p: string, offset: number): Promise<Readable> {
    return (await this.readerWithSize(ctx, p, offset)).stream;
  }

  /** One download: the body and, from its headers, the blob's whole size. */
  async readerWithSize(_ctx: DriverContext, p: string, offset: number): Promise<{ stream: Readable; size: number }> {
    if (offset < 0) throw new InvalidOffsetError(p, offset, NAME);
    const blob = this.container.getBlobClient(this.key(p));
    try {
      const res = await blob.download(offset);
      const total = /\/(\d+)$/.exec(res.contentRange ?? '')?.[1];
      return { stream: res.readableStreamBody as Readable, size: total !== undefined ? Number(total) : offset + (res.contentLength ?? 0) };
    } catch (e) {
      if (notFound(e)) throw new PathNotFoundError(p, NAME);
      if (!(e instanceof RestError && e.statusCode === 416)) throw e;
    }
    // At or past the end (the service refuses an empty range).
    const size = (await blob.getProperties()).contentLength ?? 0;
    if (offset === size) return { stream: Readable.from([]), size };
    throw new InvalidOffsetError(p, offset, NAME);
  }

  async writer(_ctx: DriverContext, p: string, append: boolean): Promise<FileWriter> {
    const blob = this.container.getAppendBlobClient(this.key(p));
    let size = 0;
    if (append) {
      try {
        const props = await blob.getProperties();
        if (props.blobType !== 'AppendBlob') throw new StorageDriverError(`${NAME}: ${p} was not written by a writer and cannot be appended to`, NAME);
        size = props.contentLength ?? 0;
      } catch (e) {
        if (notFound(e)) throw new PathNotFoundError(p, NAME);
        throw e;
      }
    }
    // A new writer creates its blob when it first stores something (or is closed).
    return new AzureWriter(blob, p, size, append, (dest) => this.container.getBlobClient(this.key(dest)));
  }

  async stat(_ctx: DriverContext, p: string): Promise<FileInfo> {
    if (p !== '/') {
      try {
        const props = await this.container.getBlobClient(this.key(p)).getProperties();
        return { path: p, size: props.contentLength ?? 0, modTime: props.lastModified ?? new Date(0), isDir: false };
      } catch (e) {
        if (!notFound(e)) throw e;
      }
    }
    const page = await this.container.listBlobsFlat({ prefix: this.dirPrefix(p) }).byPage({ maxPageSize: 1 }).next();
    if (p === '/' || (!page.done && page.value.segment.blobItems.length > 0)) {
      return { path: p, size: 0, modTime: new Date(0), isDir: true };
    }
    throw new PathNotFoundError(p, NAME);
  }

  async list(_ctx: DriverContext, p: string): Promise<string[]> {
    const out: string[] = [];
    for await (const item of this.container.listBlobsByHierarchy('/', { prefix: this.dirPrefix(p) })) {
      out.push(this.pathOf(item.name));
    }
    if (out.length === 0 && p !== '/') throw new PathNotFoundError(p, NAME);
    return out.sort();
  }

  async move(_ctx: DriverContext, src: string, dest: string): Promise<void> {
    const from = this.container.getBlobClient(this.key(src));
    if (!(await from.exists())) throw new PathNotFoundError(src, NAME);
    const poller = await this.container.getBlobClient(this.key(dest)).beginCopyFromURL(from.url, { intervalInMs: this.params.copyPollDelayMs ?? 100 });
    // distribution's copy_status_poll_max_retry (5) and _delay (100ms): a copy still pending after that fails the move.
    const max = this.params.copyPollMaxRetry ?? 5;
    for (let polls = 0; !poller.isDone(); polls++) {
      if (polls > max) throw new StorageDriverError(`${NAME}: copy of ${src} to ${dest} still pending after ${max} polls (copy_status_poll_max_retry)`, NAME);
      await new Promise((r) => setTimeout(r, this.params.copyPollDelayMs ?? 100));
      await poller.poll();
    }
    const res = poller.getResult();
    if (res?.copyStatus !== 'success') throw new StorageDriverError(`${NAME}: copy of ${src} to ${dest} ended ${res?.copyStatus}`, NAME);
    await from.delete();
  }

  async delete(_ctx: DriverContext, p: string): Promise<void> {
    // One listing finds the file and everything below it: `key`, siblings
    // such as `key-x` (skipped), then `key/…`.
    const key = this.key(p);
    const below = `${key}/`;
    const names: string[] = [];
    for await (const item of this.container.listBlobsFlat({ prefix: key })) {
      if (item.name === key || item.name.startsWith(below)) names.push(item.name);
      else if (item.name > `${below}~`) break;
    }
    if (names.length === 0) throw new PathNotFoundError(p, NAME);
    if (names.length === 1) {
      await this.container.getBlobClient(names[0]).deleteIfExists();
      return;
    }
    // Batches of 256 (the service's limit) in one request each.
    const batch = this.container.getBlobBatchClient();
    for (let i = 0; i < names.length; i += 256) {
      const res = await batch.deleteBlobs(names.slice(i, i + 256).map((n) => this.container.getBlobClient(n)));
      const failed = res.subResponses.filter((r) => r.status >= 300 && r.status !== 404);
      if (failed.length) throw new StorageDriverError(`${NAME}: delete of ${p} failed for ${failed.length} blobs: ${failed[0].status} ${failed[0].errorCode ?? ''}`, NAME);
    }
  }

  async deleteFiles(_ctx: DriverContext, paths: string[]): Promise<void> {
    const names = paths.map((p) => this.key(p));
    if (names.length === 1) { await this.container.getBlobClient(names[0]).deleteIfExists(); return; }
    const batch = this.container.getBlobBatchClient();
    for (let i = 0; i < names.length; i += 256) {
      const res = await batch.deleteBlobs(names.slice(i, i + 256).map((n) => this.container.getBlobClient(n)));
      const failed = res.subResponses.filter((r) => r.status >= 300 && r.status !== 404);
      if (failed.length) throw new StorageDriverError(`${NAME}: delete of ${failed.length} of ${names.length} blobs failed: ${failed[0].status} ${failed[0].errorCode ?? ''}`, NAME);
    }
  }

  /** One flat listing, 5,000 blobs a page, for the whole subtree: a walk by
   *  list and stat cost a hierarchical listing per folder and a HEAD per
   *  file (garbage-collect on a registry of 100,000 blobs: 100,000 HEADs).
   *  List Blobs cannot start after a key, so a skipped subtree is paged
   *  through (its keys are not visited). */
  async walk(ctx: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
    const prefix = this.dirPrefix(p);
    const any = await flatWalk(this.keys, prefix, async ({ token }) => {
      const page = await this.container.listBlobsFlat({ prefix }).byPage({ continuationToken: token, maxPageSize: this.params.listPageSize ?? LIST_PAGE }).next();
      if (page.done) return { keys: [] };
      return {
        keys: page.value.segment.blobItems.map((b) => ({ key: b.name, size: b.properties.contentLength ?? 0, modTime: b.properties.lastModified ?? new Date(0) })),
        next: page.value.continuationToken || undefined,
      };
    }, () => null, (path) => this.stat(ctx, path), fn, undefined, false);
    if (!any && p !== '/') throw new PathNotFoundError(p, NAME);
  }

  async redirectURL(_ctx: DriverContext, method: string, p: string): Promise<string | null> {
    if (method !== 'GET' && method !== 'HEAD') return null;
    // The SAS format is pinned to a released service version (2025-11-05)
    // rather than the SDK's newest, which emulators and older stacks may not
    // verify yet; Azure accepts every released version.
    const options = { permissions: BlobSASPermissions.parse('r'), expiresOn: new Date(Date.now() + REDIRECT_TTL_MS), version: SAS_VERSION };
    const blob = this.container.getBlobClient(this.key(p));
    if (this.sharedKey) return blob.generateSasUrl(options);
    try {
      return await blob.generateUserDelegationSasUrl(options, await this.delegationKey());
    } catch (e) {
      // No delegation right (role "Storage Blob Delegator"): stream instead.
      if (!this.warnedDelegation) {
        this.warnedDelegation = true;
        const msg = `azure: no user delegation key (${(e as Error).message}); blob GETs are streamed, not redirected`;
        if (this.log) this.log.warn(msg); else process.emitWarning(msg);
      }
      return null;
    }
  }
}
