// tagStore: tags of one repository, as _manifests/tags/<tag>/{current,index}.
import { LRUCache } from 'lru-cache';
import { type DriverContext, type FileInfo, type StorageDriver, isNotFound, listNames } from '../../drivers/driver.js';
import { mapLimit } from '../concurrency.js';
import { isDigest } from '../digest.js';
import { err } from '../errors.js';
import {
  tagCurrentLinkPath, tagDigestIndexDir, tagDigestIndexEntryPath, tagDigestIndexMarkerPath, tagDir, tagIndexLinkPath, tagsRoot,
} from './paths.js';

/** Tags seen with a current link, so listings check each tag once (bounded; positive entries only). */
export type TagSeenCache = LRUCache<string, true>;

/** The digest-to-tags index (storage.tag.digestindex) and, per repository,
 *  whether its marker was seen: true for good (a marker is never removed),
 *  false for a short while (a garbage collection may write it meanwhile). */
export interface TagDigestIndex {
  enabled: boolean;
  complete: LRUCache<string, boolean>;
}

/** From this many tags, object stores walk the tags folder instead of a request per tag. */
const MANY_TAGS = 50;
/** S3's DeleteObjects limit. */
const DELETE_BATCH = 1000;

/** Where a walk of a repository's tags folder is: the tag a path belongs
 *  to, whether the path is that tag's current link, and 'skipdir' for a
 *  tag's history (`<tag>/index`), which no listing of tags needs. */
export function tagWalkEntry(root: string, fi: FileInfo): { tag: string; current: boolean; skip: boolean } {
  const rel = fi.path.slice(root.length + 1).split('/');
  return {
    tag: rel[0],
    current: !fi.isDir && rel.length === 3 && rel[1] === 'current' && rel[2] === 'link',
    skip: fi.isDir && rel.length === 2 && rel[1] === 'index',
  };
}

/** How long a repository is remembered as having no complete index. */
const INCOMPLETE_TTL_MS = 60_000;

export class TagStore {
  constructor(
    readonly repo: string,
    private readonly driver: StorageDriver,
    private readonly seen: TagSeenCache,
    /** storage.tag.concurrencylimit: link reads at once when scanning tags. */
    private readonly concurrency = 8,
    private readonly index: TagDigestIndex = { enabled: false, complete: new LRUCache({ max: 1 }) },
  ) {}

  private unknown(tag: string) {
    return err('MANIFEST_UNKNOWN', `manifest unknown: tag ${tag} is not in repository ${this.repo}`, { tag });
  }

  private seenKey(tag: string): string { return `${this.repo}\n${tag}`; }

  async get(ctx: DriverContext, tag: string): Promise<string> {
    try {
      const dgst = (await this.driver.getContent(ctx, tagCurrentLinkPath(this.repo, tag))).toString().trim();
      if (!isDigest(dgst)) throw err('UNKNOWN', `tag ${tag} of ${this.repo} holds an invalid link`);
      return dgst;
    } catch (e) {
      if (isNotFound(e)) throw this.unknown(tag);
      throw e;
    }
  }

  async tag(ctx: DriverContext, tag: string, dgst: string): Promise<void> {
    // The index entries first: a reader that sees current also finds them.
    if (this.index.enabled) {
      await this.startIndex(ctx);
      await this.driver.putContent(ctx, tagDigestIndexEntryPath(this.repo, dgst, tag), Buffer.alloc(0));
    }
    await this.driver.putContent(ctx, tagIndexLinkPath(this.repo, tag, dgst), Buffer.from(dgst));
    await this.driver.putContent(ctx, tagCurrentLinkPath(this.repo, tag), Buffer.from(dgst));
    this.seen.set(this.seenKey(tag), true);
  }

  async untag(ctx: DriverContext, tag: string): Promise<void> {
    this.seen.delete(this.seenKey(tag));
    try {
      await this.driver.delete(ctx, tagDir(this.repo, tag));
    } catch (e) {
      if (isNotFound(e)) throw this.unknown(tag);
      throw e;
    }
  }

  /** Deletes the folders of many tags (a tag that is gone already is no
   *  error). On object stores with a flat walk and batched deletes, past a
   *  few tags: one walk of the tags folder and deletes of 1,000 keys each,
   *  the current links first, instead of a listing and a delete per tag (a
   *  manifest under 1,000 of 10,000 tags took 2,000 requests). */
  async untagMany(ctx: DriverContext, tags: string[]): Promise<void> {
    for (const t of tags) this.seen.delete(this.seenKey(t));
    if (tags.length < MANY_TAGS || !this.driver.flatWalk || !this.driver.deleteFiles) {
      await mapLimit(tags, this.concurrency, (t) => this.untag(ctx, t).catch((e) => { if ((e as { code?: string }).code !== 'MANIFEST_UNKNOWN') throw e; }));
      return;
    }
    const doomed = new Set(tags);
    const root = tagsRoot(this.repo);
    const current: string[] = [];
    const rest: string[] = [];
    try {
      await this.driver.walk(ctx, root, (fi) => {
        const rel = fi.path.slice(root.length + 1);
        const tag = rel.split('/', 1)[0];
        if (!doomed.has(tag)) return fi.isDir ? 'skipdir' : undefined;
        if (!fi.isDir) (rel === `${tag}/current/link` ? current : rest).push(fi.path);
        return undefined;
      });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    const files = [...current, ...rest];
    for (let i = 0; i < files.length; i += DELETE_BATCH) await this.driver.deleteFiles(ctx, files.slice(i, i + DELETE_BATCH));
  }

  /** The names of the tag folders ([] for none). */
  private folders(ctx: DriverContext): Promise<string[]> {
    return listNames(this.driver, ctx, tagsRoot(this.repo));
  }

  /** All tags with a current link, sorted; [] when the repository has none.
   *  A tag folder without one (a crash mid-write or mid-delete) is skipped:
   *  it would answer 404. */
  async all(ctx: DriverContext): Promise<string[]> {
    if (this.driver.flatWalk) return this.walked(ctx);
    return this.present(ctx, (await this.folders(ctx)).sort());
  }

  /** On object stores: the tags with a current link, sorted, from one flat
   *  listing of the tags folder (a request per ~500 tags) instead of a HEAD
   *  per tag. Tag histories (`index/`) are skipped past, so a tag moved
   *  many times costs one more request, not one per entry. */
  private async walked(ctx: DriverContext): Promise<string[]> {
    const root = tagsRoot(this.repo);
    const out: string[] = [];
    try {
      await this.driver.walk(ctx, root, (fi) => {
        const e = tagWalkEntry(root, fi);
        if (e.current) out.push(e.tag);
        return e.skip ? 'skipdir' : undefined;
      });
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
    return out.sort();
  }

  /** Up to n tags after `last`, and whether more follow: one listing, and
   *  current links checked only for the tags of this page (and the one after
   *  it), so a page's cost follows its size, not the repository's. On object
   *  stores, one flat listing of the tags folder instead, whose cost (a
   *  request per ~500 tags) is far below a HEAD per tag of the page. */
  async page(ctx: DriverContext, last: string, n: number): Promise<{ tags: string[]; more: boolean; folders: number }> {
    if (this.driver.walkFrom) return this.pageFrom(ctx, last, n);
    if (this.driver.flatWalk) {
      const all = await this.walked(ctx);
      const after = all.filter((t) => t > last);
      // folders: 0 only where the tags folder is empty or missing, as below.
      return { tags: after.slice(0, n), more: after.length > n, folders: all.length || (await this.folders(ctx)).length };
    }
    const names = await this.folders(ctx);
    const after = names.filter((t) => t > last).sort();
    const out: string[] = [];
    // Ghost folders are rare: check what the page still needs, again if some were ghosts.
    for (let i = 0; i < after.length && out.length <= n;) {
      const want = n + 1 - out.length;
      out.push(...await this.present(ctx, after.slice(i, i + want)));
      i += want;
    }
    return { tags: out.slice(0, n), more: out.length > n, folders: names.length };
  }

  /** A page on an object store: a flat listing from `last` that stops at
   *  the n+1st tag with a current link (histories skipped past): a request
   *  per ~500 tags of the page, whatever the repository holds. Key order is
   *  not name order only where a tag is another's prefix followed by '-' or
   *  '.' ('a-b/' lists before 'a/'): a tag the listing had not reached yet
   *  can sort before those it found only if it is such a prefix of one of
   *  them, and those few names are checked one by one. */
  private async pageFrom(ctx: DriverContext, last: string, n: number): Promise<{ tags: string[]; more: boolean; folders: number }> {
    const root = tagsRoot(this.repo);
    const found: string[] = [];
    let any = false;
    let stopped = false;
    await this.driver.walkFrom!(ctx, root, last, (fi) => {
      any = true;
      const e = tagWalkEntry(root, fi);
      if (e.current && e.tag > last) {
        found.push(e.tag);
        if (found.length > n) { stopped = true; return 'stop'; }
      }
      return e.skip ? 'skipdir' : undefined;
    });
    if (stopped) {
      const have = new Set(found);
      const prefixes = new Set<string>();
      for (const t of found) {
        for (let i = 1; i < t.length; i++) if ((t[i] === '-' || t[i] === '.') && t.slice(0, i) > last && !have.has(t.slice(0, i))) prefixes.add(t.slice(0, i));
      }
      found.push(...await this.present(ctx, [...prefixes]));
    }
    found.sort();
    // folders: 0 only where the tags folder is empty or missing (the handler then asks whether the repository exists).
    const folders = any ? Math.max(found.length, 1) : (await this.folders(ctx)).length;
    return { tags: found.slice(0, n), more: found.length > n, folders };
  }

  /** The names (sorted) whose folder holds a current link. */
  private async present(ctx: DriverContext, names: string[]): Promise<string[]> {
    const unseen = names.filter((t) => !this.seen.has(this.seenKey(t)));
    const present = await mapLimit(unseen, this.concurrency, async (t) => {
      try {
        const fi = await this.driver.stat(ctx, tagCurrentLinkPath(this.repo, t));
        return !fi.isDir;
      } catch (e) {
        if (isNotFound(e)) return false;
        throw e;
      }
    });
    const ghosts = new Set<string>();
    unseen.forEach((t, i) => { if (present[i]) this.seen.set(this.seenKey(t), true); else ghosts.add(t); });
    return names.filter((t) => !ghosts.has(t));
  }

  /** True when the repository's digest index holds every current tag (its marker is there). */
  async indexComplete(ctx: DriverContext): Promise<boolean> {
    if (!this.index.enabled) return false;
    const known = this.index.complete.get(this.repo);
    if (known !== undefined) return known;
    const found = await this.exists(ctx, tagDigestIndexMarkerPath(this.repo));
    this.index.complete.set(this.repo, found, found ? {} : { ttl: INCOMPLETE_TTL_MS });
    return found;
  }

  /** A repository that never had a tag starts its index complete: its first
   *  tag writes the marker before its entry. One that has tags from before
   *  (distribution's, or an older version's) waits for garbage-collect. */
  private async startIndex(ctx: DriverContext): Promise<void> {
    if (await this.indexComplete(ctx)) return;
    if (await this.exists(ctx, tagsRoot(this.repo))) return;
    await this.driver.putContent(ctx, tagDigestIndexMarkerPath(this.repo), Buffer.alloc(0));
    this.index.complete.set(this.repo, true);
  }

  /** Writes the entries of the given current tags, then the marker
   *  (garbage-collect, which has read every current link). Tags written
   *  meanwhile by this registry have their entries already. */
  async completeIndex(ctx: DriverContext, current: Iterable<[string, string]>): Promise<number> {
    if (!this.index.enabled || await this.indexComplete(ctx)) return 0;
    const entries = [...current];
    await mapLimit(entries, this.concurrency, ([tag, dgst]) =>
      this.driver.putContent(ctx, tagDigestIndexEntryPath(this.repo, dgst, tag), Buffer.alloc(0)));
    await this.driver.putContent(ctx, tagDigestIndexMarkerPath(this.repo), Buffer.alloc(0));
    this.index.complete.set(this.repo, true);
    return entries.length;
  }

  /** Drops a deleted manifest's index entries (after its tags are gone). */
  async forget(ctx: DriverContext, dgst: string): Promise<void> {
    if (!this.index.enabled) return;
    try { await this.driver.delete(ctx, tagDigestIndexDir(this.repo, dgst)); } catch (e) { if (!isNotFound(e)) throw e; }
  }

  private async exists(ctx: DriverContext, path: string): Promise<boolean> {
    try { await this.driver.stat(ctx, path); return true; } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /** Tags whose current link points at dgst (one link read each, at most
   *  `concurrency` at once): with a complete digest index, only the tags
   *  that ever pointed at dgst are read; without one, every tag. The index
   *  may hold tags since moved or deleted: each candidate's link is checked. */
  async lookup(ctx: DriverContext, dgst: string): Promise<string[]> {
    let names = await this.indexComplete(ctx)
      ? await listNames(this.driver, ctx, tagDigestIndexDir(this.repo, dgst))
      : await this.folders(ctx);
    // Many candidates on an object store: one walk says which still have a
    // current link, so the links of tags just deleted are not read one by
    // one (the second look of a manifest DELETE).
    if (names.length >= MANY_TAGS && this.driver.flatWalk) {
      const live = new Set(await this.walked(ctx));
      names = names.filter((t) => live.has(t));
    }
    const points = await mapLimit(names, this.concurrency, async (tag) => {
      try {
        return (await this.get(ctx, tag)) === dgst;
      } catch (e) {
        // Gone, or a link that is not a digest (a store whose writes are not
        // atomic, s3rver, shows one mid-write): either way not this digest's.
        const code = (e as { code?: string }).code;
        if (code === 'MANIFEST_UNKNOWN' || code === 'UNKNOWN') return false;
        throw e;
      }
    });
    return names.filter((_, i) => points[i]).sort();
  }
}
