// Digests as the OCI image spec defines them: algorithm ":" encoded.
import { err } from './errors.js';

export type Algorithm = 'sha256' | 'sha512';
const HEX_LEN: Record<Algorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

export interface Digest { algorithm: Algorithm; hex: string; toString(): string }

export function parseDigest(s: string): Digest | null {
  const m = DIGEST_RE.exec(s);
  if (!m) return null;
  const algorithm = m[1] as Algorithm;
  if (!(algorithm in HEX_LEN)) return null;
  const hex = m[2];
  if (hex.length !== HEX_LEN[algorithm] || !/^[a-f0-9]+$/.test(hex)) return null;
  return { algorithm, hex, toString: () => s };
}

/** Parses or throws DIGEST_INVALID with the offending value. */
export function mustDigest(s: unknown, what = 'digest'): string {
  if (typeof s !== 'string' || !parseDigest(s)) {
    throw err('DIGEST_INVALID', `invalid ${what}: ${String(s).slice(0, 200)}`, { digest: String(s).slice(0, 200) });
  }
  return s;
}

export function isDigest(s: string): boolean {
  return parseDigest(s) !== null;
}
