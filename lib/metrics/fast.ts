// Series for the hot path, registered in prom-client's Registry through its
// metric contract (name, help, type, get()), so exposition and every other
// metric stay prom-client's. Why not prom-client's own types here: each of
// their observations hashes its label values again, which on a manifest GET
// (five histograms, two counters, a gauge) cost about 3 µs: 4 to 6% of the
// request on Node 26 (docs/performance.md). These keep each label set's
// numbers in a child found once, so an observation is a few adds.
import type { Registry } from 'prom-client';

interface Value { value: number; labels: Record<string, string | number>; metricName?: string }

abstract class Family<C> {
  readonly aggregator = 'sum';
  private readonly children = new Map<string, { labels: Record<string, string>; child: C }>();

  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'gauge' | 'histogram', private readonly labelNames: string[], registry: Registry) {
    registry.registerMetric(this as never);
  }

  protected abstract make(): C;
  protected abstract values(child: C, labels: Record<string, string>): Value[];

  /** The child of these label values (made once). */
  labels(...values: string[]): C {
    const key = values.length === 1 ? values[0] : values.join('\u0000');
    let e = this.children.get(key);
    if (!e) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => { labels[n] = values[i] ?? ''; });
      e = { labels, child: this.make() };
      this.children.set(key, e);
    }
    return e.child;
  }

  /** prom-client's metric contract: what the registry exposes. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Value[] }> {
    const values: Value[] = [];
    for (const { labels, child } of this.children.values()) values.push(...this.values(child, labels));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export interface CounterChild { value: number; inc(n?: number): void }
export interface GaugeChild { value: number; inc(): void; dec(): void; set(v: number): void }
export interface HistogramChild { counts: Float64Array; sum: number; count: number; observe(v: number): void }

export class FastCounter extends Family<CounterChild> {
  constructor(name: string, help: string, labelNames: string[], registry: Registry) { super(name, help, 'counter', labelNames, registry); }
  protected make(): CounterChild {
    return { value: 0, inc(n = 1) { this.value += n; } };
  }
  protected values(c: CounterChild, labels: Record<string, string>): Value[] { return [{ value: c.value, labels }]; }
}

export class FastGauge extends Family<GaugeChild> {
  constructor(name: string, help: string, labelNames: string[], registry: Registry) { super(name, help, 'gauge', labelNames, registry); }
  protected make(): GaugeChild {
    return { value: 0, inc() { this.value++; }, dec() { this.value--; }, set(v: number) { this.value = v; } };
  }
  protected values(c: GaugeChild, labels: Record<string, string>): Value[] { return [{ value: c.value, labels }]; }
}

export class FastHistogram extends Family<HistogramChild> {
  constructor(name: string, help: string, labelNames: string[], private readonly buckets: number[], registry: Registry) {
    super(name, help, 'histogram', labelNames, registry);
  }
  protected make(): HistogramChild {
    const bounds = this.buckets;
    return {
      counts: new Float64Array(bounds.length + 1), sum: 0, count: 0,
      observe(v: number) {
        let i = 0;
        while (i < bounds.length && v > bounds[i]) i++;
        this.counts[i]++;
        this.sum += v;
        this.count++;
      },
    };
  }
  protected values(c: HistogramChild, labels: Record<string, string>): Value[] {
    const out: Value[] = [];
    let cum = 0;
    this.buckets.forEach((b, i) => { cum += c.counts[i]; out.push({ metricName: `${this.name}_bucket`, labels: { le: b, ...labels }, value: cum }); });
    out.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...labels }, value: c.count });
    out.push({ metricName: `${this.name}_sum`, labels, value: c.sum });
    out.push({ metricName: `${this.name}_count`, labels, value: c.count });
    return out;
  }
}
