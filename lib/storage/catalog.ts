// The catalog: repository names under repositories/, one page at a time.
//
// distribution walks the whole repositories tree for every page and filters
// by `last`; on a big bucket each page of _catalog costs the whole bucket.
// Here a page descends only where names after `last` can be, lists one
// directory per repository visited, and stops once the page is full: the
// cost of a page follows the repositories it returns (and the directories on
// their paths), not the size of the store.
//
// Order is distribution's: path component by component (its lessPath), so
// `a/b` comes before `a-c`, and `last` from a distribution page (or ours)
// continues where it should. A directory is a repository when it holds
// _manifests or _layers; directories starting with `_` are never names.
import { type DriverContext, type StorageDriver, listNames } from '../../drivers/driver.js';
import { repositoriesRoot } from './paths.js';

/** Directory listings in flight at once while a page is gathered. */
const PREFETCH = 8;

const children = async (driver: StorageDriver, ctx: DriverContext, dir: string) => (await listNames(driver, ctx, dir)).sort();

/** Up to `limit` repository names after `after`, in distribution's order. */
export async function catalogPage(driver: StorageDriver, ctx: DriverContext, after: string, limit: number): Promise<string[]> {
  const out: string[] = [];
  if (limit <= 0) return out;
  const root = repositoriesRoot();
  const bound = after ? after.split('/') : null;

  // `rest`: the components of `after` still to match below `dir`; null once
  // `dir` is past `after` (everything below it is in the page's range).
  const visit = async (dir: string, names: string[], rest: string[] | null): Promise<void> => {
    const isRepo = names.includes('_manifests') || names.includes('_layers');
    // A repository on the way to `after`, or `after` itself, is not after it.
    if (isRepo && rest === null && dir !== root) out.push(dir.slice(root.length + 1));
    let subs = names.filter((n) => !n.startsWith('_'));
    if (rest && rest.length) subs = subs.filter((n) => n >= rest[0]);
    // Listings of the next few children are fetched while one is visited.
    const pending = new Map<number, Promise<string[]>>();
    const fetch = (i: number) => {
      if (i < subs.length && !pending.has(i)) pending.set(i, children(driver, ctx, `${dir}/${subs[i]}`));
    };
    try {
      for (let i = 0; i < subs.length && out.length < limit; i++) {
        for (let j = i; j < i + PREFETCH; j++) fetch(j);
        const listing = await pending.get(i)!;
        pending.delete(i);
        const next = rest && rest.length && subs[i] === rest[0] ? rest.slice(1) : null;
        await visit(`${dir}/${subs[i]}`, listing, next);
      }
    } finally {
      // Listings fetched ahead and not used: settle them quietly.
      for (const p of pending.values()) p.catch(() => {});
    }
  };

  await visit(root, await children(driver, ctx, root), bound);
  return out;
}
