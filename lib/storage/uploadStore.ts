// Upload sessions of one repository: start, resume, status.
import { randomUUID } from 'node:crypto';
import { type DriverContext, type StorageDriver, isNotFound } from '../../drivers/driver.js';
import { err } from '../errors.js';
import type { BlobStore } from './blobStore.js';
import { BlobWriter, type UploadInfo } from './blobWriter.js';
import type { LinkedBlobStore } from './linkedBlobStore.js';
import { uploadDataPath, uploadStartedAtPath } from './paths.js';
import type { UploadSessionCache } from './uploadSessionCache.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class UploadStore {
  constructor(
    readonly repo: string,
    private readonly driver: StorageDriver,
    private readonly blobStore: BlobStore,
    private readonly layers: LinkedBlobStore,
    private readonly sessions: UploadSessionCache,
  ) {}

  private unknown(id: string) {
    return err('BLOB_UPLOAD_UNKNOWN', `upload unknown: ${id.slice(0, 100)}`, { uuid: id.slice(0, 100) });
  }

  async create(ctx: DriverContext): Promise<BlobWriter> {
    const id = randomUUID();
    const startedAt = new Date();
    await this.driver.putContent(ctx, uploadStartedAtPath(this.repo, id), Buffer.from(startedAt.toISOString()));
    const fw = await this.driver.writer(ctx, uploadDataPath(this.repo, id), false);
    this.sessions.started(this.repo, id, startedAt);
    return new BlobWriter(this.repo, id, startedAt, this.driver, this.blobStore, this.layers, fw, this.sessions);
  }

  private async startedAt(ctx: DriverContext, id: string): Promise<Date> {
    if (!UUID_RE.test(id)) throw this.unknown(id);
    const known = this.sessions.startedAt(this.repo, id);
    if (known) return known;
    try {
      const at = new Date((await this.driver.getContent(ctx, uploadStartedAtPath(this.repo, id))).toString());
      this.sessions.started(this.repo, id, at);
      return at;
    } catch (e) {
      if (isNotFound(e)) throw this.unknown(id);
      throw e;
    }
  }

  async status(ctx: DriverContext, id: string): Promise<UploadInfo> {
    const startedAt = await this.startedAt(ctx, id);
    try {
      const fi = await this.driver.stat(ctx, uploadDataPath(this.repo, id));
      return { id, startedAt, size: fi.size };
    } catch (e) {
      if (isNotFound(e)) { this.sessions.forget(this.repo, id); throw this.unknown(id); }
      throw e;
    }
  }

  /** The upload's writer, appending; its size is what was stored so far. */
  async resume(ctx: DriverContext, id: string): Promise<BlobWriter> {
    const startedAt = await this.startedAt(ctx, id);
    let fw;
    try {
      fw = await this.driver.writer(ctx, uploadDataPath(this.repo, id), true);
    } catch (e) {
      if (isNotFound(e)) { this.sessions.forget(this.repo, id); throw this.unknown(id); }
      throw e;
    }
    return new BlobWriter(this.repo, id, startedAt, this.driver, this.blobStore, this.layers, fw, this.sessions);
  }
}
