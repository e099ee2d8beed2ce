// While garbage collection runs on a live cluster, writes that make a
// reference to a blob (manifest PUT, blob commit, mount) wait: the collector
// marked what was referenced when it started, and must not sweep a blob a new
// manifest points to. They wait for the collection to end, polling Redis, up
// to storage.maintenance.garbagecollect.writewait (60 s); then 503 with
// Retry-After. Pulls and uploads of blob bytes go on. See docs/maintenance.md.
import type { Response } from 'express';
import { err } from '../errors.js';
import type { App } from './context.js';

const POLL_MS = 250;

export async function gcGate(app: App, res: Response): Promise<void> {
  if (!app.gcActive || !(await app.gcActive())) return;
  const start = Date.now();
  app.metrics?.gcGateHeld.inc();
  const held = () => app.metrics?.gcGateHeldSeconds.observe((Date.now() - start) / 1000);
  const until = start + app.config.storage.gcWriteWaitMs;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(0, until - Date.now()))));
    if (!(await app.gcActive())) { held(); return; }
  }
  held();
  res.setHeader('Retry-After', '30');
  throw err('UNAVAILABLE', 'garbage collection is running: manifest pushes, blob commits and mounts wait for it, and it did not end in time; retry shortly');
}
