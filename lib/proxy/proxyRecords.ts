// When proxied content was last pulled, for expiry (proxy.ttl) and the size
// cap (proxy.maxsize): a record per repository and digest, rewritten at most
// once per refresh interval per node, off the request path, through a
// bounded queue (a touch that finds it full is dropped and counted: the
// content can then only expire early and be fetched again, never be lost).
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { StorageDriver } from '../../drivers/driver.js';
import { proxyRecordPath } from '../storage/paths.js';
import type { ProxyKind } from './proxyObserver.js';

const MAX_PENDING = 10_000;
const WRITERS = 4;

export class ProxyRecords {
  /** When this node last wrote each record. */
  private readonly written = new LRUCache<string, number>({ max: 200_000 });
  private readonly pending = new Map<string, { name: string; kind: ProxyKind; dgst: string; size: number }>();
  private active = 0;
  private idle: (() => void)[] = [];
  dropped = 0;

  constructor(private readonly driver: StorageDriver, private readonly refreshMs: number, private readonly log: Logger) {}

  /** Notes a pull; the record is rewritten when this node has not done so within the refresh interval. */
  touch(name: string, kind: ProxyKind, dgst: string, size: number): void {
    const key = `${kind} ${name}@${dgst}`;
    const last = this.written.get(key);
    if (last !== undefined && Date.now() - last < this.refreshMs) return;
    if (this.pending.has(key)) return;
    if (this.pending.size >= MAX_PENDING) { this.dropped++; return; }
    this.pending.set(key, { name, kind, dgst, size });
    this.pump();
  }

  private pump(): void {
    while (this.active < WRITERS && this.pending.size > 0) {
      const [key, r] = this.pending.entries().next().value!;
      this.pending.delete(key);
      this.active++;
      this.written.set(key, Date.now());
      this.driver.putContent({ log: this.log }, proxyRecordPath(r.name, r.kind, r.dgst), Buffer.from(String(r.size)))
        .catch((e) => { this.written.delete(key); this.log.warn({ err: (e as Error).message, repository: r.name, digest: r.dgst }, 'proxy: could not record a pull'); })
        .finally(() => {
          this.active--;
          this.pump();
          if (this.active === 0 && this.pending.size === 0) for (const f of this.idle.splice(0)) f();
        });
    }
  }

  /** Resolves once every noted pull is written (tests, shutdown). */
  flush(): Promise<void> {
    if (this.active === 0 && this.pending.size === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  /** Forgets what this node wrote for a record the expiry removed. */
  forget(name: string, kind: ProxyKind, dgst: string): void {
    this.written.delete(`${kind} ${name}@${dgst}`);
  }
}
