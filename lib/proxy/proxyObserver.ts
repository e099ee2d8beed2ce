// What the proxy counts: distribution's proxy counters (requests, hits,
// misses, pulled and pushed bytes, by blob or manifest), and what it lacks:
// stale serves, coalesced waits, upstream failures. Kept in process for
// /debug/vars (as distribution's expvar registry.proxy) and forwarded to the
// Prometheus series when metrics are on.
export type ProxyKind = 'blob' | 'manifest';

export interface ProxyCounts { requests: number; hits: number; misses: number; bytesPulled: number; bytesPushed: number; stale: number; coalesced: number }

/** Where the counts also go (lib/metrics/proxyMetrics.ts). */
export interface ProxySink {
  served(kind: ProxyKind, hit: boolean, bytes: number): void;
  pulled(kind: ProxyKind, bytes: number): void;
  stale(kind: ProxyKind): void;
  coalesced(kind: ProxyKind): void;
  upstreamError(kind: string): void;
}

const zero = (): ProxyCounts => ({ requests: 0, hits: 0, misses: 0, bytesPulled: 0, bytesPushed: 0, stale: 0, coalesced: 0 });

export class ProxyObserver {
  readonly blobs = zero();
  readonly manifests = zero();
  readonly upstreamErrors: Record<string, number> = {};

  constructor(private readonly sink?: ProxySink) {}

  private of(kind: ProxyKind): ProxyCounts { return kind === 'blob' ? this.blobs : this.manifests; }

  /** A client was answered: from the cache (hit) or through the upstream. */
  served(kind: ProxyKind, hit: boolean, bytes: number): void {
    const c = this.of(kind);
    c.requests++;
    if (hit) c.hits++;
    c.bytesPushed += bytes;
    this.sink?.served(kind, hit, bytes);
  }

  /** Content was fetched from the upstream (one miss). */
  pulled(kind: ProxyKind, bytes: number): void {
    const c = this.of(kind);
    c.misses++;
    c.bytesPulled += bytes;
    this.sink?.pulled(kind, bytes);
  }

  /** The upstream failed and a cached copy was served. */
  stale(kind: ProxyKind): void {
    this.of(kind).stale++;
    this.sink?.stale(kind);
  }

  /** A request joined a fetch already under way instead of starting its own. */
  coalesced(kind: ProxyKind): void {
    this.of(kind).coalesced++;
    this.sink?.coalesced(kind);
  }

  upstreamError(kind: string): void {
    this.upstreamErrors[kind] = (this.upstreamErrors[kind] ?? 0) + 1;
    this.sink?.upstreamError(kind);
  }
}
