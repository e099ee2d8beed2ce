// Referrer links: which manifests in a repository name a given subject.
import { type DriverContext, type StorageDriver, isNotFound } from '../../drivers/driver.js';
import { isDigest } from '../digest.js';
import { referrerLinkPath, referrersDir } from './paths.js';

export class ReferrerStore {
  constructor(readonly repo: string, private readonly driver: StorageDriver) {}

  async add(ctx: DriverContext, subject: string, referrer: string): Promise<void> {
    await this.driver.putContent(ctx, referrerLinkPath(this.repo, subject, referrer), Buffer.from(referrer));
  }

  async remove(ctx: DriverContext, subject: string, referrer: string): Promise<void> {
    try {
      await this.driver.delete(ctx, referrerLinkPath(this.repo, subject, referrer).replace(/\/link$/, ''));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  /** Digests of the manifests that name subject. */
  async list(ctx: DriverContext, subject: string): Promise<string[]> {
    const out: string[] = [];
    const dir = referrersDir(this.repo, subject);
    let algs: string[];
    try { algs = await this.driver.list(ctx, dir); } catch (e) { if (isNotFound(e)) return []; throw e; }
    for (const algPath of algs) {
      const alg = algPath.slice(algPath.lastIndexOf('/') + 1);
      let hexes: string[];
      try { hexes = await this.driver.list(ctx, algPath); } catch (e) { if (isNotFound(e)) continue; throw e; }
      for (const h of hexes) {
        const dgst = `${alg}:${h.slice(h.lastIndexOf('/') + 1)}`;
        if (isDigest(dgst)) out.push(dgst);
      }
    }
    return out.sort();
  }
}
