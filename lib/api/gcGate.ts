// While garbage collection runs on a live cluster, a write that makes a
// reference (manifest PUT, blob commit, mount) tells the collector what it
// references, through Redis (lib/cache/gcJournal.ts): while the collector
// marks, the reference is journaled and kept; while it sweeps, it is rescued
// from deletion, and the write waits only if that item is in the batch being
// deleted at that moment. A collector of an older version, without the
// journal, holds such writes for its whole run, as before. A write held
// longer than storage.maintenance.garbagecollect.writewait (60 s) gets 503
// with Retry-After. Pulls and uploads of blob bytes never wait.
// See docs/maintenance.md.
import { createHash } from 'node:crypto';
import type { Response } from 'express';
import { parseManifest } from '../storage/manifestParse.js';
import { err } from '../errors.js';
import type { App } from './context.js';

const HOLD_POLL_MS = 250;
const WAIT_POLL_MS = 25;

export async function gcGate(app: App, res: Response, items: string[]): Promise<void> {
  if (!app.gcReference) return;
  let r = await app.gcReference(items);
  if (r === 'go') return;
  const start = Date.now();
  app.metrics?.gcGateHeld.inc();
  const held = () => app.metrics?.gcGateHeldSeconds.observe((Date.now() - start) / 1000);
  const until = start + app.config.storage.gcWriteWaitMs;
  for (let first = true; Date.now() < until; first = false) {
    // 'hold' is asked again soon once: a collector sets its lock a moment
    // before its journal, and a write that came in between need not wait long.
    const poll = r === 'wait' || first ? WAIT_POLL_MS : HOLD_POLL_MS;
    await new Promise((ok) => setTimeout(ok, Math.min(poll, Math.max(0, until - Date.now()))));
    r = await app.gcReference(items);
    if (r === 'go') { held(); return; }
  }
  held();
  res.setHeader('Retry-After', '30');
  throw err('UNAVAILABLE', 'garbage collection is running: this write references what it is deleting right now (or an older collector holds writes), and it did not end in time; retry shortly');
}

/** The items a manifest PUT references: the manifest itself, its blobs and
 *  its children (none if it does not parse: the put refuses it anyway). */
export function manifestItems(name: string, content: Buffer, contentType: string | undefined, digest: string | undefined): string[] {
  const own = `sha256:${createHash('sha256').update(content).digest('hex')}`;
  const out = [`${name}@${own}`];
  if (digest && digest !== own) out.push(`${name}@${digest}`);
  try {
    const m = parseManifest(content, contentType);
    for (const b of m.blobs) out.push(b.digest);
    for (const c of m.manifests) out.push(`${name}@${c.digest}`);
  } catch { /* refused by the put */ }
  return out;
}
