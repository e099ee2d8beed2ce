// Instrumentation around the Redis client: each command's time into
// registry_storage_cache_redis_seconds{command}, and, with tracing on, a
// client span under the request. Every command, in transactions too, goes
// through sendCommand, so that is the one place wrapped.
import { type Tracer, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Command } from 'ioredis';
import type { RedisClient } from '../cache/redisClient.js';
import type { RegistryMetrics } from './metrics.js';

export function instrumentRedis(client: RedisClient, m: RegistryMetrics | null, t: Tracer | null): void {
  if (!m && !t) return;
  const send = client.sendCommand.bind(client) as (cmd: Command, ...rest: unknown[]) => unknown;
  (client as unknown as { sendCommand: typeof send }).sendCommand = (cmd: Command, ...rest: unknown[]) => {
    const start = performance.now();
    const span = t?.startSpan(`redis ${cmd.name}`, { kind: SpanKind.CLIENT, attributes: { 'db.system': 'redis', 'db.operation.name': cmd.name } });
    const done = (e?: unknown) => {
      m?.redisSeconds.labels(cmd.name).observe((performance.now() - start) / 1000);
      if (span) {
        if (e) span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error)?.message });
        span.end();
      }
    };
    cmd.promise.then(() => done(), done);
    return send(cmd, ...rest);
  };
}
