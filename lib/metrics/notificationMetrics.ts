// Notifications' Prometheus series: distribution's three (same names, same
// labels: events_total by type Events/Successes/Failures/Errors, pending_total,
// status_total by "200 OK"-style code), and what a durable queue adds.
import { STATUS_CODES } from 'node:http';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { NotificationObserver } from '../notifications/endpoint.js';
import type { RegistryMetrics } from './metrics.js';

export function notificationMetrics(m: RegistryMetrics): NotificationObserver {
  const r = [m.registry];
  const events = new Counter({ name: 'registry_notifications_events_total', help: 'The number of total events', labelNames: ['type', 'endpoint'], registers: r });
  const status = new Counter({ name: 'registry_notifications_status_total', help: 'The number of status code', labelNames: ['code', 'endpoint'], registers: r });
  const sources = new Map<string, () => Promise<number>>();
  new Gauge({
    name: 'registry_notifications_pending_total', help: 'The gauge of pending events in queue', labelNames: ['endpoint'], registers: r,
    async collect() {
      this.reset();
      for (const [endpoint, read] of sources) {
        const n = await read().catch(() => undefined);
        if (n !== undefined) this.labels(endpoint).set(n);
      }
    },
  });
  const dead = new Counter({ name: 'registry_notifications_dead_lettered_total', help: 'Events that left the queue undelivered: reason maxevents, maxbytes, maxage (to the dead letters), discarded (dead letters over maxdeadevents)', labelNames: ['endpoint', 'reason'], registers: r });
  const lost = new Counter({ name: 'registry_notifications_lost_total', help: 'Events that could not be recorded in any queue (logged as errors)', labelNames: ['endpoint'], registers: r });
  const down = new Gauge({ name: 'registry_notifications_endpoint_down', help: '1 while an endpoint has failed threshold times in a row and is tried once per backoff', labelNames: ['endpoint'], registers: r });
  const latency = new Histogram({ name: 'registry_notifications_delivery_seconds', help: 'From an event being queued to its delivery being accepted', labelNames: ['endpoint'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600], registers: r });
  const recorded = new Histogram({ name: 'registry_notifications_record_seconds', help: 'Time a write request waits for its events to be recorded durably', labelNames: ['queue'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: r });
  return {
    queued: (endpoint, n) => events.labels('Events', endpoint).inc(n),
    attempt(endpoint, outcome, code) {
      events.labels(outcome, endpoint).inc();
      if (code !== undefined) status.labels(`${code} ${STATUS_CODES[code] ?? ''}`.trim(), endpoint).inc();
    },
    delivered: (endpoint, s) => latency.labels(endpoint).observe(s),
    deadLettered: (endpoint, reason, n) => dead.labels(endpoint, reason).inc(n),
    down: (endpoint, isDown) => down.labels(endpoint).set(isDown ? 1 : 0),
    recorded: (queue, s) => recorded.labels(queue).observe(s),
    lost: (endpoint, n) => lost.labels(endpoint).inc(n),
    pendingSource(endpoint, read) {
      sources.set(endpoint, read);
      down.labels(endpoint).set(0);
      for (const t of ['Events', 'Successes', 'Failures', 'Errors']) events.labels(t, endpoint).inc(0);
    },
  };
}
