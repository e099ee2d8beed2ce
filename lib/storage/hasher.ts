// Resumable hashing. SHA-256 runs on OpenSSL through a small N-API addon
// whose context is a plain buffer, so the state can be saved beside an upload
// in Go's crypto/sha256 MarshalBinary format (the format distribution
// writes), and an upload begun on either registry can be finished on the
// other. Without the addon, node:crypto hashes at the same speed but cannot
// save state: uploads then resume by re-reading what was stored.
import { createHash, type Hash } from 'node:crypto';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import type { Algorithm } from '../digest.js';

interface NativeSha256 {
  ctxSize(): number;
  init(ctx: Buffer): void;
  update(ctx: Buffer, data: Uint8Array): void;
  updateAsync(ctx: Buffer, data: Buffer, cb: () => void): void;
  final(ctx: Buffer): Buffer;
}

function loadNative(): NativeSha256 | null {
  if (process.env.TSREGISTRY_NO_NATIVE_SHA256 === '1' || endianness() !== 'LE') return null;
  try {
    const req = createRequire(import.meta.url);
    const mod = req(new URL('../../../native/sha256/build/Release/sha256.node', import.meta.url).pathname) as NativeSha256;
    return mod.ctxSize() === CTX_SIZE && typeof mod.updateAsync === 'function' ? mod : null;
  } catch {
    return null;
  }
}

// OpenSSL SHA256_CTX: h[8], Nl, Nh, data[16], num, md_len (all 32-bit).
const CTX_SIZE = 112;
const native = loadNative();
export const nativeSha256 = native !== null;

export interface Hasher {
  readonly algorithm: Algorithm;
  update(data: Buffer): void;
  /** Like update, off the event loop where possible; data must stay untouched
   *  until the promise settles, and calls must not overlap. */
  updateAsync(data: Buffer): Promise<void>;
  /** Hex digest of what was hashed so far; the hasher stays usable. */
  hex(): string;
  /** Bytes hashed so far. */
  readonly length: number;
  /** The state in Go's MarshalBinary format, or null when it cannot be saved. */
  marshal(): Buffer | null;
}

const GO_MAGIC = Buffer.from('sha\x03', 'latin1');
const GO_STATE_LEN = 4 + 32 + 64 + 8;

class NativeSha256Hasher implements Hasher {
  readonly algorithm = 'sha256' as const;
  length = 0;
  constructor(private readonly ctx: Buffer, length = 0) { this.length = length; }
  update(data: Buffer): void { native!.update(this.ctx, data); this.length += data.length; }
  updateAsync(data: Buffer): Promise<void> {
    this.length += data.length;
    return new Promise((resolve) => native!.updateAsync(this.ctx, data, resolve));
  }
  hex(): string { return native!.final(this.ctx).toString('hex'); }
  marshal(): Buffer {
    const out = Buffer.alloc(GO_STATE_LEN);
    GO_MAGIC.copy(out, 0);
    for (let i = 0; i < 8; i++) out.writeUInt32BE(this.ctx.readUInt32LE(i * 4), 4 + i * 4);
    const pending = this.length % 64;
    this.ctx.copy(out, 36, 40, 40 + pending);
    out.writeBigUInt64BE(BigInt(this.length), 100);
    return out;
  }
}

class NodeHasher implements Hasher {
  private h: Hash;
  length = 0;
  constructor(readonly algorithm: Algorithm) { this.h = createHash(algorithm); }
  update(data: Buffer): void { this.h.update(data); this.length += data.length; }
  async updateAsync(data: Buffer): Promise<void> { this.update(data); }
  hex(): string { return this.h.copy().digest('hex'); }
  marshal(): null { return null; }
}

export function createHasher(algorithm: Algorithm): Hasher {
  if (algorithm === 'sha256' && native) {
    const ctx = Buffer.alloc(CTX_SIZE);
    native.init(ctx);
    return new NativeSha256Hasher(ctx);
  }
  return new NodeHasher(algorithm);
}

/** Restores a hasher from Go's MarshalBinary format; null if it cannot. */
export function restoreHasher(algorithm: Algorithm, state: Buffer): Hasher | null {
  if (algorithm !== 'sha256' || !native) return null;
  if (state.length !== GO_STATE_LEN || !state.subarray(0, 4).equals(GO_MAGIC)) return null;
  const length = Number(state.readBigUInt64BE(100));
  const ctx = Buffer.alloc(CTX_SIZE);
  native.init(ctx);
  for (let i = 0; i < 8; i++) ctx.writeUInt32LE(state.readUInt32BE(4 + i * 4), i * 4);
  const bits = BigInt(length) * 8n;
  ctx.writeUInt32LE(Number(bits & 0xffffffffn), 32);
  ctx.writeUInt32LE(Number(bits >> 32n), 36);
  state.copy(ctx, 40, 36, 36 + (length % 64));
  ctx.writeUInt32LE(length % 64, 104);
  ctx.writeUInt32LE(32, 108);
  return new NativeSha256Hasher(ctx, length);
}
