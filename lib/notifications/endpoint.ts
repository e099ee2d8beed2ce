// One notification endpoint: which events it takes (distribution's ignore
// lists), its durable queue, and the loop that delivers the queue in order.
// Failures are retried, sooner at first; after `threshold` failures in a row
// the endpoint is down (distribution's breaker) and tried once per `backoff`
// until it answers. An event older than the queue's maxage is dead-lettered
// instead of tried again, so a dead receiver cannot hold the queue forever.
import type { Logger } from 'pino';
import type { NotificationEndpoint } from '../config/config.js';
import type { RegistryEvent } from './event.js';
import { HttpSink } from './httpSink.js';
import type { EndpointQueue, QueuedEvent } from './queue.js';

export type AttemptOutcome = 'Successes' | 'Failures' | 'Errors';

/** What the notifications layer reports (the metrics implement it). */
export interface NotificationObserver {
  queued(endpoint: string, n: number): void;
  attempt(endpoint: string, outcome: AttemptOutcome, status?: number): void;
  delivered(endpoint: string, seconds: number): void;
  deadLettered(endpoint: string, reason: string, n: number): void;
  down(endpoint: string, isDown: boolean): void;
  /** Time to record events durably (what a push waits for). */
  recorded(queue: 'disk' | 'redis', seconds: number): void;
  /** Events that could not be recorded at all. */
  lost(endpoint: string, n: number): void;
  pendingSource(endpoint: string, read: () => Promise<number>): void;
}

export const noopObserver: NotificationObserver = {
  queued() {}, attempt() {}, delivered() {}, deadLettered() {}, down() {}, recorded() {}, lost() {}, pendingSource() {},
};

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  if (signal.aborted) { resolve(); return; }
  const t = setTimeout(done, ms);
  function done() { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); }
  signal.addEventListener('abort', done, { once: true });
});

export class Endpoint {
  private sink: HttpSink;
  private ignoredTypes: Set<string>;
  private ignoredActions: Set<string>;
  private failures = 0;
  private isDown = false;
  private stopper = new AbortController();
  private loop?: Promise<void>;
  /** Last outcome, for /debug/vars. */
  lastError = '';
  delivered = 0;

  constructor(readonly config: NotificationEndpoint, readonly queue: EndpointQueue, private log: Logger, private obs: NotificationObserver) {
    this.sink = new HttpSink(config);
    this.ignoredTypes = new Set(config.ignoredMediaTypes);
    this.ignoredActions = new Set(config.ignoredActions);
    obs.pendingSource(config.name, async () => (await queue.pending()).events);
  }

  get name(): string { return this.config.name; }

  /** distribution's ignoredSink: by the target's media type, and by action. */
  accepts(e: RegistryEvent): boolean {
    return !(e.target.mediaType && this.ignoredTypes.has(e.target.mediaType)) && !this.ignoredActions.has(e.action);
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    // Closing the queue wakes a deliverer waiting for events; an event in flight stays queued.
    await this.queue.close();
    await this.loop;
    this.sink.close();
  }

  private async run(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      let e: QueuedEvent | null = null;
      try {
        e = await this.queue.next(1000);
        if (e) await this.deliver(e, signal);
      } catch (err) {
        // The queue's store failed (Redis away, disk error): the event stays queued; try again shortly.
        if (signal.aborted) break;
        this.log.warn({ endpoint: this.name, err: (err as Error).message }, 'notifications: queue read failed; retrying');
        await sleep(1000, signal);
      }
    }
  }

  private async deliver(e: QueuedEvent, signal: AbortSignal): Promise<void> {
    const { maxAgeMs } = this.queue.bounds;
    while (!signal.aborted && this.queue.owned()) {
      if (maxAgeMs > 0 && Date.now() - e.at > maxAgeMs) {
        await this.queue.deadLetter(e, 'maxage');
        this.log.warn({ endpoint: this.name, queuedAt: new Date(e.at).toISOString(), lastError: this.lastError }, 'notifications: event older than the queue\'s maxage dead-lettered (registry notifications list-dead)');
        return;
      }
      const r = await this.sink.send(e.body);
      if (r.ok) {
        this.obs.attempt(this.name, 'Successes', r.status);
        await this.queue.ack(e);
        this.delivered++;
        this.obs.delivered(this.name, Math.max(0, Date.now() - e.at) / 1000);
        this.failures = 0;
        if (this.isDown) {
          this.isDown = false;
          this.obs.down(this.name, false);
          this.log.info({ endpoint: this.name }, 'notifications: endpoint is up again');
        }
        return;
      }
      this.obs.attempt(this.name, r.status !== undefined ? 'Failures' : 'Errors', r.status);
      this.lastError = r.error;
      this.failures++;
      if (this.failures >= this.config.threshold && !this.isDown) {
        this.isDown = true;
        this.obs.down(this.name, true);
        this.log.warn({ endpoint: this.name, url: redact(this.config.url), failures: this.failures, err: r.error }, `notifications: endpoint is down; retrying every ${this.config.backoffMs} ms`);
      }
      // Below the threshold, retry soon (growing from 50 ms); at it, once per backoff.
      await sleep(this.isDown ? this.config.backoffMs : Math.min(this.config.backoffMs, 50 * 2 ** (this.failures - 1)), signal);
    }
  }
}

/** An endpoint URL without credentials, for logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) { u.username = ''; u.password = ''; }
    u.search = '';
    return u.href;
  } catch {
    return '(invalid url)';
  }
}
