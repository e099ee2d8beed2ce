// A webhook receiver for notification tests: a real HTTP server that keeps
// every request it gets, and answers as the test says (accept, fail with a
// status, hang, or be down: not listening at all).
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Received { headers: http.IncomingHttpHeaders; raw: string; body: unknown; at: number }
export type Mode = { kind: 'ok' } | { kind: 'status'; status: number } | { kind: 'hang' } | { kind: 'delay'; ms: number };

export interface Receiver {
  url: string;
  received: Received[];
  /** Every event of every envelope (distribution format), in arrival order. */
  events(): Record<string, any>[];
  mode: Mode;
  /** Requests answered with a 2xx. */
  accepted: number;
  /** Requests held open (hang). */
  hanging: number;
  /** Stops listening (connections refused) until up(). */
  down(): Promise<void>;
  up(): Promise<void>;
  waitFor(pred: () => boolean, ms?: number, what?: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startReceiver(path = '/hook'): Promise<Receiver> {
  const sockets = new Set<Socket>();
  const held: http.ServerResponse[] = [];
  const r: Receiver = {
    url: '', received: [], mode: { kind: 'ok' }, accepted: 0, hanging: 0,
    events: () => r.received.flatMap((x) => ((x.body as { events?: Record<string, any>[] })?.events ?? [])),
    async down() {
      await new Promise<void>((resolve) => { server.close(() => resolve()); for (const s of sockets) s.destroy(); });
    },
    async up() {
      await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', () => resolve()); });
    },
    async waitFor(pred, ms = 30000, what = 'condition') {
      const until = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > until) throw new Error(`receiver: timed out waiting for ${what} (${r.received.length} requests so far)`);
        await new Promise((res) => setTimeout(res, 25));
      }
    },
    async stop() {
      for (const h of held) h.destroy();
      await r.down().catch(() => {});
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (req.url !== path) { res.writeHead(404).end(); return; }
      const m = r.mode;
      if (m.kind === 'hang') { r.hanging++; held.push(res); return; }
      const answer = () => {
        let body: unknown;
        try { body = JSON.parse(raw); } catch { body = undefined; }
        if (m.kind === 'status') { res.writeHead(m.status).end(); return; }
        r.received.push({ headers: req.headers, raw, body, at: Date.now() });
        r.accepted++;
        res.writeHead(200).end();
      };
      if (m.kind === 'delay') setTimeout(answer, m.ms);
      else answer();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${port}${path}`;
  return r;
}
