// Pull-through mode's Prometheus series: distribution's registry_proxy_*
// counters (same names, same `type` label: blob or manifest, both present
// from the start as distribution initialises them), and what it lacks.
import { Counter } from 'prom-client';
import type { ProxyKind, ProxySink } from '../proxy/proxyObserver.js';
import type { RegistryMetrics } from './metrics.js';

export function proxyMetrics(m: RegistryMetrics): ProxySink {
  const r = [m.registry];
  const c = (name: string, help: string, labelNames = ['type']) => new Counter({ name, help, labelNames, registers: r });
  const requests = c('registry_proxy_requests_total', 'The number of total incoming proxy request received');
  const hits = c('registry_proxy_hits_total', 'The number of total proxy request hits');
  const misses = c('registry_proxy_misses_total', 'The number of total proxy request misses');
  const pulled = c('registry_proxy_pulled_bytes_total', 'The size of total bytes pulled from the upstream');
  const pushed = c('registry_proxy_pushed_bytes_total', 'The size of total bytes pushed to the client');
  const stale = c('registry_proxy_stale_served_total', 'Cached content served because the upstream failed, timed out or rate-limited (stale-if-error)');
  const coalesced = c('registry_proxy_coalesced_total', 'Requests that joined an upstream fetch already under way instead of starting one');
  const errors = c('registry_proxy_upstream_errors_total', 'Upstream requests that failed, by kind (timeout, unreachable, 429, denied, 4xx, 5xx)', ['kind']);
  for (const t of ['blob', 'manifest']) for (const x of [requests, hits, misses, pulled, pushed, stale, coalesced]) x.labels(t).inc(0);
  return {
    served(kind: ProxyKind, hit: boolean, bytes: number) {
      requests.labels(kind).inc();
      if (hit) hits.labels(kind).inc();
      if (bytes > 0) pushed.labels(kind).inc(bytes);
    },
    pulled(kind: ProxyKind, bytes: number) {
      misses.labels(kind).inc();
      if (bytes > 0) pulled.labels(kind).inc(bytes);
    },
    stale: (kind: ProxyKind) => stale.labels(kind).inc(),
    coalesced: (kind: ProxyKind) => coalesced.labels(kind).inc(),
    upstreamError: (kind: string) => errors.labels(kind).inc(),
  };
}
