// Commit on a store that is only eventually consistent: a moved blob shows up
// late, and commit must re-check with bounded retries rather than fail.
import { expect } from 'chai';
import { randomBytes, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Base } from '../../drivers/base.js';
import { type DriverContext, type FileInfo, PathNotFoundError, type StorageDriver } from '../../drivers/driver.js';
import { InMemoryDriver } from '../../drivers/inmemory/driver.js';
import { MemoryDescriptorCache } from '../cache/descriptorCache.js';
import { Registry } from './registry.js';

/** Hides each moved file from stat for the first `lag` looks, as S3 once did. */
class LaggingDriver extends InMemoryDriver {
  private hidden = new Map<string, number>();
  constructor(private readonly lag: number) { super(); }
  override async move(ctx: DriverContext, src: string, dest: string): Promise<void> {
    await super.move(ctx, src, dest);
    this.hidden.set(dest, this.lag);
  }
  override async stat(ctx: DriverContext, p: string): Promise<FileInfo> {
    const left = this.hidden.get(p);
    if (left) { this.hidden.set(p, left - 1); throw new PathNotFoundError(p, this.name()); }
    return super.stat(ctx, p);
  }
}

async function push(driver: StorageDriver, data: Buffer): Promise<string> {
  const registry = new Registry(new Base(driver), new MemoryDescriptorCache());
  const repo = registry.repository('ec/repo');
  const w = await repo.uploads.create({});
  await w.write({}, Readable.from([data]));
  const dgst = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  await w.commit({}, dgst);
  return (await repo.blobs.stat({}, dgst)).digest;
}

describe('blobWriter commit on eventually consistent storage', () => {
  it('re-checks until the moved blob is visible', async () => {
    const data = randomBytes(1000);
    expect(await push(new LaggingDriver(3), data)).to.match(/^sha256:/);
  });

  it('gives up after its bounded retries with an error, not a hang', async () => {
    let failed: unknown;
    try { await push(new LaggingDriver(50), randomBytes(10)); } catch (e) { failed = e; }
    expect(failed).to.be.instanceOf(PathNotFoundError);
  });
});
