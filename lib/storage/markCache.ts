// What each manifest references, kept by garbage-collect between runs, one
// file per repository: `_gc/marks/<repo>/manifests` under the registry root.
// A manifest never changes under its digest, so what it references is known
// for good once read. A later run, or a run started again after one was
// killed, reads the repository's file (one GET) instead of every manifest
// (one GET each): the mark's cost follows the manifests pushed since, not
// the registry. The folder is outside repositories/ and blobs/, where
// distribution (catalog, garbage-collect) never looks. docs/maintenance.md.
import { type DriverContext, type StorageDriver, isNotFound } from '../../drivers/driver.js';
import { ROOT } from './paths.js';

export interface ManifestRefs { children: string[]; blobs: string[]; subject?: string }

const HEADER = 'registry-gc-marks v1';
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function markCachePath(repo: string): string {
  // `_manifests`: no repository name has a component that starts with `_`.
  return `${ROOT}/_gc/marks/${repo}/_manifests`;
}

/** One line per manifest: its digest, then `b` blobs, `c` children, `s` subject. */
function encode(entries: Map<string, ManifestRefs>): Buffer {
  const lines = [HEADER];
  for (const [d, r] of entries) lines.push(JSON.stringify({ d, b: r.blobs, c: r.children, ...(r.subject ? { s: r.subject } : {}) }));
  return Buffer.from(`${lines.join('\n')}\n`);
}

/** The entries of a file, or null when it is not one of ours: then every
 *  manifest is read again (a damaged cache must never decide a deletion). */
function decode(content: Buffer): Map<string, ManifestRefs> | null {
  const lines = content.toString('utf8').split('\n');
  if (lines[0] !== HEADER || lines[lines.length - 1] !== '') return null;
  const out = new Map<string, ManifestRefs>();
  const digests = (x: unknown): x is string[] => Array.isArray(x) && x.every((d) => typeof d === 'string' && DIGEST.test(d));
  for (const line of lines.slice(1, -1)) {
    let e: { d?: unknown; b?: unknown; c?: unknown; s?: unknown };
    try { e = JSON.parse(line) as typeof e; } catch { return null; }
    if (typeof e.d !== 'string' || !DIGEST.test(e.d) || !digests(e.b) || !digests(e.c)) return null;
    if (e.s !== undefined && (typeof e.s !== 'string' || !DIGEST.test(e.s))) return null;
    out.set(e.d, { blobs: e.b, children: e.c, subject: e.s as string | undefined });
  }
  return out;
}

export class MarkCache {
  constructor(private readonly driver: StorageDriver, private readonly ctx: DriverContext) {}

  async read(repo: string): Promise<Map<string, ManifestRefs>> {
    try {
      return decode(await this.driver.getContent(this.ctx, markCachePath(repo))) ?? new Map();
    } catch (e) {
      if (isNotFound(e)) return new Map();
      throw e;
    }
  }

  async write(repo: string, entries: Map<string, ManifestRefs>): Promise<void> {
    await this.driver.putContent(this.ctx, markCachePath(repo), encode(entries));
  }

  /** Removes the files of repositories no longer in the registry; returns how many. */
  async prune(keep: Set<string>): Promise<number> {
    const root = `${ROOT}/_gc/marks`;
    const gone: string[] = [];
    try {
      await this.driver.walk(this.ctx, root, (fi) => {
        if (fi.isDir || !fi.path.endsWith('/_manifests')) return;
        const repo = fi.path.slice(root.length + 1, -'/_manifests'.length);
        if (!keep.has(repo)) gone.push(repo);
      });
    } catch (e) {
      if (isNotFound(e)) return 0;
      throw e;
    }
    for (const repo of gone) await this.remove(repo);
    return gone.length;
  }

  /** Drops the file of a repository that has no manifests left. */
  async remove(repo: string): Promise<void> {
    try { await this.driver.delete(this.ctx, markCachePath(repo)); } catch (e) { if (!isNotFound(e)) throw e; }
  }
}
