// Instrumentation around the storage driver, as distribution's base driver
// has it: every call is timed into registry_storage_action_seconds{driver,
// action} (distribution's action names), and, with tracing on, is a child
// span of the request. Only built when metrics or tracing are on.
import type { Readable } from 'node:stream';
import type { Tracer } from '@opentelemetry/api';
import type { DriverContext, FileInfo, FileWriter, StorageDriver, WalkResult } from '../../drivers/driver.js';
import { inSpan } from '../tracing/tracing.js';
import type { RegistryMetrics } from './metrics.js';

/** distribution's driver names in metrics (its s3 driver registers as s3aws). */
const METRIC_NAME: Record<string, string> = { s3: 's3aws' };

export class InstrumentedDriver implements StorageDriver {
  readonly sendTo?: StorageDriver['sendTo'];
  readonly init?: StorageDriver['init'];
  readonly readerWithSize?: StorageDriver['readerWithSize'];
  readonly removeStrays?: StorageDriver['removeStrays'];
  readonly deleteFiles?: StorageDriver['deleteFiles'];
  readonly flatWalk?: boolean;
  readonly walkFrom?: StorageDriver['walkFrom'];
  private readonly label: string;

  constructor(private readonly d: StorageDriver, private readonly m: RegistryMetrics | null, private readonly t: Tracer | null) {
    this.flatWalk = d.flatWalk;
    this.label = METRIC_NAME[d.name()] ?? d.name();
    if (d.sendTo) { const f = d.sendTo.bind(d); this.sendTo = (ctx, p, o, l, dest) => this.run('Reader', p, () => f(ctx, p, o, l, dest)); }
    if (d.init) { const f = d.init.bind(d); this.init = (ctx) => f(ctx); }
    if (d.readerWithSize) { const f = d.readerWithSize.bind(d); this.readerWithSize = (ctx, p, o) => this.run('Reader', p, () => f(ctx, p, o)); }
    if (d.walkFrom) { const f = d.walkFrom.bind(d); this.walkFrom = (ctx, p, from, fn) => this.run('Walk', p, () => f(ctx, p, from, fn)); }
    if (d.deleteFiles) { const f = d.deleteFiles.bind(d); this.deleteFiles = (ctx, ps) => this.run('Delete', ps[0] ?? '/', () => f(ctx, ps)); }
    if (d.removeStrays) { const f = d.removeStrays.bind(d); this.removeStrays = (ctx, p, t, dry) => this.run('Walk', p, () => f(ctx, p, t, dry)); }
  }

  /** The driver this one wraps. */
  get inner(): StorageDriver { return this.d; }

  private async run<T>(action: string, path: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return this.t ? await inSpan(this.t, `storage ${action}`, { 'registry.storage.driver': this.label, 'registry.storage.action': action, 'registry.storage.path': path }, fn) : await fn();
    } finally {
      this.m?.storageAction.labels(this.label, action).observe((performance.now() - start) / 1000);
    }
  }

  name(): string { return this.d.name(); }
  getContent(ctx: DriverContext, p: string): Promise<Buffer> { return this.run('GetContent', p, () => this.d.getContent(ctx, p)); }
  putContent(ctx: DriverContext, p: string, c: Buffer): Promise<void> { return this.run('PutContent', p, () => this.d.putContent(ctx, p, c)); }
  reader(ctx: DriverContext, p: string, offset: number): Promise<Readable> { return this.run('Reader', p, () => this.d.reader(ctx, p, offset)); }
  writer(ctx: DriverContext, p: string, append: boolean): Promise<FileWriter> { return this.run('Writer', p, () => this.d.writer(ctx, p, append)); }
  stat(ctx: DriverContext, p: string): Promise<FileInfo> { return this.run('Stat', p, () => this.d.stat(ctx, p)); }
  list(ctx: DriverContext, p: string): Promise<string[]> { return this.run('List', p, () => this.d.list(ctx, p)); }
  move(ctx: DriverContext, s: string, t: string): Promise<void> { return this.run('Move', s, () => this.d.move(ctx, s, t)); }
  delete(ctx: DriverContext, p: string): Promise<void> { return this.run('Delete', p, () => this.d.delete(ctx, p)); }
  walk(ctx: DriverContext, p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> { return this.run('Walk', p, () => this.d.walk(ctx, p, fn)); }
  redirectURL(ctx: DriverContext, method: string, p: string): Promise<string | null> { return this.run('RedirectURL', p, () => this.d.redirectURL(ctx, method, p)); }
}
