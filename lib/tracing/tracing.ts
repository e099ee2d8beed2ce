// OpenTelemetry tracing with the official SDK, configured by the standard
// OTEL_* variables (endpoint, protocol, sampler, resource), as distribution 3
// does. Off unless asked for, and then free: the SDK is not even loaded, and
// the hot paths test one variable before doing tracer work.
import { type Context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, type Tracer, context, propagation, trace } from '@opentelemetry/api';

export interface Tracing {
  tracer: Tracer;
  shutdown(): Promise<void>;
}

/** Whether the environment asks for traces: an OTLP endpoint, or an exporter other than none; OTEL_SDK_DISABLED=true wins. */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  if (exporters.length) return !exporters.every((x) => x === 'none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

let active: Tracing | null = null;

/** The tracer of the running process, or null when tracing is off. */
export const tracer = (): Tracer | null => active?.tracer ?? null;

/** Starts the SDK when the environment asks for it. Metrics and logs stay with Prometheus and stderr unless OTEL_*_EXPORTER says otherwise. */
export async function startTracing(version: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing | null> {
  if (active || !tracingRequested(env)) return active;
  env.OTEL_METRICS_EXPORTER ??= 'none';
  env.OTEL_LOGS_EXPORTER ??= 'none';
  env.OTEL_SERVICE_NAME ??= 'registry';
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({ instrumentations: [] });
  sdk.start();
  active = {
    tracer: trace.getTracer('ts-registry', version),
    shutdown: async () => { active = null; await sdk.shutdown(); },
  };
  return active;
}

/** The context of an incoming request: its traceparent (W3C), else none. */
export function incomingContext(headers: Record<string, unknown>): Context {
  return propagation.extract(ROOT_CONTEXT, headers);
}

/** Runs fn inside a client span named name (a driver call, a Redis command), a child of the active span. */
export async function inSpan<T>(t: Tracer, name: string, attributes: Record<string, string | number>, fn: () => Promise<T>): Promise<T> {
  return t.startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span: Span) => {
    try {
      return await fn();
    } catch (e) {
      span.recordException(e as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error)?.message });
      throw e;
    } finally {
      span.end();
    }
  });
}

/** Trace and span ids for log lines (pino mixin), when a span is active. */
export function traceFields(): Record<string, string> {
  const sc = trace.getActiveSpan()?.spanContext();
  return sc ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}

export { context, SpanKind, SpanStatusCode, trace };
