// tagStore: tags of one repository, as _manifests/tags/<tag>/{current,index}.
import { type DriverContext, type StorageDriver, isNotFound } from '../../drivers/driver.js';
import { isDigest } from '../digest.js';
import { err } from '../errors.js';
import { tagCurrentLinkPath, tagDir, tagIndexLinkPath, tagsRoot } from './paths.js';

export class TagStore {
  constructor(readonly repo: string, private readonly driver: StorageDriver) {}

  private unknown(tag: string) {
    return err('MANIFEST_UNKNOWN', `manifest unknown: tag ${tag} is not in repository ${this.repo}`, { tag });
  }

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
    // The index entry first: a reader that sees current also finds its index.
    await this.driver.putContent(ctx, tagIndexLinkPath(this.repo, tag, dgst), Buffer.from(dgst));
    await this.driver.putContent(ctx, tagCurrentLinkPath(this.repo, tag), Buffer.from(dgst));
  }

  async untag(ctx: DriverContext, tag: string): Promise<void> {
    try {
      await this.driver.delete(ctx, tagDir(this.repo, tag));
    } catch (e) {
      if (isNotFound(e)) throw this.unknown(tag);
      throw e;
    }
  }

  /** All tags, sorted; [] when the repository has none. */
  async all(ctx: DriverContext): Promise<string[]> {
    try {
      const paths = await this.driver.list(ctx, tagsRoot(this.repo));
      return paths.map((p) => p.slice(p.lastIndexOf('/') + 1)).sort();
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  }

  /** Tags whose current link points at dgst. */
  async lookup(ctx: DriverContext, dgst: string): Promise<string[]> {
    const out: string[] = [];
    for (const tag of await this.all(ctx)) {
      try {
        if ((await this.get(ctx, tag)) === dgst) out.push(tag);
      } catch (e) {
        if ((e as { code?: string }).code !== 'MANIFEST_UNKNOWN') throw e;
      }
    }
    return out;
  }
}
