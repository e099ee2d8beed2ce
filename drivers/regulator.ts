// Bounds on what a driver sends to its store, as distribution's drivers have
// them: at most N calls at once (the regulator behind filesystem.maxthreads
// and gcs.maxconcurrency), and at most R requests a second (s3's
// maxrequestspersecond). Waiters queue in order; both are free when idle.

/** At most `limit` holders at once; the rest wait their turn. */
export class Semaphore {
  private held = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.held >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.held++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); else this.held--;
    }
  }

  get queued(): number { return this.waiting.length; }
}

/** A token bucket: `rate` tokens a second, up to `rate` saved (a one-second burst). */
export class RateLimiter {
  private tokens: number;
  private last = performance.now();
  private tail: Promise<void> = Promise.resolve();
  /** Requests that had to wait for a token (for metrics). */
  waited = 0;
  constructor(readonly rate: number) { this.tokens = rate; }

  /** Resolves when a request may be sent. */
  take(): Promise<void> {
    const now = performance.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    // Out of tokens: wait in line; each waiter takes the token it waited for.
    this.waited++;
    const turn = this.tail.then(async () => {
      const t = performance.now();
      this.tokens = Math.min(this.rate, this.tokens + ((t - this.last) / 1000) * this.rate);
      this.last = t;
      if (this.tokens < 1) await new Promise((r) => setTimeout(r, ((1 - this.tokens) / this.rate) * 1000));
      const t2 = performance.now();
      this.tokens = Math.min(this.rate, this.tokens + ((t2 - this.last) / 1000) * this.rate) - 1;
      this.last = t2;
    });
    this.tail = turn;
    return turn;
  }
}
