// One attempt to deliver one event to an endpoint, as distribution's
// httpSink: a POST with the endpoint's headers, within its timeout; any 2xx
// or 3xx answer accepts it. The body is distribution's envelope, or with
// `format: cloudevents` a CloudEvents 1.0 structured-mode event.
import { CloudEvent, HTTP } from 'cloudevents';
import type { NotificationEndpoint } from '../config/config.js';
import { EVENTS_MEDIA_TYPE, type RegistryEvent, envelope } from './event.js';

export type Attempt = { ok: true; status: number } | { ok: false; status?: number; error: string };

/** The CloudEvents type of a registry event: io.distribution.<action> (push, pull, mount, delete), as distribution's actions. */
export const cloudEventType = (action: string) => `io.distribution.${action}`;

/** distribution's event as a CloudEvent: same id and time; source the
 *  repository as the client addressed it (`//<host>/v2/<name>`, a URI
 *  reference without scheme, the same for every event of a repository, deletes
 *  included, which carry no URL); subject the digest (or the tag, for a tag
 *  deletion); data the whole distribution event, so nothing is lost. */
export function toCloudEvent(e: RegistryEvent): { headers: Record<string, string>; body: string } {
  const repo = e.target.repository ?? '';
  const ce = new CloudEvent({
    id: e.id,
    type: cloudEventType(e.action),
    source: `//${e.request.host || e.source.addr || 'registry'}/v2/${repo}`,
    subject: e.target.digest ?? e.target.tag,
    time: e.timestamp,
    datacontenttype: 'application/json',
    data: e,
  }, false);
  const msg = HTTP.structured(ce);
  return { headers: msg.headers as Record<string, string>, body: String(msg.body) };
}

export class HttpSink {
  constructor(private endpoint: NotificationEndpoint) {}

  async send(body: string): Promise<Attempt> {
    const ep = this.endpoint;
    let payload: string;
    const headers = new Headers();
    if (ep.format === 'cloudevents') {
      const ce = toCloudEvent(JSON.parse(body) as RegistryEvent);
      payload = ce.body;
      for (const [k, v] of Object.entries(ce.headers)) headers.set(k, v);
    } else {
      payload = envelope([JSON.parse(body) as RegistryEvent]);
      headers.set('Content-Type', EVENTS_MEDIA_TYPE);
    }
    for (const [k, vs] of Object.entries(ep.headers)) for (const v of ([] as string[]).concat(vs)) headers.append(k, v);
    try {
      const res = await fetch(ep.url, { method: 'POST', headers, body: payload, redirect: 'manual', signal: AbortSignal.timeout(ep.timeoutMs) });
      // The answer's body is not needed; reading it frees the connection.
      await res.arrayBuffer().catch(() => {});
      if (res.status >= 200 && res.status < 400) return { ok: true, status: res.status };
      return { ok: false, status: res.status, error: `response status ${res.status} unaccepted` };
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const why = err.name === 'TimeoutError' ? `no answer within ${ep.timeoutMs} ms` : err.cause?.code ?? err.cause?.message ?? err.message;
      return { ok: false, error: why };
    }
  }
}
