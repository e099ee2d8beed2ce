// What a client is told when the upstream fails and nothing is cached:
// the upstream's 429 as TOOMANYREQUESTS (with its Retry-After), a timeout as
// 504, anything else as 502, each with an OCI error body.
import { RegistryError, err } from '../errors.js';
import { UpstreamError } from './upstream.js';

export type ProxyError = RegistryError & { retryAfter?: string };

export function upstreamFailure(e: unknown): ProxyError {
  if (e instanceof RegistryError) return e;
  if (e instanceof UpstreamError) {
    if (e.status === 429) return Object.assign(err('TOOMANYREQUESTS', `${e.message}: the upstream is rate-limiting this registry`), { retryAfter: e.retryAfter });
    if (e.kind === 'timeout') return err('UNAVAILABLE', e.message, undefined, 504);
    return err('UNAVAILABLE', e.message, undefined, 502);
  }
  return err('UNAVAILABLE', `the upstream failed: ${(e as Error)?.message ?? String(e)}`, undefined, 502);
}
