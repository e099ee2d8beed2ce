// The fast series must expose exactly what prom-client's own types would:
// the same observations through both give the same exposition text.
import { expect } from 'chai';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FastCounter, FastGauge, FastHistogram } from './fast.js';

const BUCKETS = [0.005, 0.01, 0.1, 1, 10];
// Boundaries themselves (le is inclusive), between, below and above all.
const OBSERVED = [0, 0.005, 0.0051, 0.01, 0.5, 1, 9.99, 10, 11, 1e6];

describe('metrics: fast series', () => {
  it('expose the same text as prom-client\'s Counter, Gauge and Histogram', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const c1 = new FastCounter('reqs_total', 'Requests.', ['code', 'method'], ours);
    const c2 = new Counter({ name: 'reqs_total', help: 'Requests.', labelNames: ['code', 'method'], registers: [theirs] });
    const g1 = new FastGauge('in_flight', 'In flight.', ['handler'], ours);
    const g2 = new Gauge({ name: 'in_flight', help: 'In flight.', labelNames: ['handler'], registers: [theirs] });
    const h1 = new FastHistogram('dur_seconds', 'Durations.', ['handler', 'method'], BUCKETS, ours);
    const h2 = new Histogram({ name: 'dur_seconds', help: 'Durations.', labelNames: ['handler', 'method'], buckets: BUCKETS, registers: [theirs] });
    const n1 = new FastCounter('plain_total', 'No labels.', [], ours).labels();
    const n2 = new Counter({ name: 'plain_total', help: 'No labels.', registers: [theirs] });

    for (const [code, method] of [['200', 'GET'], ['404', 'GET'], ['200', 'GET'], ['201', 'PUT']]) {
      c1.labels(code, method).inc();
      c2.labels(code, method).inc();
    }
    c1.labels('200', 'GET').inc(5);
    c2.labels('200', 'GET').inc(5);
    g1.labels('manifest').inc(); g1.labels('manifest').inc(); g1.labels('manifest').dec(); g1.labels('blob').set(7);
    g2.labels('manifest').inc(); g2.labels('manifest').inc(); g2.labels('manifest').dec(); g2.labels('blob').set(7);
    for (const v of OBSERVED) {
      h1.labels('manifest', 'GET').observe(v);
      h2.labels('manifest', 'GET').observe(v);
    }
    h1.labels('blob', 'HEAD').observe(0.02);
    h2.labels('blob', 'HEAD').observe(0.02);
    n1.inc(3);
    n2.inc(3);

    // Same families in the same order, byte for byte.
    expect(await ours.metrics()).to.equal(await theirs.metrics());
  });

  it('keep one child per label set', () => {
    const h = new FastHistogram('x_seconds', 'X.', ['a'], BUCKETS, new Registry());
    expect(h.labels('one')).to.equal(h.labels('one'));
    expect(h.labels('one')).to.not.equal(h.labels('two'));
    h.labels('one').observe(0.01);
    expect(h.labels('one').count).to.equal(1);
    expect(h.labels('two').count).to.equal(0);
  });
});
