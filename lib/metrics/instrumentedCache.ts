// distribution's cache counters around the blob-descriptor cache:
// registry_storage_cache_requests_total and _hits_total (lookups), and
// _errors_total (counted by the Redis cache itself, which turns errors into misses).
import type { BlobDescriptorCache, Descriptor } from '../cache/descriptorCache.js';
import type { RegistryMetrics } from './metrics.js';

export class InstrumentedCache implements BlobDescriptorCache {
  constructor(private readonly c: BlobDescriptorCache, private readonly m: RegistryMetrics) {}

  private count(d: Descriptor | undefined): Descriptor | undefined {
    this.m.cacheRequests.inc();
    if (d) this.m.cacheHits.inc();
    return d;
  }

  async get(dgst: string) { return this.count(await this.c.get(dgst)); }
  async getInRepo(repo: string, dgst: string) { return this.count(await this.c.getInRepo(repo, dgst)); }
  set(desc: Descriptor) { return this.c.set(desc); }
  delete(dgst: string) { return this.c.delete(dgst); }
  setInRepo(repo: string, desc: Descriptor) { return this.c.setInRepo(repo, desc); }
  deleteInRepo(repo: string, dgst: string) { return this.c.deleteInRepo(repo, dgst); }
  /** The wrapped cache (the Redis cache's error count, the memory cache's size). */
  get inner(): BlobDescriptorCache { return this.c; }
}
