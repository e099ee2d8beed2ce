// Mark and sweep over distribution's layout, as distribution's
// garbage-collect, with what it lacks: children of a kept index are kept
// (tagged or not), artifacts whose subject is kept are kept, blobs younger
// than the grace period are never deleted (a push uploads blobs before the
// manifest that references them), and dangling layer links and empty tag
// folders go too. The caller makes it safe on a live registry (cmd: the
// Redis gate, or an offline registry); see docs/maintenance.md.
import { type DriverContext, type StorageDriver, isNotFound, listNames } from '../../drivers/driver.js';
import { parseManifest } from './manifestParse.js';
import { ROOT, blobDir, blobsRoot, layerLinkPath, layersRoot, revisionsRoot, tagCurrentLinkPath, tagDir, tagIndexLinkPath, tagsRoot } from './paths.js';
import type { Registry } from './registry.js';
import { mapLimit } from '../concurrency.js';
import { DigestMap, DigestSet, flatDigest } from './digestSet.js';
import { type ManifestRefs, MarkCache } from './markCache.js';
import { tagWalkEntry } from './tagStore.js';
import { enumerateFiles } from './enumerate.js';

// Storage calls in flight at once: reads while marking, deletes while
// sweeping. Sequential calls left the store idle between round trips (the
// collection of 33,000 files took 20 times distribution's); these bound what
// a run asks of the store and the memory its results take.
const SCAN_REPOS = 4;
const READS = 32;
const DELETES = 16;
/** Files per batched delete: S3's DeleteObjects limit. */
const BATCH = 1000;

export interface GCOptions {
  dryRun: boolean;
  deleteUntagged: boolean;
  /** Blobs and links modified more recently than this are kept. */
  graceMs: number;
  now?: Date;
  /** One line per decision, distribution's wording ("blob eligible for deletion: ..."). */
  emit?: (line: string) => void;
  progress?: (phase: string, done: number) => void;
  /** Checked before each deletion; throws to stop (the gate was lost). */
  guard?: () => Promise<void>;
  /** Online collection (lib/cache/gcJournal.ts): what writes referenced
   *  while this run marked is kept, and each deletion is claimed first. */
  journal?: SweepJournal;
  /** false: read every manifest, and keep no mark cache (default: use it). */
  markCache?: boolean;
  /** Called between the phases ('marked': the mark and the blob walk are
   *  done; 'sweeping': the journal switched to rescues). Tests use it to
   *  write at a known point of the run. */
  at?: (point: 'marked' | 'sweeping') => Promise<void>;
}

/** What a collection on a live registry agrees with the serving nodes.
 *  Items are blob digests and `repo@digest` for manifests. */
export interface SweepJournal {
  /** Publishes what this run would delete and switches the nodes from
   *  journaling their references to rescuing them; returns what they
   *  referenced while the run marked. */
  sweep(doomed: Iterable<string>): Promise<Set<string>>;
  /** Of items, those no write has rescued, now claimed for deletion: a write
   *  that references one waits until release(). */
  claim(items: string[]): Promise<string[]>;
  release(items: string[]): Promise<void>;
}

export interface GCSummary {
  repositories: number;
  manifestsMarked: number;
  blobsMarked: number;
  /** repo@digest of manifests removed (or that would be). */
  manifestsDeleted: string[];
  blobsDeleted: string[];
  bytesFreed: number;
  layerLinksDeleted: number;
  tagFoldersDeleted: number;
  /** Temp files a crash left (filesystem), older than the grace period. */
  straysDeleted: number;
  /** A dry run left out the search for older versions' temp files that the
   *  next real run makes (the filesystem's listing of every folder, once). */
  straySweepPartial: boolean;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  youngKept: number;
  /** Digest-index entries written for repositories tagged before the index. */
  tagIndexEntriesWritten: number;
  /** Manifests and blobs this run would have deleted but that writes
   *  referenced while it ran (online collection): kept. */
  rescued: number;
  /** Manifests read from the store; the others' references came from the
   *  mark cache of earlier runs (lib/storage/markCache.ts). */
  manifestsRead: number;
}

interface RepoScan {
  name: string;
  revisions: Set<string>;
  /** tag -> digest; null when the tag has no current link; PRESENT when it
   *  has one that was not read (not needed: see readTags). */
  tags: Map<string, string | null>;
  /** manifest -> children (index), blobs (config, layers), subject */
  graph: Map<string, { children: string[]; blobs: string[]; subject?: string }>;
  /** layer link digest -> the link's modification time (ms) */
  layers: DigestMap<number>;
  /** Manifests read from the store (the others came from the mark cache). */
  manifestsRead: number;
}

/** A tag's target when it was not read (only that the tag has a current link). */
const PRESENT = '';

async function scanRepo(registry: Registry, ctx: DriverContext, name: string, marks: MarkCache | undefined, want: { dryRun: boolean; deleteUntagged: boolean }): Promise<RepoScan> {
  const writeMarks = !want.dryRun;
  const driver = registry.driver;
  let readFromStore = 0;
  const revisions = new Set<string>();
  const tags = new Map<string, string | null>();
  const layers = new DigestMap<number>();
  const graph: RepoScan['graph'] = new Map();
  const readRevisions = async () => {
    for (const alg of await listNames(driver, ctx, revisionsRoot(name))) {
      for (const hex of await listNames(driver, ctx, `${revisionsRoot(name)}/${alg}`)) revisions.add(flatDigest(`${alg}:${hex}`));
    }
    // What earlier runs read is not read again (lib/storage/markCache.ts).
    const cached = marks ? await marks.read(name) : new Map<string, ManifestRefs>();
    const unread = [...revisions].filter((d) => !cached.has(d));
    const parsed = await mapLimit(unread, READS, async (dgst) => {
      let content: Buffer;
      try {
        content = await registry.blobStore.getContent(ctx, dgst);
      } catch (e) {
        if ((e as { code?: string }).code === 'BLOB_UNKNOWN') return null; // a revision whose bytes are gone: nothing to mark
        throw e;
      }
      try {
        return parseManifest(content, undefined);
      } catch (e) {
        // What it references is unknown: deleting anything could lose data.
        throw new Error(`garbage-collect: manifest ${dgst} of ${name} cannot be parsed (${(e as Error).message}); nothing was deleted`);
      }
    });
    for (const dgst of revisions) {
      const c = cached.get(dgst);
      if (c) graph.set(dgst, c);
    }
    unread.forEach((dgst, i) => {
      const p = parsed[i];
      if (p) graph.set(dgst, { children: p.manifests.map((d) => d.digest), blobs: p.blobs.map((d) => d.digest), subject: p.subject?.digest });
    });
    // Written as soon as the repository is read: a run killed after this
    // point does not read these manifests again. Only current revisions
    // are kept, so the file follows the repository.
    const stale = [...cached.keys()].some((d) => !revisions.has(d));
    if (marks && writeMarks && (parsed.some((p) => p !== null) || stale)) {
      if (graph.size) await marks.write(name, graph); else await marks.remove(name);
    }
    readFromStore = parsed.filter((p) => p !== null).length;
  };
  const readTags = async () => {
    // The tags' targets matter for --delete-untagged (the roots) and for a
    // digest index still to complete. Otherwise only which tag folders lack
    // a current link does, and an object store says that with one listing
    // of the tags folder instead of a GET per tag.
    const needTargets = want.deleteUntagged || (!want.dryRun && !(await registry.repository(name).tags.indexComplete(ctx)));
    if (!needTargets && driver.flatWalk) {
      const root = tagsRoot(name);
      try {
        await driver.walk(ctx, root, (fi) => {
          const e = tagWalkEntry(root, fi);
          if (e.current) tags.set(e.tag, PRESENT);
          else if (!tags.has(e.tag)) tags.set(e.tag, null);
          return e.skip ? 'skipdir' : undefined;
        });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      return;
    }
    const names = await listNames(driver, ctx, tagsRoot(name));
    const targets = await mapLimit(names, READS, async (tag) => {
      try {
        return (await driver.getContent(ctx, tagCurrentLinkPath(name, tag))).toString().trim();
      } catch (e) {
        if (!isNotFound(e)) throw e;
        return null;
      }
    });
    names.forEach((tag, i) => tags.set(tag, targets[i]));
  };
  // Layer links with their times (a flat listing on object stores).
  const readLayers = () => enumerateFiles(driver, ctx, layersRoot(name), 2, 'link', ([alg, hex], fi) => {
    layers.set(`${alg}:${hex}`, fi.modTime.getTime());
  });
  await Promise.all([readRevisions(), readTags(), readLayers()]);
  return { name, revisions, tags, graph, layers, manifestsRead: readFromStore };
}

/** Manifests of the repository to keep: from the roots, their index children and their referrers, transitively. */
function keptManifests(scan: RepoScan, deleteUntagged: boolean): Set<string> {
  const referrers = new Map<string, string[]>();
  for (const [dgst, node] of scan.graph) {
    if (node.subject) referrers.set(node.subject, [...(referrers.get(node.subject) ?? []), dgst]);
  }
  const roots = deleteUntagged
    ? [...scan.tags.values()].filter((d): d is string => d !== null && scan.revisions.has(d))
    : [...scan.revisions];
  const kept = new Set<string>();
  const queue = [...roots];
  while (queue.length) {
    const d = queue.pop()!;
    if (kept.has(d)) continue;
    kept.add(d);
    const node = scan.graph.get(d);
    for (const c of node?.children ?? []) if (scan.revisions.has(c)) queue.push(c);
    for (const r of referrers.get(d) ?? []) queue.push(r);
  }
  return kept;
}

/** Deletes folders that each hold one file, `file` (a blob's data, a link):
 *  on stores that delete many files per request, in batches of BATCH files
 *  (S3: one DeleteObjects each); elsewhere one folder at a time, DELETES at
 *  once. guard() is asked before every request. */
async function removeDirs(driver: StorageDriver, ctx: DriverContext, dirs: string[], file: string, guard: () => Promise<void>): Promise<void> {
  if (driver.deleteFiles) {
    for (let i = 0; i < dirs.length; i += BATCH) {
      await guard();
      await driver.deleteFiles(ctx, dirs.slice(i, i + BATCH).map((d) => `${d}/${file}`));
    }
    return;
  }
  await mapLimit(dirs, DELETES, async (d) => {
    await guard();
    try { await driver.delete(ctx, d); } catch (e) { if (!isNotFound(e)) throw e; }
  });
}

/** The tag-history entries (tags/<tag>/index/<alg>/<hex>) of the given
 *  manifests: with few of them, one path per tag each; with more, one walk
 *  of the tags folder, which costs the same however many there are. */
async function historyEntries(driver: StorageDriver, ctx: DriverContext, repo: string, tags: string[], dgsts: Set<string>): Promise<string[]> {
  if (dgsts.size <= 2) return [...dgsts].flatMap((d) => tags.map((t) => tagIndexLinkPath(repo, t, d).replace(/\/link$/, '')));
  const root = tagsRoot(repo);
  const out: string[] = [];
  try {
    await driver.walk(ctx, root, (fi) => {
      if (!fi.isDir) return;
      const rel = fi.path.slice(root.length + 1).split('/'); // <tag>/index/<alg>/<hex>
      if (rel.length === 2 && rel[1] !== 'index') return 'skipdir';
      if (rel.length === 4) {
        if (dgsts.has(`${rel[2]}:${rel[3]}`)) out.push(fi.path);
        return 'skipdir';
      }
    });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  return out;
}

export async function garbageCollect(registry: Registry, ctx: DriverContext, opts: GCOptions): Promise<GCSummary> {
  const driver = registry.driver;
  const emit = opts.emit ?? (() => {});
  const guard = opts.guard ?? (async () => {});
  const cutoff = (opts.now ?? new Date()).getTime() - opts.graceMs;
  const sum: GCSummary = {
    repositories: 0, manifestsMarked: 0, blobsMarked: 0, manifestsDeleted: [], blobsDeleted: [],
    bytesFreed: 0, layerLinksDeleted: 0, tagFoldersDeleted: 0, straysDeleted: 0, straySweepPartial: false, youngKept: 0, tagIndexEntriesWritten: 0, rescued: 0, manifestsRead: 0,
  };

  // Mark.
  // Compact keys (digestSet.ts): these hold every blob of the registry.
  const marked = new DigestSet();
  /** Blobs some repository linked within the grace period: kept like young blobs. */
  const linkedLately = new DigestSet();
  const scans: { scan: RepoScan }[] = [];
  const doomed: { repo: string; dgst: string }[] = [];
  const names = await registry.repositories(ctx);
  const marks = opts.markCache === false ? undefined : new MarkCache(driver, ctx);
  // A few repositories scanned at once; marked in name order, as before.
  const pending = new Map<number, Promise<RepoScan>>();
  const start = (i: number) => {
    if (i >= names.length || pending.has(i)) return;
    const p = scanRepo(registry, ctx, names[i], marks, opts);
    p.catch(() => {}); // a failure is thrown where it is awaited, in order
    pending.set(i, p);
  };
  for (let i = 0; i < names.length; i++) {
    for (let j = i; j < i + SCAN_REPOS; j++) start(j);
    const name = names[i];
    emit(name);
    const scan = await pending.get(i)!;
    pending.delete(i);
    const kept = keptManifests(scan, opts.deleteUntagged);
    for (const d of kept) {
      emit(`${name}: marking manifest ${d} `);
      marked.add(d);
      for (const b of [...(scan.graph.get(d)?.blobs ?? []), ...(scan.graph.get(d)?.children ?? [])]) {
        if (!marked.has(b)) emit(`${name}: marking blob ${b}`);
        marked.add(b);
      }
    }
    // A blob linked into a repository within the grace period is in use: a
    // push that committed it (perhaps onto an old copy of the same bytes) or
    // mounted it is about to reference it from a manifest.
    for (const [d, at] of scan.layers) if (at > cutoff) linkedLately.add(d);
    sum.manifestsMarked += kept.size;
    sum.manifestsRead += scan.manifestsRead;
    // Untagged manifests no kept manifest needs. Of the repository's graph
    // only theirs is kept (a write may still rescue one, with what it
    // references); the rest is marked and let go, so memory follows what is
    // doomed, not the registry.
    for (const d of scan.revisions) if (!kept.has(d)) doomed.push({ repo: scan.name, dgst: d });
    for (const d of kept) scan.graph.delete(d);
    scan.revisions.clear();
    scans.push({ scan });
    sum.repositories++;
    opts.progress?.('mark', sum.repositories);
  }
  sum.blobsMarked = marked.size;
  if (marks && !opts.dryRun) await marks.prune(new Set(names));


  // Blobs: every data file under blobs/, unless marked or young.
  const existing = new DigestSet();
  let candidates: { dgst: string; size: number }[] = [];
  await enumerateFiles(driver, ctx, blobsRoot(), 3, 'data', ([alg, , hex], fi) => {
    const dgst = `${alg}:${hex}`;
    existing.add(dgst);
    if (marked.has(dgst)) return;
    if (fi.modTime.getTime() > cutoff || linkedLately.has(dgst)) { sum.youngKept++; return; }
    candidates.push({ dgst: flatDigest(dgst), size: fi.size });
  });
  await opts.at?.('marked');
  const wouldDelete = new DigestSet(candidates.map(({ dgst }) => dgst));

  // Online: what writes referenced while we marked is kept, with what it
  // references in turn (an index's children, a manifest's blobs).
  const journal = opts.dryRun ? undefined : opts.journal;
  const graphs = new Map(scans.map(({ scan }) => [scan.name, scan.graph]));
  const rescued = new Set<string>();
  const rescue = (item: string) => {
    const stack = [item];
    while (stack.length) {
      const it = stack.pop()!;
      if (rescued.has(it)) continue;
      rescued.add(it);
      const at = it.indexOf('@');
      if (at < 0) continue;
      const repo = it.slice(0, at);
      const dgst = it.slice(at + 1);
      stack.push(dgst); // the manifest's own bytes
      const node = graphs.get(repo)?.get(dgst);
      for (const b of node?.blobs ?? []) stack.push(b);
      for (const c of node?.children ?? []) stack.push(`${repo}@${c}`);
    }
  };
  if (journal) {
    const items = function* () {
      for (const { repo, dgst } of doomed) yield `${repo}@${dgst}`;
      for (const { dgst } of candidates) yield dgst;
    };
    for (const r of await journal.sweep(items())) rescue(r);
    await opts.at?.('sweeping');
  }
  const kept = (item: string) => rescued.has(item);

  for (const { repo, dgst } of doomed) {
    emit(`manifest eligible for deletion: ${repo}@${dgst}`);
  }
  const deletedManifests = new Set<string>();
  if (opts.dryRun) {
    for (const { repo, dgst } of doomed) deletedManifests.add(`${repo}@${dgst}`);
  } else {
    // Repositories tagged before the digest index (by distribution, or an
    // older version) get it now, from the links just read, so the deletes
    // below, and the API's from now on, read only their own tags.
    for (const { scan } of scans) {
      const current = [...scan.tags].filter((e): e is [string, string] => e[1] !== null && e[1] !== PRESENT);
      await guard();
      sum.tagIndexEntriesWritten += await registry.repository(scan.name).tags.completeIndex(ctx, current);
    }
    await mapLimit(doomed, DELETES, async ({ repo, dgst }) => {
      const item = `${repo}@${dgst}`;
      if (kept(item)) return;
      await guard();
      if (journal && (await journal.claim([item])).length === 0) { rescue(item); return; }
      try {
        await registry.repository(repo).manifests.delete(ctx, dgst);
        deletedManifests.add(item);
      } catch (e) {
        if ((e as { code?: string }).code !== 'MANIFEST_UNKNOWN') throw e;
      } finally {
        await journal?.release([item]);
      }
    });
    // Their entries in the tags' histories, as distribution's vacuum removes them.
    const byRepo = new Map<string, Set<string>>();
    for (const { repo, dgst } of doomed) {
      if (deletedManifests.has(`${repo}@${dgst}`)) (byRepo.get(repo) ?? byRepo.set(repo, new Set()).get(repo)!).add(dgst);
    }
    for (const { scan } of scans) {
      const gone = byRepo.get(scan.name);
      if (!gone) continue;
      await removeDirs(driver, ctx, await historyEntries(driver, ctx, scan.name, [...scan.tags.keys()], gone), 'link', guard);
    }
  }
  for (const { repo, dgst } of doomed) if (deletedManifests.has(`${repo}@${dgst}`)) sum.manifestsDeleted.push(`${repo}@${dgst}`);

  // Rescued manifests keep their blobs (rescue() above, also for those
  // rescued during the manifest deletes).
  candidates = candidates.filter(({ dgst }) => !kept(dgst));
  for (const { dgst } of candidates) emit(`blob eligible for deletion: ${dgst}`);
  const deletedBlobs = new Set<string>();
  const record = (d: string) => {
    const c = sizes.get(d) ?? 0;
    sum.blobsDeleted.push(d);
    sum.bytesFreed += c;
    deletedBlobs.add(d);
  };
  const sizes = new Map(candidates.map(({ dgst, size }) => [dgst, size]));
  let n = 0;
  if (opts.dryRun) {
    for (const { dgst } of candidates) record(dgst);
    opts.progress?.('sweep', candidates.length);
  } else {
    // In batches where the store deletes many files per request (object
    // stores); each batch's descriptors are dropped from the cache after it.
    // A batch is what a write referencing one of its blobs may wait for.
    const per = driver.deleteFiles ? BATCH : BATCH / 4;
    for (let i = 0; i < candidates.length; i += per) {
      let batch = candidates.slice(i, i + per).map(({ dgst }) => dgst);
      await guard();
      if (journal) {
        const claimed = new Set(await journal.claim(batch));
        for (const d of batch) if (!claimed.has(d)) rescue(d);
        batch = batch.filter((d) => claimed.has(d));
      }
      try {
        await removeDirs(driver, ctx, batch.map((d) => blobDir(d)), 'data', guard);
        await mapLimit(batch, DELETES, (d) => registry.cache.delete(d));
      } finally {
        await journal?.release(batch);
      }
      batch.forEach(record);
      n += batch.length;
      opts.progress?.('sweep', n);
    }
  }
  if (rescued.size) {
    sum.rescued = doomed.filter(({ repo, dgst }) => rescued.has(`${repo}@${dgst}`)).length
      + [...wouldDelete].filter((d) => rescued.has(d)).length;
  }

  // Layer links to blobs that are gone (deleted now, or missing and old).
  for (const { scan } of scans) {
    const name = scan.name;
    const unlink: string[] = [];
    for (const [dgst, at] of scan.layers) {
      // Gone: deleted now, or missing and the link older than the grace period.
      const gone = deletedBlobs.has(dgst) || (!existing.has(dgst) && !marked.has(dgst) && !rescued.has(dgst) && at <= cutoff);
      if (!gone) continue;
      emit(`${name}: layer link eligible for deletion: ${dgst}`);
      sum.layerLinksDeleted++;
      unlink.push(dgst);
    }
    if (!opts.dryRun && unlink.length) {
      // As LinkedBlobStore.unlink: the cache is cleared before and after.
      const drop = () => mapLimit(unlink, DELETES, (d) => registry.cache.deleteInRepo(name, d));
      await drop();
      await removeDirs(driver, ctx, unlink.map((d) => layerLinkPath(name, d).replace(/\/link$/, '')), 'link', guard);
      await drop();
    }
    // Tag folders without a current link (left by interrupted deletes or
    // pushes), once nothing in them is younger than the grace period: a push
    // writes the folder's index entry just before its current link.
    for (const [tag, dgst] of scan.tags) {
      if (dgst !== null) continue;
      let newest = 0;
      try {
        await driver.walk(ctx, tagDir(name, tag), (fi) => { if (!fi.isDir) newest = Math.max(newest, fi.modTime.getTime()); });
      } catch (e) { if (!isNotFound(e)) throw e; }
      if (newest > cutoff) continue;
      emit(`${name}: empty tag folder eligible for deletion: ${tag}`);
      sum.tagFoldersDeleted++;
      if (opts.dryRun) continue;
      await guard();
      try { await driver.delete(ctx, tagDir(name, tag)); } catch (e) { if (!isNotFound(e)) throw e; }
    }
  }
  // Files a crash left half-made (the filesystem's temp files), old enough.
  if (driver.removeStrays) {
    if (!opts.dryRun) await guard();
    const swept = await driver.removeStrays(ctx, ROOT, new Date(cutoff), opts.dryRun).catch((e) => { if (isNotFound(e)) return { paths: [], partial: false }; throw e; });
    for (const p of swept.paths) {
      emit(`stray temp file eligible for deletion: ${p}`);
      sum.straysDeleted++;
    }
    sum.straySweepPartial = swept.partial;
  }
  return sum;
}
