// distribution's health checks (health: section): the storage driver, files,
// HTTP URIs and TCP addresses, each run every `interval`. A check counts as
// failing after `threshold` failures in a row and recovers on its first
// success, as distribution's PeriodicThresholdChecker. While any check
// fails, /debug/health answers 503 with the failing checks by name, and the
// registry API answers 503 too (distribution's health.Handler).
import { stat } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Logger } from 'pino';
import type { StorageDriver } from '../../drivers/driver.js';
import { isNotFound } from '../../drivers/driver.js';
import type { HealthConfig } from '../config/config.js';
import { ROOT } from '../storage/paths.js';
import type { RegistryMetrics } from '../metrics/metrics.js';

export interface CheckState {
  name: string;
  intervalMs: number;
  threshold: number;
  /** Failures in a row. */
  failures: number;
  /** The last error, while the check counts as failing. */
  error?: string;
  lastRun?: Date;
  lastError?: string;
}

interface Check extends CheckState { run: () => Promise<void>; timer?: NodeJS.Timeout; running: boolean }

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => { t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

export class HealthChecks {
  private readonly checks: Check[] = [];
  /** name -> error, for the checks failing now (distribution's CheckStatus). */
  private failingNow: Record<string, string> = {};

  constructor(private readonly log: Logger, private readonly metrics?: RegistryMetrics) {}

  add(name: string, intervalMs: number, threshold: number, run: () => Promise<void>): void {
    this.checks.push({ name, intervalMs, threshold, failures: 0, run, running: false });
  }

  /** The configured checks of a health section. */
  static fromConfig(cfg: HealthConfig, driver: StorageDriver, log: Logger, metrics?: RegistryMetrics): HealthChecks {
    const h = new HealthChecks(log, metrics);
    if (cfg.storagedriver) {
      const { intervalMs, threshold } = cfg.storagedriver;
      // As distribution: a stat that reaches the store (the layout's root: one
      // request on every driver; the driver answers "/" itself); an empty
      // store (not found) is healthy.
      h.add(`storagedriver_${driver.name()}`, intervalMs, threshold, async () => {
        try {
          await withTimeout(driver.stat({ log }, ROOT), Math.max(1000, intervalMs), 'storage stat');
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
      });
    }
    for (const f of cfg.file) {
      h.add(f.file, f.intervalMs, f.threshold, async () => {
        try {
          await stat(f.file);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
          throw e;
        }
        throw new Error('file exists');
      });
    }
    for (const c of cfg.http) {
      h.add(c.uri, c.intervalMs, c.threshold, async () => {
        const headers = new Headers();
        for (const [k, vs] of Object.entries(c.headers)) for (const v of vs) headers.append(k, v);
        const res = await fetch(c.uri, { method: 'HEAD', headers, redirect: 'manual', signal: AbortSignal.timeout(c.timeoutMs) });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status !== c.statuscode) throw new Error(`downstream service returned unexpected status: ${res.status}`);
      });
    }
    for (const c of cfg.tcp) {
      h.add(c.addr, c.intervalMs, c.threshold, () => new Promise<void>((resolve, reject) => {
        const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(c.addr);
        if (!m) { reject(new Error(`invalid address ${c.addr}`)); return; }
        const s = connect({ host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]), timeout: c.timeoutMs });
        s.once('connect', () => { s.destroy(); resolve(); });
        s.once('timeout', () => { s.destroy(); reject(new Error(`connection to ${c.addr} timed out`)); });
        s.once('error', (e) => { s.destroy(); reject(e); });
      }));
    }
    return h;
  }

  get size(): number { return this.checks.length; }

  private async tick(c: Check): Promise<void> {
    if (c.running) return; // a slow check is not stacked on itself
    c.running = true;
    try {
      await c.run();
      c.lastRun = new Date();
      if (c.error !== undefined) this.log.info({ check: c.name }, 'health check recovered');
      c.failures = 0;
      c.error = undefined;
      c.lastError = undefined;
    } catch (e) {
      c.lastRun = new Date();
      c.failures++;
      c.lastError = (e as Error)?.message ?? String(e);
      if (c.failures >= c.threshold) {
        if (c.error === undefined) this.log.warn({ check: c.name, failures: c.failures, err: c.lastError }, 'health check failing');
        c.error = c.lastError;
      }
    } finally {
      c.running = false;
      this.refresh();
    }
  }

  private refresh(): void {
    const now: Record<string, string> = {};
    for (const c of this.checks) {
      if (c.error !== undefined) now[c.name] = c.error;
      this.metrics?.healthFailing.labels(c.name).set(c.error !== undefined ? 1 : 0);
    }
    this.failingNow = now;
  }

  /** Runs every check now, then on its interval. */
  start(): void {
    for (const c of this.checks) {
      void this.tick(c);
      c.timer = setInterval(() => { void this.tick(c); }, c.intervalMs);
      c.timer.unref();
    }
  }

  stop(): void {
    for (const c of this.checks) if (c.timer) clearInterval(c.timer);
  }

  /** The failing checks, name -> error ({} when healthy). */
  failing(): Record<string, string> { return this.failingNow; }

  get healthy(): boolean { return Object.keys(this.failingNow).length === 0; }

  /** Every check's state, for /debug/vars. */
  states(): CheckState[] {
    return this.checks.map(({ name, intervalMs, threshold, failures, error, lastRun, lastError }) => ({ name, intervalMs, threshold, failures, error, lastRun, lastError }));
  }
}
