// Bounds the pull-through cache: proxied content not pulled within its
// remote's ttl is removed (distribution's scheduler, without its one
// scheduler-state.json that every node rewrites), and past proxy.maxsize the
// least recently pulled blobs go until the cache fits. Run by `registry
// serve` on a timer (one node at a time with Redis) and by `registry
// garbage-collect` before its mark. A blob's data is deleted here only when
// every repository is proxied (no hosted repository can link it); otherwise
// its links go and garbage-collect frees the data under its write gate.
import type { DriverContext } from '../../drivers/driver.js';
import { isNotFound } from '../../drivers/driver.js';
import { mapLimit } from '../concurrency.js';
import { proxyRecordsRoot } from '../storage/paths.js';
import type { Registry } from '../storage/registry.js';
import type { ProxyKind } from './proxyObserver.js';
import type { ProxyRegistry } from './proxyRegistry.js';

export interface ExpirySummary {
  records: number;
  manifestsExpired: number;
  blobsExpired: number;
  /** Blobs removed for the size cap (least recently pulled first). */
  blobsEvicted: number;
  /** Bytes of blob data deleted (pure proxy mode), or unlinked and left for garbage-collect. */
  bytesDeleted: number;
  bytesLeftForGC: number;
  /** Proxied blob bytes kept. */
  bytesKept: number;
  errors: number;
}

interface Rec { name: string; kind: ProxyKind; dgst: string; pulledAt: number; path: string }

const CONCURRENCY = 8;

export async function expireProxyCache(registry: Registry, proxy: ProxyRegistry, ctx: DriverContext, opts: { dryRun?: boolean; now?: number; emit?: (line: string) => void } = {}): Promise<ExpirySummary> {
  const now = opts.now ?? Date.now();
  const driver = registry.driver;
  const root = proxyRecordsRoot();
  const sum: ExpirySummary = { records: 0, manifestsExpired: 0, blobsExpired: 0, blobsEvicted: 0, bytesDeleted: 0, bytesLeftForGC: 0, bytesKept: 0, errors: 0 };
  const recs: Rec[] = [];
  try {
    await driver.walk(ctx, root, (fi) => {
      if (fi.isDir) return;
      const rel = fi.path.slice(root.length + 1);
      const m = /^(.+)\/(_blobs|_manifests)\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(rel);
      if (!m) return;
      recs.push({ name: m[1], kind: m[2] === '_blobs' ? 'blob' : 'manifest', dgst: `${m[3]}:${m[4]}`, pulledAt: fi.modTime.getTime(), path: fi.path });
    });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  sum.records = recs.length;

  const expired = (r: Rec) => {
    const t = proxy.resolve(r.name);
    // A name no longer proxied (the config changed) is left alone.
    return t !== null && t.remote.config.ttlMs > 0 && now - r.pulledAt > t.remote.config.ttlMs;
  };
  const goingManifests = recs.filter((r) => r.kind === 'manifest' && expired(r));
  const blobRecs = recs.filter((r) => r.kind === 'blob' && proxy.resolve(r.name) !== null);
  const goingBlobs = new Set(blobRecs.filter(expired));

  // Per digest: its records, its size, when it was last pulled anywhere.
  const sizes = new Map<string, number>();
  await mapLimit([...new Set(blobRecs.map((r) => r.dgst))], CONCURRENCY, async (dgst) => {
    sizes.set(dgst, await blobSize(registry, ctx, dgst));
  });
  const byDigest = new Map<string, Rec[]>();
  for (const r of blobRecs) {
    const list = byDigest.get(r.dgst);
    if (list) list.push(r); else byDigest.set(r.dgst, [r]);
  }
  const kept = (d: string) => byDigest.get(d)!.some((r) => !goingBlobs.has(r));
  let total = 0;
  for (const d of byDigest.keys()) if (kept(d)) total += sizes.get(d) ?? 0;
  const cap = proxy.config.maxSizeBytes;
  if (cap > 0 && total > cap) {
    const lastPull = (d: string) => Math.max(...byDigest.get(d)!.map((r) => r.pulledAt));
    const candidates = [...byDigest.keys()].filter(kept).sort((a, b) => lastPull(a) - lastPull(b));
    for (const d of candidates) {
      if (total <= cap) break;
      for (const r of byDigest.get(d)!) goingBlobs.add(r);
      total -= sizes.get(d) ?? 0;
      sum.blobsEvicted++;
    }
  }
  sum.bytesKept = total;

  const remove = async (r: Rec, what: () => Promise<void>) => {
    opts.emit?.(`${r.name}: ${r.kind} ${r.dgst} last pulled ${new Date(r.pulledAt).toISOString()}: ${opts.dryRun ? 'eligible for removal' : 'removing'}`);
    if (opts.dryRun) return;
    try {
      await what();
      await driver.delete(ctx, r.path).catch((e) => { if (!isNotFound(e)) throw e; });
      proxy.records?.forget(r.name, r.kind, r.dgst);
    } catch (e) {
      sum.errors++;
      ctx.log?.warn({ err: (e as Error).message, repository: r.name, digest: r.dgst }, 'proxy expiry: could not remove');
    }
  };
  await mapLimit(goingManifests, CONCURRENCY, (r) => remove(r, async () => {
    try { await registry.repository(r.name).manifests.delete(ctx, r.dgst); } catch (e) {
      if ((e as { code?: string }).code !== 'MANIFEST_UNKNOWN') throw e;
    }
    sum.manifestsExpired++;
  }));
  const evictedOrExpired = [...goingBlobs];
  sum.blobsExpired = evictedOrExpired.filter(expired).length;
  await mapLimit(evictedOrExpired, CONCURRENCY, (r) => remove(r, async () => {
    try { await registry.repository(r.name).blobs.unlink(ctx, r.dgst); } catch (e) {
      if ((e as { code?: string }).code !== 'BLOB_UNKNOWN') throw e;
    }
  }));
  // The data of digests no record keeps.
  for (const [d, list] of byDigest) {
    if (!list.every((r) => goingBlobs.has(r))) continue;
    const size = sizes.get(d) ?? 0;
    if (proxy.hostsRepositories || opts.dryRun) { sum.bytesLeftForGC += size; continue; }
    try {
      await registry.blobStore.delete(ctx, d);
      sum.bytesDeleted += size;
    } catch (e) {
      if (!isNotFound(e)) { sum.errors++; ctx.log?.warn({ err: (e as Error).message, digest: d }, 'proxy expiry: could not delete blob data'); }
    }
  }
  return sum;
}

async function blobSize(registry: Registry, ctx: DriverContext, dgst: string): Promise<number> {
  try { return (await registry.blobStore.stat(ctx, dgst)).size; } catch (e) {
    if ((e as { code?: string }).code === 'BLOB_UNKNOWN') return 0;
    throw e;
  }
}

