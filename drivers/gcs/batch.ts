// Deletes through the JSON API's batch endpoint (`/batch/storage/v1`): up to
// 100 calls in one multipart/mixed request, each part a nested HTTP request,
// the answer one part per call with its own status. The SDK (v7) has no
// client for it. A batch only saves round trips: every object a batch did not
// delete (a part answered 429 or 5xx, a batch that failed as a whole) is
// deleted again on its own through the SDK, with the SDK's retries, so the
// result is the same as one DELETE per object. An endpoint without batches
// (404, 405, 501: the emulator, some private endpoints) is told once.
import { randomUUID } from 'node:crypto';

/** Google's limit of calls in one batch request. */
export const BATCH_MAX = 100;
const TIMEOUT_MS = 60_000;

export interface BatchEndpoint {
  /** The API's base, as the SDK's apiEndpoint: https://storage.googleapis.com */
  apiEndpoint: string;
  bucket: string;
  /** Authorization (when the SDK would send it) and User-Agent. */
  headers(): Promise<Record<string, string>>;
}

export type BatchResult = { failed: string[]; throttled: boolean } | 'unsupported';

/** The request body for deleting names (at most BATCH_MAX). */
export function deleteBatchBody(bucket: string, names: string[], boundary: string): string {
  const parts = names.map((n, i) =>
    `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: <${i + 1}>\r\n\r\n` +
    `DELETE /storage/v1/b/${encodeURIComponent(bucket)}/o/${encodeURIComponent(n)} HTTP/1.1\r\n\r\n`);
  return `${parts.join('')}--${boundary}--\r\n`;
}

/** Each call's status, by the 0-based index of its request part, from a
 *  multipart/mixed answer. A part's Content-ID is `<response-N>` for the
 *  request's `<N>`; a part without one takes the next place in order. Calls
 *  the answer says nothing of are absent. */
export function parseBatchAnswer(contentType: string, body: string): Map<number, number> {
  const out = new Map<number, number>();
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!m) return out;
  const boundary = m[1] ?? m[2]!;
  let place = 0;
  for (const raw of body.split(`--${boundary}`).slice(1)) {
    if (raw.startsWith('--')) break; // the closing delimiter
    const text = raw.replace(/^\r?\n/, '');
    const head = /\r?\n\r?\n/.exec(text);
    if (!head) continue;
    const partHeaders = text.slice(0, head.index);
    const inner = text.slice(head.index + head[0].length);
    const status = /^HTTP\/[\d.]+\s+(\d{3})/.exec(inner);
    // Ours are `<N>`; Google's examples end theirs in `+N`.
    const id = /^content-id:\s*<?response-[^>\r\n]*?(\d+)>?\s*$/im.exec(partHeaders);
    const at = id ? Number(id[1]) - 1 : place;
    place = at + 1;
    if (status && at >= 0) out.set(at, Number(status[1]));
  }
  return out;
}

/** Deletes names (at most BATCH_MAX) in one request; names it did not
 *  delete are returned for the caller to delete on their own. A part
 *  answered 404 is done: the object is gone either way. */
export async function deleteBatch(e: BatchEndpoint, names: string[]): Promise<BatchResult> {
  const boundary = `batch_${randomUUID()}`;
  let res: Response;
  try {
    res = await fetch(`${e.apiEndpoint}/batch/storage/v1`, {
      method: 'POST',
      headers: { ...(await e.headers()), 'Content-Type': `multipart/mixed; boundary=${boundary}` },
      body: deleteBatchBody(e.bucket, names, boundary),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    return { failed: names, throttled: false };
  }
  let text: string;
  try { text = await res.text(); } catch { return { failed: names, throttled: false }; }
  if (res.status === 404 || res.status === 405 || res.status === 501) return 'unsupported';
  if (res.status !== 200) return { failed: names, throttled: res.status === 429 || res.status === 503 };
  const statuses = parseBatchAnswer(res.headers.get('content-type') ?? '', text);
  const failed: string[] = [];
  let throttled = false;
  names.forEach((n, i) => {
    const s = statuses.get(i);
    if (s === 429 || s === 503) throttled = true;
    if (s === undefined || !((s >= 200 && s < 300) || s === 404)) failed.push(n);
  });
  return { failed, throttled };
}
