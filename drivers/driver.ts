// The StorageDriver contract: distribution's storagedriver.StorageDriver in
// TypeScript. Paths are absolute, slash-separated, and name files or the
// directories implied by them.
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';

export interface DriverContext {
  signal?: AbortSignal;
  log?: Logger;
  requestId?: string;
  /** The client's address (X-Forwarded-For honoured), for middleware that redirects by origin. */
  remoteIP?: string;
}

export interface FileInfo {
  path: string;
  size: number; // 0 for directories
  modTime: Date;
  isDir: boolean;
}

/** A resumable writer: close() keeps what was written so a later
 *  writer(path, true) continues it; commit() finishes it; cancel() drops it.
 *  write() must not keep a reference to its chunk once it resolves: callers
 *  reuse the buffer. */
export interface FileWriter {
  write(chunk: Buffer): Promise<void>;
  size(): number;
  close(): Promise<void>;
  cancel(): Promise<void>;
  commit(): Promise<void>;
  /** Optional: stores the written bytes at dest instead of at the writer's
   *  path, where that is cheaper than commit() and a move (object stores:
   *  one PUT or one compose instead of PUT, copy and delete). Returns true
   *  when done (the writer is finished and its own path holds nothing), false
   *  when it cannot (the writer stays open: commit() as usual). */
  commitTo?(dest: string): Promise<boolean>;
  /** Optional: keeps a small opaque state (the upload's hash state) with the
   *  bytes, stored by the next close() at no extra request. Returns false if
   *  the writer cannot (the caller then stores it itself). The state must
   *  describe exactly size() bytes. */
  keepState?(state: Buffer): boolean;
  /** Optional: the state kept by the close() this writer resumed from, and the size it describes. */
  resumedState?(): { size: number; state: Buffer } | null;
}

export type WalkResult = void | 'skipdir';

/** What removeStrays found, and whether it looked everywhere a real run would. */
export interface StraySweep {
  paths: string[];
  /** A dry run left out a search the next real run makes (the filesystem's
   *  listing of every folder for older versions' temp files). */
  partial: boolean;
}

export interface StorageDriver {
  name(): string;
  getContent(ctx: DriverContext, path: string): Promise<Buffer>;
  putContent(ctx: DriverContext, path: string, content: Buffer): Promise<void>;
  reader(ctx: DriverContext, path: string, offset: number): Promise<Readable>;
  writer(ctx: DriverContext, path: string, append: boolean): Promise<FileWriter>;
  stat(ctx: DriverContext, path: string): Promise<FileInfo>;
  /** Full paths of the direct children of a directory. */
  list(ctx: DriverContext, path: string): Promise<string[]>;
  /** Moves a file, replacing any file at dest. */
  move(ctx: DriverContext, src: string, dest: string): Promise<void>;
  /** Deletes a file or a directory and everything below it. */
  delete(ctx: DriverContext, path: string): Promise<void>;
  /** Visits every file and directory below path in lexical order. */
  walk(ctx: DriverContext, path: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void>;
  /** True when walk() is a flat listing of the keys below path (S3, GCS: a
   *  request per 1,000 files, whatever the folders) rather than a listing per
   *  directory: a caller about to stat many files one by one can walk their
   *  folder instead. */
  readonly flatWalk?: boolean;
  /** Optional (stores with a flat walk): walk() from a point, `path/from`
   *  in key order: the listing starts after it, so what sorts before it
   *  costs nothing (a caller may still see some of it and must filter), and
   *  fn may return 'stop' to end the walk. A missing path is no error. */
  walkFrom?(ctx: DriverContext, path: string, from: string, fn: (fi: FileInfo) => Promise<WalkResult | 'stop'> | WalkResult | 'stop'): Promise<void>;
  /** A URL the client may fetch the content from directly, or null. */
  redirectURL(ctx: DriverContext, method: string, path: string): Promise<string | null>;
  /** Optional: prepares the store when the registry starts (azure creates a
   *  missing container, as distribution's driver does). Throws, with a message
   *  an operator can act on, when the store cannot be used. */
  init?(ctx: DriverContext): Promise<void>;
  /** Optional: a reader that also tells the file's whole size, from the same
   *  request where the store answers it (object stores: the GET's headers),
   *  so a blob GET needs no stat first. */
  readerWithSize?(ctx: DriverContext, path: string, offset: number): Promise<{ stream: Readable; size: number }>;
  /** Optional: removes files a crash of this driver can leave behind (the
   *  filesystem's putContent temp files) below path, if older than olderThan;
   *  returns their paths (removed, or that would be with dryRun) and whether
   *  a dry run left part of the search to the next real run. */
  removeStrays?(ctx: DriverContext, path: string, olderThan: Date, dryRun: boolean): Promise<StraySweep>;
  /** Optional: deletes many files (files, not directories; one that is
   *  missing is no error) in as few requests as the store allows: S3's
   *  DeleteObjects takes 1,000 keys, Azure's blob batch 256. For files
   *  already committed (garbage-collect's sweep), not ones being written.
   *  Without it, callers delete one path at a time. */
  deleteFiles?(ctx: DriverContext, paths: string[]): Promise<void>;
  /** Optional fast path: writes length bytes from offset to dest, reusing
   *  its buffers (no allocation and no garbage per chunk). dest's write
   *  callback must mean dest no longer needs the chunk, as it does for sockets
   *  and HTTP responses (not for a PassThrough). Drivers without it are read
   *  through reader(). */
  sendTo?(ctx: DriverContext, path: string, offset: number, length: number, dest: NodeJS.WritableStream): Promise<void>;
}

/** Told of what a cloud SDK does behind a call: a retry, an answer that asks to slow down (metrics). */
export interface DriverObserver {
  retry(): void;
  throttled(): void;
}

export class StorageDriverError extends Error {
  constructor(message: string, public readonly driver: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
export class PathNotFoundError extends StorageDriverError {
  constructor(public readonly path: string, driver: string) {
    super(`${driver}: path not found: ${path}`, driver);
  }
}
export class InvalidPathError extends StorageDriverError {
  constructor(public readonly path: string, driver: string) {
    super(`${driver}: invalid path: ${path}`, driver);
  }
}
export class InvalidOffsetError extends StorageDriverError {
  constructor(public readonly path: string, public readonly offset: number, driver: string) {
    super(`${driver}: invalid offset ${offset} for ${path}`, driver);
  }
}
export class UnsupportedMethodError extends StorageDriverError {
  constructor(method: string, driver: string) {
    super(`${driver}: unsupported method ${method}`, driver);
  }
}

export function isNotFound(err: unknown): err is PathNotFoundError {
  return err instanceof PathNotFoundError;
}

/** The names (last path components) of a directory's children; [] when it does not exist. */
export async function listNames(driver: Pick<StorageDriver, 'list'>, ctx: DriverContext, dir: string): Promise<string[]> {
  try {
    return (await driver.list(ctx, dir)).map((p) => p.slice(p.lastIndexOf('/') + 1));
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}
