// Prometheus metrics (prom-client), with distribution's names and labels so
// dashboards and alerts keep working, and what distribution lacks. One
// registry per process; nothing is measured unless http.debug.prometheus is
// enabled (or a command writes --metrics-file). docs/operations.md lists
// every metric and what it means.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { type CounterChild, FastCounter, FastGauge, FastHistogram } from './fast.js';

// distribution's buckets (docker/go-metrics): request durations, and sizes from 1 KiB to 2 GiB.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60];
const SIZE_BUCKETS = Array.from({ length: 22 }, (_, i) => 1024 * 2 ** i);
// Prometheus's default buckets, as distribution's storage timers use them.
const DEF_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Children of a labelled metric, cached by their label values (labels() hashes on every call). */
class Children<C> {
  private readonly map = new Map<string, C>();
  constructor(private readonly make: (values: string[]) => C) {}
  labels(...values: string[]): C {
    const k = values.join('\u0000');
    let c = this.map.get(k);
    if (!c) { c = this.make(values); this.map.set(k, c); }
    return c;
  }
}

export class RegistryMetrics {
  readonly registry = new Registry();

  // distribution: registry_http_* (on every request: the fast series)
  readonly inFlight: FastGauge;
  readonly requests: FastCounter;
  readonly duration: FastHistogram;
  readonly requestSize: FastHistogram;
  readonly responseSize: FastHistogram;
  // distribution: registry_storage_*
  readonly storageAction: FastHistogram;
  readonly cacheRequests: CounterChild;
  readonly cacheHits: CounterChild;
  readonly cacheErrors: Counter;
  readonly redisSeconds: Children<Histogram.Internal<string>>;

  // Beyond distribution.
  readonly bytesPushed: Counter;
  readonly bytesPulled: Counter;
  readonly uploadsInFlight: Gauge;
  readonly uploadsCompleted: Children<Counter.Internal>;
  readonly digestFailures: Children<Counter.Internal>;
  readonly lockWaits: Counter;
  readonly lockWaitSeconds: Histogram;
  readonly gcGateHeld: Counter;
  readonly gcGateHeldSeconds: Histogram;
  readonly storageRetries: Children<Counter.Internal>;
  readonly storageThrottled: Children<Counter.Internal>;
  readonly repoPulls: Children<Counter.Internal>;
  readonly repoPushes: Children<Counter.Internal>;
  readonly bodyRateCuts: Counter;
  readonly healthFailing: Children<Gauge.Internal<string>>;
  // Maintenance, in serve and from the commands (--metrics-file).
  readonly maintenanceRuns: Children<Counter.Internal>;
  readonly maintenanceSeconds: Children<Histogram.Internal<string>>;
  readonly maintenanceDeleted: Children<Counter.Internal>;
  readonly maintenanceFreedBytes: Children<Counter.Internal>;
  readonly maintenanceLastSuccess: Children<Gauge.Internal<string>>;

  private readonly repoLabels = new Set<string>();

  /** repositoryLabels: distinct repository label values kept (0: no per-repository counters); the rest count as "other". */
  constructor(private readonly repositoryLabels = 0, processMetrics = true) {
    const r = [this.registry];
    const reg = this.registry;
    this.inFlight = new FastGauge('registry_http_in_flight_requests', 'The in-flight HTTP requests', ['handler'], reg);
    this.requests = new FastCounter('registry_http_requests_total', 'Total number of HTTP requests made.', ['code', 'handler', 'method'], reg);
    this.duration = new FastHistogram('registry_http_request_duration_seconds', 'The HTTP request latencies in seconds.', ['handler', 'method'], DURATION_BUCKETS, reg);
    this.requestSize = new FastHistogram('registry_http_request_size_bytes', 'The HTTP request sizes in bytes.', ['handler'], SIZE_BUCKETS, reg);
    this.responseSize = new FastHistogram('registry_http_response_size_bytes', 'The HTTP response sizes in bytes.', ['handler'], SIZE_BUCKETS, reg);

    this.storageAction = new FastHistogram('registry_storage_action_seconds', 'The number of seconds that the storage action takes', ['driver', 'action'], DEF_BUCKETS, reg);
    this.cacheRequests = new FastCounter('registry_storage_cache_requests_total', 'The number of cache request received', [], reg).labels();
    this.cacheHits = new FastCounter('registry_storage_cache_hits_total', 'The number of cache request hits', [], reg).labels();
    this.cacheErrors = new Counter({ name: 'registry_storage_cache_errors_total', help: 'The number of cache request errors', registers: r });
    const redis = new Histogram({ name: 'registry_storage_cache_redis_seconds', help: 'The number of seconds a Redis command takes', labelNames: ['command'], buckets: DEF_BUCKETS, registers: r });
    this.redisSeconds = new Children((v) => redis.labels(...v));

    this.bytesPushed = new Counter({ name: 'registry_blob_pushed_bytes_total', help: 'Bytes of blob uploads stored (monolithic and chunked)', registers: r });
    this.bytesPulled = new Counter({ name: 'registry_blob_pulled_bytes_total', help: 'Bytes of blobs sent to clients (redirected GETs not included)', registers: r });
    this.uploadsInFlight = new Gauge({ name: 'registry_uploads_in_flight', help: 'Upload requests (POST, PATCH, PUT of blob uploads) being served', registers: r });
    const completed = new Counter({ name: 'registry_uploads_completed_total', help: 'Blob uploads finished, by result (committed, or the error code)', labelNames: ['result'], registers: r });
    this.uploadsCompleted = new Children((v) => completed.labels(...v));
    const digests = new Counter({ name: 'registry_digest_verification_failures_total', help: 'Uploads and manifests whose content did not match the digest given', labelNames: ['kind'], registers: r });
    this.digestFailures = new Children((v) => digests.labels(...v));
    this.lockWaits = new Counter({ name: 'registry_redis_lock_waits_total', help: 'Manifest locks that had to wait for another node', registers: r });
    this.lockWaitSeconds = new Histogram({ name: 'registry_redis_lock_wait_seconds', help: 'Time spent waiting for a manifest lock held by another node', buckets: DEF_BUCKETS, registers: r });
    this.gcGateHeld = new Counter({ name: 'registry_gc_gate_held_writes_total', help: 'Reference-making writes held by a running garbage-collect (a batch they reference being deleted, or an older collector without the journal)', registers: r });
    this.gcGateHeldSeconds = new Histogram({ name: 'registry_gc_gate_held_seconds', help: 'Time reference-making writes were held by a running garbage-collect', buckets: [...DEF_BUCKETS, 30, 60], registers: r });
    const retries = new Counter({ name: 'registry_storage_retries_total', help: 'Storage requests the SDK retried', labelNames: ['driver'], registers: r });
    this.storageRetries = new Children((v) => retries.labels(...v));
    const throttled = new Counter({ name: 'registry_storage_throttled_total', help: 'Storage answers that asked to slow down (SlowDown, 503, 429, ServerBusy)', labelNames: ['driver'], registers: r });
    this.storageThrottled = new Children((v) => throttled.labels(...v));
    const pulls = new Counter({ name: 'registry_repository_pulls_total', help: 'Manifest GETs answered 200, by repository (capped; the rest are "other")', labelNames: ['repository'], registers: r });
    this.repoPulls = new Children((v) => pulls.labels(...v));
    const pushes = new Counter({ name: 'registry_repository_pushes_total', help: 'Manifest PUTs answered 201, by repository (capped; the rest are "other")', labelNames: ['repository'], registers: r });
    this.repoPushes = new Children((v) => pushes.labels(...v));
    this.bodyRateCuts = new Counter({ name: 'registry_http_slow_body_cuts_total', help: 'Requests cut for sending their body slower than http.limits.minbodyrate', registers: r });
    const health = new Gauge({ name: 'registry_health_check_failing', help: '1 while a health check counts as failing', labelNames: ['check'], registers: r });
    this.healthFailing = new Children((v) => health.labels(...v));

    const runs = new Counter({ name: 'registry_maintenance_runs_total', help: 'garbage-collect and upload-purge runs, by task and result', labelNames: ['task', 'result'], registers: r });
    this.maintenanceRuns = new Children((v) => runs.labels(...v));
    const secs = new Histogram({ name: 'registry_maintenance_duration_seconds', help: 'Duration of garbage-collect and upload-purge runs', labelNames: ['task'], buckets: [0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600], registers: r });
    this.maintenanceSeconds = new Children((v) => secs.labels(...v));
    const deleted = new Counter({ name: 'registry_maintenance_deleted_objects_total', help: 'Objects deleted by maintenance (blobs, manifests, uploads, links)', labelNames: ['task', 'kind'], registers: r });
    this.maintenanceDeleted = new Children((v) => deleted.labels(...v));
    const freed = new Counter({ name: 'registry_maintenance_freed_bytes_total', help: 'Bytes freed by maintenance', labelNames: ['task'], registers: r });
    this.maintenanceFreedBytes = new Children((v) => freed.labels(...v));
    const last = new Gauge({ name: 'registry_maintenance_last_success_timestamp_seconds', help: 'When a maintenance task last finished without error', labelNames: ['task'], registers: r });
    this.maintenanceLastSuccess = new Children((v) => last.labels(...v));

    if (processMetrics) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client also exports three totals of nodejs_active_{handles,requests,resources}
      // as gauges named *_total, which promtool (rightly) refuses; the per-type gauges stay.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    }
  }

  /** The repository label for per-repository counters, or null when they are off. */
  repoLabel(name: string): string | null {
    if (this.repositoryLabels <= 0) return null;
    if (this.repoLabels.has(name)) return name;
    if (this.repoLabels.size < this.repositoryLabels) { this.repoLabels.add(name); return name; }
    return 'other';
  }

  /** Records one maintenance run (serve's timers and the commands alike). */
  maintenance(task: 'garbage-collect' | 'purge-uploads' | 'proxy-expiry', ok: boolean, seconds: number, deleted: Record<string, number>, bytes: number): void {
    this.maintenanceRuns.labels(task, ok ? 'success' : 'failure').inc();
    this.maintenanceSeconds.labels(task).observe(seconds);
    for (const [kind, n] of Object.entries(deleted)) if (n) this.maintenanceDeleted.labels(task, kind).inc(n);
    if (bytes) this.maintenanceFreedBytes.labels(task).inc(bytes);
    if (ok) this.maintenanceLastSuccess.labels(task).set(Date.now() / 1000);
  }
}

/** Node.js's textfile collector format (node-exporter --collector.textfile), written atomically. */
export async function writeTextfile(m: RegistryMetrics, file: string): Promise<void> {
  const { rename, writeFile } = await import('node:fs/promises');
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, await m.registry.metrics());
  await rename(tmp, file);
}
