// Reading an object's body safely on the cloud drivers. The SDKs retry a
// request until its headers arrive; a connection that breaks after them is
// the caller's. Two faults were seen (test/storage/retries.test.ts cuts a body
// halfway): S3's and Azure's SDKs fail the body ('aborted'), and GCS's (v7,
// node-fetch 2 piping the response) never ends it, so a read hung for good.
import { Readable } from 'node:stream';
import { StorageDriverError } from './driver.js';

/** How long a body may give no byte while its reader waits before it counts as dead. */
export const STALL_MS = 60_000;
const ATTEMPTS = 3;

export class StalledReadError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no data for ${ms} ms; the connection is taken as dead`);
    this.name = 'StalledReadError';
  }
}

/**
 * The body of `src`, failing if the source gives no byte for `ms` while this
 * stream's reader waits for one, or closes without ending. A slow reader is
 * not a stall: the timer runs only while the buffer wants data.
 */
export function stallGuard(src: Readable, ms: number, what: string): Readable {
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  const stop = () => { if (timer) clearTimeout(timer); timer = undefined; };
  const arm = () => {
    stop();
    timer = setTimeout(() => out.destroy(new StalledReadError(what, ms)), ms);
  };
  const out = new Readable({
    read() {
      if (ended) return;
      arm();
      src.resume();
    },
    destroy(err, cb) {
      stop();
      if (!ended) src.destroy();
      cb(err);
    },
  });
  src.on('data', (c: Buffer) => {
    stop();
    if (!out.push(c)) src.pause(); else arm();
  });
  src.once('end', () => { ended = true; stop(); out.push(null); });
  src.once('error', (e) => out.destroy(e));
  src.once('close', () => {
    if (!ended) out.destroy(new Error(`${what}: the body closed before its end`));
  });
  src.pause();
  return out;
}

export interface OpenedBody {
  body: Readable;
  /** The length the store announced (Content-Length), when it did. */
  length?: number;
}

/**
 * A small object, read whole. A body that fails, stalls or ends short of its
 * announced length is a transport fault (objects are written whole or not at
 * all), so the object is opened again, up to three times in all. Errors of
 * `open` itself (not found, refused) are not retried here: the SDKs did.
 */
export async function readWhole(driver: string, what: string, open: () => Promise<OpenedBody>, stallMs = STALL_MS): Promise<Buffer> {
  for (let attempt = 1; ; attempt++) {
    const { body, length } = await open();
    let fault: Error;
    try {
      const parts: Buffer[] = [];
      let n = 0;
      for await (const c of stallGuard(body, stallMs, `${driver}: ${what}`)) {
        const b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
        parts.push(b);
        n += b.length;
      }
      if (length === undefined || n === length) return Buffer.concat(parts, n);
      fault = new Error(`body of ${n} bytes, ${length} announced`);
    } catch (e) {
      fault = e as Error;
    }
    if (attempt >= ATTEMPTS) {
      throw new StorageDriverError(`${driver}: reading ${what} failed ${ATTEMPTS} times: ${fault.message}`, driver, { cause: fault });
    }
  }
}
