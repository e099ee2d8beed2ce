// What every request leaves behind, as distribution leaves it: a request id
// (X-Request-Id honoured or made, and returned), a "response completed" log
// record with distribution's http.request.* and http.response.* fields, an
// access log line in Apache's combined format on stdout, the registry_http_*
// metrics, and with tracing on a server span that continues the caller's
// traceparent. One 'close' listener per request does it all.
import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import { type Span, SpanKind, context, trace } from '@opentelemetry/api';
import { incomingContext } from '../tracing/tracing.js';
import type { App } from './context.js';
import { remoteIP } from './context.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => String(n).padStart(2, '0');

/** Apache's time: 02/Dec/2026:03:12:58 +0000. */
function clfTime(d: Date): string {
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** Go's time.Duration text, as distribution's logs carry it (1.234567ms). */
function goDuration(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(6).replace(/\.?0+$/, '')}s`;
  if (ms >= 1) return `${ms.toFixed(6).replace(/\.?0+$/, '')}ms`;
  return `${(ms * 1000).toFixed(3).replace(/\.?0+$/, '')}µs`;
}

const quote = (s: string | undefined) => `"${(s ?? '').replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`;

export interface RequestInfo { id: string; start: number; written: number; span?: Span }

/** The request's id (set by observeRequest). */
export const requestId = (req: Request): string => (req as Request & { registryInfo?: RequestInfo }).registryInfo?.id ?? '';

/** Express middleware: starts observing a request and calls next inside its span. */
export function observeRequest(app: App, accessLog: NodeJS.WritableStream | null) {
  const { metrics, tracer, log } = app;
  return (req: Request, res: Response, next: () => void): void => {
    const header = req.headers['x-request-id'];
    const id = typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
    const info: RequestInfo = { id, start: performance.now(), written: 0 };
    (req as Request & { registryInfo?: RequestInfo }).registryInfo = info;
    res.setHeader('X-Request-Id', id);
    app.stats.inFlight++;
    // Bytes the handler writes (blob streams too), for the log, the access line and the metrics.
    const write = res.write.bind(res) as (...a: unknown[]) => boolean;
    const end = res.end.bind(res) as (...a: unknown[]) => Response;
    const count = (chunk: unknown) => {
      if (typeof chunk === 'string') info.written += Buffer.byteLength(chunk);
      else if (chunk && typeof (chunk as Buffer).length === 'number' && typeof chunk !== 'function') info.written += (chunk as Buffer).length;
    };
    (res as unknown as { write: (...a: unknown[]) => boolean }).write = (...a: unknown[]) => { count(a[0]); return write(...a); };
    (res as unknown as { end: (...a: unknown[]) => Response }).end = (...a: unknown[]) => { count(a[0]); return end(...a); };
    let parent;
    if (tracer) {
      parent = incomingContext(req.headers);
      info.span = tracer.startSpan(req.method, { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method, 'url.path': req.path, 'http.request.id': id } }, parent);
    }
    res.once('close', () => finish(app, req, res, info, accessLog));
    if (info.span) context.with(trace.setSpan(parent!, info.span), next);
    else next();
  };
}

function finish(app: App, req: Request, res: Response, info: RequestInfo, accessLog: NodeJS.WritableStream | null): void {
  app.stats.inFlight--;
  const ms = performance.now() - info.start;
  const status = res.statusCode;
  const handler = (res.locals.handler as string | undefined) ?? 'none';
  const repo = res.locals.repository as string | undefined;
  const received = (res.locals.bodyBytes as number | undefined) ?? (Number(req.headers['content-length']) || 0);
  const m = app.metrics;
  if (m) {
    const method = req.method;
    m.requests.labels(String(status), handler, method).inc();
    m.duration.labels(handler, method).observe(ms / 1000);
    m.requestSize.labels(handler).observe(received);
    m.responseSize.labels(handler).observe(info.written);
    if (handler === 'blob' && method === 'GET' && (status === 200 || status === 206)) m.bytesPulled.inc(info.written);
    if (repo && handler === 'manifest') {
      if (method === 'GET' && status === 200) { const l = m.repoLabel(repo); if (l) m.repoPulls.labels(l).inc(); }
      if (method === 'PUT' && status === 201) { const l = m.repoLabel(repo); if (l) m.repoPushes.labels(l).inc(); }
    }
  }
  if (info.span) {
    const route = res.locals.route as string | undefined;
    if (route) info.span.updateName(`${req.method} ${route}`);
    info.span.setAttributes({
      'http.response.status_code': status, 'http.route': route ?? '', 'registry.repository': repo ?? '',
      'http.request.body.size': received, 'http.response.body.size': info.written,
    });
    if (status >= 500) info.span.setStatus({ code: 2 });
    info.span.end();
  }
  const remote = remoteIP(req);
  // 'close' runs outside the request's context: the ids are given here, not by the log's mixin.
  const sc = info.span?.spanContext();
  if (app.log.isLevelEnabled('info')) app.log.info({
    ...(sc ? { trace_id: sc.traceId, span_id: sc.spanId } : {}),
    'http.request.host': req.headers.host ?? '',
    'http.request.id': info.id,
    'http.request.method': req.method,
    'http.request.remoteaddr': remote,
    'http.request.uri': req.originalUrl,
    'http.request.useragent': req.headers['user-agent'] ?? '',
    'http.response.contenttype': String(res.getHeader('content-type') ?? ''),
    'http.response.duration': goDuration(ms),
    'http.response.status': status,
    'http.response.written': info.written,
  }, 'response completed');
  if (accessLog) {
    const user = (res.locals.grant as { subject?: string } | undefined)?.subject || '-';
    accessLog.write(`${remote || '-'} - ${user} [${clfTime(new Date())}] ${quote(`${req.method} ${req.originalUrl} HTTP/${req.httpVersion}`)} ${status} ${info.written} ${quote(req.headers.referer)} ${quote(req.headers['user-agent'])}\n`);
  }
}
