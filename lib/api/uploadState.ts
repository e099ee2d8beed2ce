// The upload state carried in upload URLs (`_state`), signed with
// http.secret, in distribution's format (registry/handlers/hmac.go):
// base64url(HMAC-SHA256(secret, json) || json). Any registry process sharing
// the secret, ours or distribution's, can check and continue the upload.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { err } from '../errors.js';

export interface UploadState { name: string; uuid: string; offset: number; startedAt: Date }

const MAC_LEN = 32;

/** Go's time.Time JSON (RFC 3339 with nanoseconds where present). */
function goTime(d: Date): string {
  return d.toISOString().replace(/\.000Z$/, 'Z');
}

export function packUploadState(secret: Buffer, s: UploadState): string {
  // Go field names: distribution marshals the struct without json tags.
  const json = Buffer.from(JSON.stringify({ Name: s.name, UUID: s.uuid, Offset: s.offset, StartedAt: goTime(s.startedAt) }));
  const mac = createHmac('sha256', secret).update(json).digest();
  return Buffer.concat([mac, json]).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

const invalid = (why: string) => err('BLOB_UPLOAD_INVALID', `upload state invalid: ${why}`);

/** Checks the signature and that the state is for this upload. */
export function unpackUploadState(secret: Buffer, token: string, name: string, uuid: string): UploadState {
  let raw: Buffer;
  try {
    raw = Buffer.from(token.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  } catch {
    throw invalid('not base64');
  }
  if (raw.length <= MAC_LEN) throw invalid('too short');
  const mac = raw.subarray(0, MAC_LEN);
  const json = raw.subarray(MAC_LEN);
  const want = createHmac('sha256', secret).update(json).digest();
  if (!timingSafeEqual(mac, want)) {
    throw invalid('signature does not match (tampered, or signed by a registry with another http.secret)');
  }
  let v: Record<string, unknown>;
  try { v = JSON.parse(json.toString('utf8')) as Record<string, unknown>; } catch { throw invalid('not JSON'); }
  // Go's encoding/json matches keys case-insensitively; so do we.
  const get = (k: string) => Object.entries(v).find(([key]) => key.toLowerCase() === k)?.[1];
  const state = { name: String(get('name') ?? ''), uuid: String(get('uuid') ?? ''), offset: Number(get('offset') ?? -1), startedAt: new Date(String(get('startedat') ?? '')) };
  if (state.name !== name) throw invalid(`it is for repository ${state.name.slice(0, 200)}, not ${name}`);
  if (state.uuid !== uuid) throw invalid('it is for another upload');
  return state;
}

export function randomSecret(): Buffer {
  return randomBytes(32);
}
