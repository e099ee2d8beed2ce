// Concurrent callers with the same key share one run (bounded by the keys
// in flight, which the callers' own concurrency bounds).
export class Coalescer<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  /** fn's result; joined is true when another caller's run was shared. */
  async run(key: string, fn: () => Promise<T>, onJoin?: () => void): Promise<T> {
    const running = this.inflight.get(key);
    if (running) { onJoin?.(); return running; }
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  get size(): number { return this.inflight.size; }
}
