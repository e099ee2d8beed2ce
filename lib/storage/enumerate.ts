// The files at a fixed depth of the layout, as distribution's
// blobStore.Enumerate and linkedBlobStore.Enumerate visit them:
// blobs/<alg>/<xx>/<hex>/data and _layers/<alg>/<hex>/link.
import { type DriverContext, type FileInfo, type StorageDriver, isNotFound, listNames } from '../../drivers/driver.js';
import { mapLimit } from '../concurrency.js';

/** Files stat'ed at once where the store has no flat walk. */
const STATS = 32;

/**
 * Calls fn, in lexical order, for each `<root>/<n1>/.../<nk>/<file>` (k =
 * levels) with the k names. On object stores, one walk (a flat listing). On
 * the filesystem, a listing of each folder above the last level and a stat
 * of each file: a walk would also list every leaf folder (each blob's, each
 * link's), half the filesystem calls of a collection's blob phase. A leaf
 * folder without the file (an interrupted write or delete) is skipped.
 */
export async function enumerateFiles(driver: StorageDriver, ctx: DriverContext, root: string, levels: number, file: string,
  fn: (names: string[], fi: FileInfo) => void): Promise<void> {
  if (driver.flatWalk) {
    try {
      await driver.walk(ctx, root, (fi) => {
        if (fi.isDir) return;
        const rel = fi.path.slice(root.length + 1).split('/');
        if (rel.length === levels + 1 && rel[levels] === file) fn(rel.slice(0, levels), fi);
      });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    return;
  }
  const visit = async (dir: string, names: string[]): Promise<void> => {
    const children = (await listNames(driver, ctx, dir)).sort();
    if (names.length + 1 < levels) {
      for (const c of children) await visit(`${dir}/${c}`, [...names, c]);
      return;
    }
    const infos = await mapLimit(children, STATS, async (c) => {
      try {
        const fi = await driver.stat(ctx, `${dir}/${c}/${file}`);
        return fi.isDir ? null : fi;
      } catch (e) {
        if (isNotFound(e)) return null;
        throw e;
      }
    });
    children.forEach((c, i) => { const fi = infos[i]; if (fi) fn([...names, c], fi); });
  };
  await visit(root, []);
}
