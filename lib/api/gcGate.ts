// While garbage collection runs on a live cluster, writes that make a
// reference to a blob (manifest PUT, blob commit, mount) wait: the collector
// marked what was referenced when it started, and must not sweep a blob a new
// manifest points to. Clients get 503 with Retry-After and try again; pulls
// and uploads of blob bytes go on. See docs/maintenance.md.
import type { Response } from 'express';
import { err } from '../errors.js';
import type { App } from './context.js';

export async function gcGate(app: App, res: Response): Promise<void> {
  if (!app.gcActive || !(await app.gcActive())) return;
  res.setHeader('Retry-After', '30');
  throw err('UNAVAILABLE', 'garbage collection is running: manifest pushes, blob commits and mounts wait until it ends; retry shortly');
}
