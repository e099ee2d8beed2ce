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
    // Docker Hub answers 401 for a repository that does not exist: to the
    // client that is an unknown name, not our failure.
    if (e.status === 401 || e.status === 403) return err('NAME_UNKNOWN', `${e.message}: the repository does not exist upstream, or the proxy's credentials do not let it pull`, undefined, 404);
    return err('UNAVAILABLE', e.message, undefined, 502);
  }
  return err('UNAVAILABLE', `the upstream failed: ${(e as Error)?.message ?? String(e)}`, undefined, 502);
}

/** The label of an upstream failure for metrics: timeout, unreachable, or the status class. */
export function kindOf(e: unknown): string {
  if (e instanceof UpstreamError) {
    if (e.kind !== 'status') return e.kind;
    return e.status === 429 ? '429' : e.status === 401 || e.status === 403 ? 'denied' : `${Math.floor(e.status / 100)}xx`;
  }
  return 'other';
}
