// One attempt to deliver one event to an endpoint, as distribution's
// httpSink: a POST with the endpoint's headers, within its timeout; any 2xx
// or 3xx answer accepts it. The body is distribution's envelope, or with
// `format: cloudevents` a CloudEvents 1.0 structured-mode event.
import * as http from 'node:http';
import * as https from 'node:https';
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

/** node:http with one kept-alive connection per endpoint: delivery shares the
 *  CPU with the requests it reports on, and fetch costs several times more per POST. */
export class HttpSink {
  private url: URL;
  private agent: http.Agent;
  private headers: Record<string, string | string[]> = {};

  constructor(private endpoint: NotificationEndpoint) {
    this.url = new URL(endpoint.url);
    this.agent = this.url.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 1 }) : new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (const [k, vs] of Object.entries(endpoint.headers)) this.headers[k] = ([] as string[]).concat(vs);
  }

  send(body: string): Promise<Attempt> {
    const ep = this.endpoint;
    let payload: string;
    const headers: Record<string, string | string[]> = {};
    if (ep.format === 'cloudevents') {
      const ce = toCloudEvent(JSON.parse(body) as RegistryEvent);
      payload = ce.body;
      Object.assign(headers, ce.headers);
    } else {
      payload = envelope([JSON.parse(body) as RegistryEvent]);
      headers['Content-Type'] = EVENTS_MEDIA_TYPE;
    }
    Object.assign(headers, this.headers);
    const bytes = Buffer.from(payload);
    headers['Content-Length'] = String(bytes.length);
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      let done = false;
      const finish = (a: Attempt) => { if (!done) { done = true; clearTimeout(timer); resolve(a); } };
      const req = mod.request(this.url, { method: 'POST', headers, agent: this.agent }, (res) => {
        // The answer's body is not needed; reading it frees the connection.
        res.resume();
        res.on('end', () => {
          const s = res.statusCode ?? 0;
          finish(s >= 200 && s < 400 ? { ok: true, status: s } : { ok: false, status: s, error: `response status ${s} unaccepted` });
        });
        res.on('error', (e) => finish({ ok: false, error: e.message }));
      });
      const timer = setTimeout(() => { req.destroy(); finish({ ok: false, error: `no answer within ${ep.timeoutMs} ms` }); }, ep.timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code ?? e.message }));
      req.end(bytes);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
