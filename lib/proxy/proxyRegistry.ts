// Pull-through mode's entry point: which repositories are proxied and from
// which upstream, one upstream client per remote (tokens cached across
// requests), the blob fetcher that coalesces misses, and the proxy's
// counters. distribution proxies every repository from one remoteurl; here
// proxy.remotes maps name prefixes to upstreams too, and names no prefix
// takes are hosted (pushable) unless a top-level remoteurl takes them all.
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { ProxyConfig, ProxyRemoteConfig } from '../config/config.js';
import type { Repository } from '../storage/registry.js';
import { type CredentialSource, execCredentials, staticCredentials } from './credentials.js';
import { ProxyBlobFetcher, ProxyBlobStore } from './proxyBlobStore.js';
import { ProxyManifestStore } from './proxyManifestStore.js';
import type { ProxyKind, ProxyObserver } from './proxyObserver.js';
import { ProxyRecords } from './proxyRecords.js';
import type { StorageDriver } from '../../drivers/driver.js';
import type { HeldLock } from '../cache/redisLock.js';
import { ProxyTagStore } from './proxyTagStore.js';
import { UpstreamClient } from './upstream.js';
import { Coalescer } from './coalesce.js';
import type { StoredManifest } from '../storage/manifestStore.js';

export interface ProxyRemote {
  readonly config: ProxyRemoteConfig;
  readonly upstream: UpstreamClient;
}

/** A proxied repository's upstream: the remote and the name there. */
export interface ProxyTarget { remote: ProxyRemote; upstreamName: string }

/** The proxied view of one repository: distribution's proxiedRepository. */
export interface ProxiedRepository {
  readonly target: ProxyTarget;
  readonly blobs: ProxyBlobStore;
  readonly manifests: ProxyManifestStore;
  readonly tags: ProxyTagStore;
  readonly observer: ProxyObserver;
  /** A client was served: counted, and the pull recorded for expiry. */
  served(kind: ProxyKind, dgst: string, hit: boolean, bytes: number, size: number): void;
}

export class ProxyRegistry {
  readonly remotes: ProxyRemote[];
  readonly fetcher: ProxyBlobFetcher;
  /** When each tag was last checked upstream (per node, bounded): key remote prefix, local name, tag. */
  readonly tagChecks = new LRUCache<string, number>({ max: 100_000 });
  /** True when some names are hosted (no top-level remoteurl takes every name). */
  readonly hostsRepositories: boolean;
  /** Manifest fetches in flight (concurrent misses share one). */
  private readonly manifestFetches = new Coalescer<StoredManifest>();
  /** Tag revalidations in flight (concurrent pulls of one tag send one HEAD). */
  private readonly tagRevalidations = new Coalescer<{ digest: string; hit: boolean }>();

  /** Pull records for expiry and the size cap (null when neither is configured). */
  readonly records: ProxyRecords | null;

  constructor(readonly config: ProxyConfig, readonly log: Logger, readonly observer: ProxyObserver, driver?: StorageDriver,
    /** With Redis: the cluster-wide lock of one blob fetch, so that nodes sharing storage fetch it once. */
    clusterLock?: (key: string) => Promise<HeldLock | null>) {
    this.remotes = config.remotes.map((c) => ({ config: c, upstream: new UpstreamClient({ url: c.remoteurl, credentials: credentialsOf(c), timeoutMs: c.timeoutMs }) }));
    this.fetcher = new ProxyBlobFetcher({ spoolDir: config.spoolDir, observer, clusterLock });
    this.hostsRepositories = !config.remotes.some((r) => r.prefix === '');
    const ttls = config.remotes.map((r) => r.ttlMs).filter((t) => t > 0);
    this.records = driver && (ttls.length || config.maxSizeBytes > 0)
      // A record is rewritten at most every tenth of the shortest ttl, or
      // every expiry interval, whichever is shorter (from 1 s to 10 minutes).
      ? new ProxyRecords(driver, Math.max(1000, Math.min(10 * 60_000, config.expiryIntervalMs, ...ttls.map((t) => t / 10))), log)
      : null;
  }

  /** Whether expiry has anything to do (a ttl or a size cap). */
  get expires(): boolean { return this.records !== null; }

  /** distribution's expvar registry.proxy, and what is in flight. */
  vars(): Record<string, unknown> {
    const o = this.observer;
    return {
      blobs: o.blobs, manifests: o.manifests, upstreamErrors: o.upstreamErrors,
      inFlight: { blobFetches: this.fetcher.inFlight, manifestFetches: this.manifestFetches.size },
      remotes: this.remotes.map((r) => ({ prefix: r.config.prefix, upstream: r.upstream.host, sent: r.upstream.sent })),
    };
  }

  /** The upstream of a local repository name, or null when it is hosted here. */
  resolve(name: string): ProxyTarget | null {
    for (const remote of this.remotes) {
      const p = remote.config.prefix;
      let rest: string;
      if (p === '') rest = name;
      else if (name.startsWith(`${p}/`)) rest = name.slice(p.length + 1);
      else continue;
      // Docker Hub's official images live under library/.
      const upstreamName = remote.config.library && !rest.includes('/') ? `library/${rest}` : rest;
      return { remote, upstreamName };
    }
    return null;
  }

  /** The proxied view of a repository, or undefined when it is hosted. */
  repository(local: Repository): ProxiedRepository | undefined {
    const target = this.resolve(local.name);
    if (!target) return undefined;
    const manifests = new ProxyManifestStore(local, target, this.observer, this.manifestFetches);
    return {
      target,
      blobs: new ProxyBlobStore(local, target, this.fetcher, this.observer),
      manifests,
      tags: new ProxyTagStore(local, target, manifests, this.tagChecks, this.observer, this.tagRevalidations),
      observer: this.observer,
      served: (kind, dgst, hit, bytes, size) => {
        this.observer.served(kind, hit, bytes);
        this.records?.touch(local.name, kind, dgst, size);
      },
    };
  }
}

function credentialsOf(c: ProxyRemoteConfig): CredentialSource | undefined {
  if (c.exec) return execCredentials(c.exec.command, c.exec.lifetimeMs);
  if (c.username !== undefined || c.password !== undefined) return staticCredentials(c.username, c.password);
  return undefined;
}
