// A minimum body rate (http.limits.minbodyrate, bytes a second), so a client
// that trickles its body is cut like one that goes silent: 260 POSTs sending
// a byte a second would otherwise hold every upload slot for hours, since
// the stall timer only fires on a socket that moves nothing at all.
// Only time the server spends waiting for the client counts: while the
// request's buffer holds unread bytes (the registry's storage is the slow
// side), the client is not to blame. A request is cut when, over the whole
// last `graceMs`, the server waited on it and got less than the minimum.
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';

const TICK_MS = 1000;

interface Watched { req: IncomingMessage; lastBytes: number; window: { waited: number; bytes: number }[] }

export class BodyRateGuard {
  private readonly watched = new Set<Watched>();
  private timer: NodeJS.Timeout | null = null;
  /** Requests cut for being too slow (for metrics and tests). */
  cut = 0;

  constructor(private readonly minRate: number, private readonly graceMs: number, private readonly log: Logger, private readonly onCut?: () => void) {}

  /** Watches a request's body until it ends or the request closes. */
  watch(req: IncomingMessage): void {
    if (this.minRate <= 0 || req.complete) return;
    const w: Watched = { req, lastBytes: req.socket?.bytesRead ?? 0, window: [] };
    this.watched.add(w);
    const done = () => this.watched.delete(w);
    req.once('end', done);
    req.once('close', done);
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.timer.unref();
    }
  }

  private tick(): void {
    const slots = Math.max(1, Math.ceil(this.graceMs / TICK_MS));
    for (const w of this.watched) {
      const sock = w.req.socket;
      if (!sock || sock.destroyed) { this.watched.delete(w); continue; }
      const bytes = sock.bytesRead;
      // Waiting on the client: nothing left unread in the request's buffer.
      const waiting = w.req.readableLength === 0 && !w.req.readableEnded;
      w.window.push({ waited: waiting ? TICK_MS : 0, bytes: waiting ? bytes - w.lastBytes : 0 });
      w.lastBytes = bytes;
      if (w.window.length > slots) w.window.shift();
      if (w.window.length < slots) continue;
      const waited = w.window.reduce((a, s) => a + s.waited, 0);
      const got = w.window.reduce((a, s) => a + s.bytes, 0);
      if (waited < slots * TICK_MS) continue; // the server was busy part of the window
      if ((got * 1000) / waited >= this.minRate) continue;
      this.cut++;
      this.onCut?.();
      this.log.info({ remote: sock.remoteAddress, method: w.req.method, url: w.req.url?.slice(0, 200), bytesPerSecond: Math.round((got * 1000) / waited) },
        `request body slower than http.limits.minbodyrate (${this.minRate} bytes/s): connection closed`);
      this.watched.delete(w);
      sock.destroy();
    }
    if (this.watched.size === 0 && this.timer) { clearInterval(this.timer); this.timer = null; }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.watched.clear();
  }
}
