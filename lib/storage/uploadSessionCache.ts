// What this process already knows about upload sessions it served: when each
// started and its latest hash state. On object stores every storage request
// counts, and a push's PATCH and PUT usually reach the node that took the POST,
// so they skip re-reading startedat and the hash state. Everything here is
// also in storage (the source of truth), and the data file's existence is still
// checked by resuming its writer, so a session cancelled or finished on another
// node is still unknown here. Bounded.
import { LRUCache } from 'lru-cache';

interface Session { startedAt: Date; state?: { offset: number; bytes: Buffer } }

export class UploadSessionCache {
  private readonly lru = new LRUCache<string, Session>({ max: 10_000 });

  startedAt(repo: string, id: string): Date | undefined {
    return this.lru.get(`${repo}\n${id}`)?.startedAt;
  }

  started(repo: string, id: string, at: Date): void {
    const k = `${repo}\n${id}`;
    const s = this.lru.get(k);
    if (s) s.startedAt = at; else this.lru.set(k, { startedAt: at });
  }

  hashState(repo: string, id: string, offset: number): Buffer | undefined {
    const st = this.lru.get(`${repo}\n${id}`)?.state;
    return st && st.offset === offset ? st.bytes : undefined;
  }

  savedState(repo: string, id: string, offset: number, bytes: Buffer): void {
    const s = this.lru.get(`${repo}\n${id}`);
    if (s) s.state = { offset, bytes };
  }

  get size(): number { return this.lru.size; }

  forget(repo: string, id: string): void {
    this.lru.delete(`${repo}\n${id}`);
  }
}
