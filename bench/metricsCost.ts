// The price of metrics per request, measured on its own: the exact metric
// work a manifest GET by tag and a blob HEAD do when http.debug.prometheus is
// on (HTTP counters and histograms, the driver wrapper's timing, the cache
// counters), in a loop, against the same work with metrics off. On a shared
// VM whole-request throughput swings by tens of percent from run to run; this
// does not, and bench/run.ts's CPU time per request gives the denominator.
// Usage: node dist/bench/metricsCost.js
import { InstrumentedDriver } from '../lib/metrics/instrumentedDriver.js';
import { InstrumentedCache } from '../lib/metrics/instrumentedCache.js';
import { RegistryMetrics } from '../lib/metrics/metrics.js';
import { MemoryDescriptorCache } from '../lib/cache/descriptorCache.js';
import type { StorageDriver } from '../drivers/driver.js';

const N = 300_000;
const fake = {
  name: () => 'filesystem',
  getContent: async () => Buffer.from('sha256:0'),
} as unknown as StorageDriver;

async function perRequest(label: string, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 20_000; i++) await fn(); // warm the JIT
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await fn();
    runs.push(Number(process.hrtime.bigint() - t0) / N);
  }
  const ns = runs.sort((a, b) => a - b)[2];
  console.log(`${label}: ${ns.toFixed(0)} ns`);
  return ns;
}

async function main(): Promise<void> {
  const m = new RegistryMetrics(0, false);
  const wrapped = new InstrumentedDriver(fake, m, null);
  const cache = new MemoryDescriptorCache(100);
  await cache.setInRepo('r', { digest: 'sha256:0', size: 1, mediaType: 'x' });
  const counted = new InstrumentedCache(cache, m);
  const http = (handler: string, method: string, status: string) => {
    const g = m.inFlight.labels(handler);
    g.inc();
    m.requests.labels(status, handler, method).inc();
    m.duration.labels(handler, method).observe(0.0003);
    m.requestSize.labels(handler).observe(0);
    m.responseSize.labels(handler).observe(428);
    g.dec();
  };
  // A manifest GET by tag: two link reads through the driver, the HTTP metrics.
  const offGet = await perRequest('manifest GET, metrics off (2 driver calls)', async () => { await fake.getContent({}, '/a'); await fake.getContent({}, '/b'); });
  const onGet = await perRequest('manifest GET, metrics on', async () => { await wrapped.getContent({}, '/a'); await wrapped.getContent({}, '/b'); http('manifest', 'GET', '200'); });
  // A blob HEAD: a repository-scoped cache hit, the HTTP metrics.
  const offHead = await perRequest('blob HEAD, metrics off (1 cache lookup)', async () => { await cache.getInRepo('r', 'sha256:0'); });
  const onHead = await perRequest('blob HEAD, metrics on', async () => { await counted.getInRepo('r', 'sha256:0'); http('blob', 'HEAD', '200'); });
  console.log(`added per manifest GET: ${((onGet - offGet) / 1000).toFixed(2)} µs; per blob HEAD: ${((onHead - offHead) / 1000).toFixed(2)} µs`);
}

await main();
