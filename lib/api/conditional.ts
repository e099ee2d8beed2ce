// Conditional and range requests (RFC 9110 §13, §14): If-None-Match with
// weak comparison, If-Range with strong comparison, and Range parsing with
// one or several ranges.
import { err } from '../errors.js';

const tags = (header: string) => header.split(',').map((t) => t.trim()).filter(Boolean);
const opaque = (t: string) => (t.startsWith('W/') ? t.slice(2) : t);

/** If-None-Match: true when the header names etag (weak comparison) or is "*". */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return tags(header).some((t) => t === '*' || opaque(t) === etag);
}

/** If-Range: the range applies only if the header is this strong etag (a date or weak tag never matches: there is no Last-Modified). */
export function ifRangeHolds(header: string | undefined, etag: string): boolean {
  if (header === undefined) return true;
  return header.trim() === etag;
}

export interface ByteRange { start: number; end: number }

/** At most this many ranges in one request are served as multipart; more get the whole body (RFC 9110 allows ignoring Range). */
export const MAX_RANGES = 16;

/** Parses "bytes=a-b, c-, -d" against size. Returns null when the body should
 *  be sent whole (too many ranges), throws RANGE_INVALID (416) when none is
 *  satisfiable, else the satisfiable ranges in request order. */
export function parseRanges(header: string, size: number): ByteRange[] | null {
  const bad = (why: string) => err('RANGE_INVALID', `${why}: ${header.slice(0, 100)} (blob is ${size} bytes)`, { size }, 416);
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) throw bad('malformed Range (bytes=start-end[, start-end...])');
  const specs = m[1].split(',').map((x) => x.trim()).filter(Boolean);
  if (specs.length === 0) throw bad('malformed Range');
  if (specs.length > MAX_RANGES) return null;
  const out: ByteRange[] = [];
  for (const spec of specs) {
    const r = /^(\d*)-(\d*)$/.exec(spec);
    if (!r || (r[1] === '' && r[2] === '')) throw bad('malformed Range');
    if (r[1] === '') {
      const suffix = Number(r[2]);
      if (suffix === 0 || size === 0) continue;
      out.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const start = Number(r[1]);
    if (r[2] !== '' && Number(r[2]) < start) throw bad('range ends before it starts');
    if (start >= size) continue;
    out.push({ start, end: r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1) });
  }
  if (out.length === 0) throw bad('no range is satisfiable');
  return out;
}
