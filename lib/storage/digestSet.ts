// Digests held compactly, for garbage collection's marks: a registry of
// 100,000 blobs holds a few hundred thousand of them at once. A sha256 digest
// is kept as its 32 bytes in a one-byte string (about 48 bytes instead of
// 88), and every key is a fresh flat string: a digest sliced out of a listed
// path (`.../blobs/sha256/ab/<hex>/data`) would otherwise keep the whole path
// alive. Other algorithms are kept whole, marked so they cannot meet a
// sha256 key.

const SHA256 = /^sha256:[0-9a-f]{64}$/;
const OTHER = '\x01';

/** The compact key of a digest. */
export function digestKey(d: string): string {
  if (d.length === 71 && SHA256.test(d)) return Buffer.from(d.slice(7), 'hex').toString('latin1');
  // Never 32 characters long, so never a sha256 key; always a new flat string.
  const k = Buffer.from(`${OTHER}${d}`, 'utf8').toString('utf8');
  return k.length === 32 ? `${k}${OTHER}` : k;
}

/** The digest a key stands for. */
export function keyDigest(k: string): string {
  if (k.length === 32) return `sha256:${Buffer.from(k, 'latin1').toString('hex')}`;
  return k.slice(1, k.length === 33 && k.endsWith(OTHER) ? -1 : undefined);
}

/** A digest as a flat string of its own (not a slice of a longer one). */
export function flatDigest(d: string): string { return keyDigest(digestKey(d)); }

export class DigestSet implements Iterable<string> {
  private readonly keys = new Set<string>();
  constructor(items?: Iterable<string>) { if (items) for (const d of items) this.add(d); }
  add(d: string): this { this.keys.add(digestKey(d)); return this; }
  has(d: string): boolean { return this.keys.has(digestKey(d)); }
  delete(d: string): boolean { return this.keys.delete(digestKey(d)); }
  get size(): number { return this.keys.size; }
  *[Symbol.iterator](): Iterator<string> { for (const k of this.keys) yield keyDigest(k); }
}

export class DigestMap<V> implements Iterable<[string, V]> {
  private readonly m = new Map<string, V>();
  set(d: string, v: V): this { this.m.set(digestKey(d), v); return this; }
  get(d: string): V | undefined { return this.m.get(digestKey(d)); }
  has(d: string): boolean { return this.m.has(digestKey(d)); }
  get size(): number { return this.m.size; }
  *[Symbol.iterator](): Iterator<[string, V]> { for (const [k, v] of this.m) yield [keyDigest(k), v]; }
}
