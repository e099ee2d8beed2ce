// Upload purging: removes upload sessions left behind by clients that went
// away. An upload is purged only when it both started and was last written
// more than `olderThanMs` ago, so a slow upload that is still moving is never
// removed (distribution looks at the start time alone).
import { type DriverContext, type StorageDriver, isNotFound, listNames } from '../../drivers/driver.js';
import { repositoriesRoot, uploadDataPath, uploadDir, uploadStartedAtPath } from './paths.js';

export interface PurgeOptions {
  olderThanMs: number;
  dryRun: boolean;
  now?: Date;
  onProgress?: (p: PurgeSummary) => void;
}

export interface PurgeSummary {
  scanned: number;
  purged: number;
  bytes: number;
  kept: number;
  errors: number;
}

async function uploadAge(driver: StorageDriver, ctx: DriverContext, repo: string, id: string): Promise<{ lastActive: number; size: number }> {
  let started = 0;
  try {
    const t = Date.parse((await driver.getContent(ctx, uploadStartedAtPath(repo, id))).toString().trim());
    if (Number.isFinite(t)) started = t;
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  let modified = 0;
  let size = 0;
  try {
    const fi = await driver.stat(ctx, uploadDataPath(repo, id));
    modified = fi.modTime.getTime();
    size = fi.size;
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  if (!started && !modified) {
    // Neither file: fall back to the folder itself.
    try { modified = (await driver.stat(ctx, uploadDir(repo, id))).modTime.getTime(); } catch { /* gone */ }
  }
  return { lastActive: Math.max(started, modified), size };
}

export async function purgeUploads(driver: StorageDriver, ctx: DriverContext, opts: PurgeOptions): Promise<PurgeSummary> {
  const now = (opts.now ?? new Date()).getTime();
  const cutoff = now - opts.olderThanMs;
  const sum: PurgeSummary = { scanned: 0, purged: 0, bytes: 0, kept: 0, errors: 0 };
  const root = repositoriesRoot();
  const uploadDirs: string[] = [];
  try {
    await driver.walk(ctx, root, (fi) => {
      if (!fi.isDir) return;
      const base = fi.path.slice(fi.path.lastIndexOf('/') + 1);
      if (base === '_uploads') { uploadDirs.push(fi.path); return 'skipdir'; }
      if (base.startsWith('_')) return 'skipdir';
    });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  for (const dir of uploadDirs) {
    const repo = dir.slice(root.length + 1, -'/_uploads'.length);
    for (const id of await listNames(driver, ctx, dir)) {
      sum.scanned++;
      try {
        const { lastActive, size } = await uploadAge(driver, ctx, repo, id);
        if (lastActive > cutoff) {
          sum.kept++;
        } else {
          if (!opts.dryRun) {
            try { await driver.delete(ctx, uploadDir(repo, id)); } catch (e) { if (!isNotFound(e)) throw e; }
          }
          sum.purged++;
          sum.bytes += size;
          ctx.log?.info({ repository: repo, upload: id, bytes: size, dryRun: opts.dryRun }, opts.dryRun ? 'would purge upload' : 'purged upload');
        }
      } catch (e) {
        sum.errors++;
        ctx.log?.error({ err: e, repository: repo, upload: id }, 'purging upload failed');
      }
      opts.onProgress?.(sum);
    }
  }
  return sum;
}
