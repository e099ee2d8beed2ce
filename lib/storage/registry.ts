// The storage layer's entry point: a registry over one driver, handing out
// repositories, in distribution's vocabulary.
import { LRUCache } from 'lru-cache';
import { type DriverContext, type StorageDriver, isNotFound } from '../../drivers/driver.js';
import type { BlobDescriptorCache } from '../cache/descriptorCache.js';
import { BlobStore } from './blobStore.js';
import { catalogPage } from './catalog.js';
import { LinkedBlobStore } from './linkedBlobStore.js';
import { type IndexPolicy, type ManifestCache, ManifestStore, type StoredManifest, type URLPolicy } from './manifestStore.js';
import { layerLinkPath, manifestsRoot, revisionLinkPath } from './paths.js';
import { ReferrerStore } from './referrerStore.js';
import { TagStore, type TagDigestIndex, type TagSeenCache } from './tagStore.js';
import { KeyedMutex, type Locker } from './locks.js';
import { UploadSessionCache } from './uploadSessionCache.js';
import { UploadStore } from './uploadStore.js';
import type { ProxiedRepository } from '../proxy/proxyRegistry.js';

export interface RegistryOptions {
  /** Bytes of manifest content kept in memory (immutable, keyed by digest). */
  manifestCacheBytes?: number;
  maxManifestBytes?: number;
  /** validation.manifests.urls (null: validation disabled). */
  urlPolicy?: URLPolicy | null;
  /** validation.manifests.indexes. */
  indexPlatforms?: IndexPolicy['platforms'];
  platformList?: IndexPolicy['platformList'];
  /** storage.tag.concurrencylimit. */
  tagConcurrency?: number;
  /** storage.tag.digestindex (default true). */
  tagDigestIndex?: boolean;
  /** Locks for manifest PUT/DELETE of one digest (in-process unless given: Redis in a cluster). */
  locks?: Locker;
}

/** Pull-through mode: which repositories read through an upstream (lib/proxy). */
export interface ProxyResolver {
  repository(local: Repository): ProxiedRepository | undefined;
  /** Truthy when the name is proxied. */
  resolve(name: string): unknown;
  /** Counters for /debug/vars. */
  vars(): Record<string, unknown>;
}

export class Repository {
  readonly blobs: LinkedBlobStore;
  readonly revisions: LinkedBlobStore;
  readonly tags: TagStore;
  readonly referrers: ReferrerStore;
  readonly manifests: ManifestStore;
  readonly uploads: UploadStore;
  /** Set when the repository is proxied: reads go through it, writes are refused. */
  readonly proxy?: ProxiedRepository;

  constructor(readonly name: string, readonly registry: Registry) {
    const bs = registry.blobStore;
    this.blobs = new LinkedBlobStore(name, bs, layerLinkPath);
    this.revisions = new LinkedBlobStore(name, bs, revisionLinkPath, 'MANIFEST_UNKNOWN', false);
    this.tags = new TagStore(name, registry.driver, registry.tagSeen, registry.tagConcurrency, registry.tagIndex);
    this.referrers = new ReferrerStore(name, registry.driver);
    this.manifests = new ManifestStore(name, bs, this.revisions, this.blobs, this.tags, this.referrers, registry.manifestCache,
      registry.urlPolicy, registry.maxManifestBytes, registry.locks, registry.indexPolicy);
    this.uploads = new UploadStore(name, registry.driver, bs, this.blobs, registry.uploadSessions);
    this.proxy = registry.proxy?.repository(this);
  }

  /** True when the repository holds manifests (or did: its _manifests folder
   *  exists). Blobs or uploads alone do not make a repository known. */
  async exists(ctx: DriverContext): Promise<boolean> {
    try { await this.registry.driver.stat(ctx, manifestsRoot(this.name)); return true; } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }
}

export class Registry {
  readonly blobStore: BlobStore;
  readonly manifestCache: ManifestCache;
  readonly uploadSessions = new UploadSessionCache();
  readonly urlPolicy: URLPolicy | null;
  readonly maxManifestBytes?: number;
  readonly indexPolicy: IndexPolicy;
  readonly tagConcurrency: number;
  readonly locks: Locker;
  readonly tagSeen: TagSeenCache = new LRUCache<string, true>({ max: 100_000 });
  readonly tagIndex: TagDigestIndex;
  /** Pull-through mode, when configured (set once at start). */
  proxy?: ProxyResolver;

  constructor(readonly driver: StorageDriver, readonly cache: BlobDescriptorCache, opts: RegistryOptions = {}) {
    this.blobStore = new BlobStore(driver, cache);
    this.urlPolicy = opts.urlPolicy === undefined ? { allow: [], deny: [] } : opts.urlPolicy;
    this.maxManifestBytes = opts.maxManifestBytes;
    this.indexPolicy = { platforms: opts.indexPlatforms ?? 'all', platformList: opts.platformList ?? [] };
    this.tagConcurrency = opts.tagConcurrency ?? 8;
    this.tagIndex = { enabled: opts.tagDigestIndex ?? true, complete: new LRUCache<string, boolean>({ max: 100_000 }) };
    this.locks = opts.locks ?? new KeyedMutex();
    this.manifestCache = new LRUCache<string, StoredManifest>({
      maxSize: opts.manifestCacheBytes ?? 64 << 20,
      sizeCalculation: (m) => m.content.length + 256,
    });
  }

  repository(name: string): Repository {
    return new Repository(name, this);
  }

  /** Repository names after `after`, at most `limit`, in distribution's order (lib/storage/catalog.ts). */
  repositories(ctx: DriverContext, after = '', limit = Infinity): Promise<string[]> {
    return catalogPage(this.driver, ctx, after, limit);
  }
}
