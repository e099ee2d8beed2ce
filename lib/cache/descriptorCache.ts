// Blob-descriptor cache: digest -> (size, media type), globally and per
// repository, in front of storage stat calls. Implementations are bounded.
import { LRUCache } from 'lru-cache';

export interface Descriptor {
  digest: string;
  size: number;
  mediaType: string;
}

export interface BlobDescriptorCache {
  get(dgst: string): Promise<Descriptor | undefined>;
  set(desc: Descriptor): Promise<void>;
  delete(dgst: string): Promise<void>;
  getInRepo(repo: string, dgst: string): Promise<Descriptor | undefined>;
  setInRepo(repo: string, desc: Descriptor): Promise<void>;
  deleteInRepo(repo: string, dgst: string): Promise<void>;
}

/** A bounded LRU in process memory. */
export class MemoryDescriptorCache implements BlobDescriptorCache {
  private global: LRUCache<string, Descriptor>;
  private repos: LRUCache<string, Descriptor>;
  constructor(maxEntries = 100_000) {
    this.global = new LRUCache({ max: maxEntries });
    this.repos = new LRUCache({ max: maxEntries });
  }
  async get(d: string) { return this.global.get(d); }
  async set(desc: Descriptor) { this.global.set(desc.digest, desc); }
  async delete(d: string) { this.global.delete(d); }
  async getInRepo(repo: string, d: string) { return this.repos.get(`${repo}::${d}`); }
  async setInRepo(repo: string, desc: Descriptor) { this.repos.set(`${repo}::${desc.digest}`, desc); }
  async deleteInRepo(repo: string, d: string) { this.repos.delete(`${repo}::${d}`); }
  /** Entries held, for /debug/vars. */
  stats() { return { kind: 'inmemory', global: this.global.size, repositories: this.repos.size, max: this.global.max }; }
}

/** No caching: every lookup goes to storage. */
export class NoopDescriptorCache implements BlobDescriptorCache {
  async get() { return undefined; }
  async set() {}
  async delete() {}
  async getInRepo() { return undefined; }
  async setInRepo() {}
  async deleteInRepo() {}
}
