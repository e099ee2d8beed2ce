// Tracing and logs, on a `registry serve` process: an OTLP/HTTP receiver the
// test runs gets one trace for a blob upload, the request's server span (a
// child of the caller's traceparent) with its storage spans below it; log
// records carry the trace and span ids, X-Request-Id is honoured or made,
// records have logrus's json shape with log.fields, and the access log is
// Apache's combined format on stdout.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type ChildRegistry, spawnRegistry, tempDir } from '../helpers/registry.js';
import { req } from '../helpers/http.js';
import { sha256 } from '../helpers/ociLayout.js';

interface OtlpSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: { key: string; value: { stringValue?: string; intValue?: string | number } }[] }

/** OTLP/JSON ids are hex; some encoders send base64: read both. */
const hex = (id: string | undefined) => (!id ? '' : /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex'));

describe('tracing (OpenTelemetry) and logs', function () {
  this.timeout(60000);
  let dir: string;
  let receiver: http.Server;
  const spans: OtlpSpan[] = [];
  let reg: ChildRegistry;

  before(async () => {
    dir = await tempDir('tracing-');
    receiver = http.createServer((q, s) => {
      const parts: Buffer[] = [];
      q.on('data', (c) => parts.push(c));
      q.on('end', () => {
        if (q.url === '/v1/traces') {
          const body = JSON.parse(Buffer.concat(parts).toString()) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
          for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) for (const sp of ss.spans) spans.push({ ...sp, traceId: hex(sp.traceId), spanId: hex(sp.spanId), parentSpanId: hex(sp.parentSpanId) });
        }
        s.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((ok) => receiver.listen(0, '127.0.0.1', ok));
    const cfg = join(dir, 'config.yml');
    await writeFile(cfg, `version: 0.1\nlog:\n  level: info\n  formatter: json\n  fields:\n    service: registry\n    environment: test\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'store')}\nhttp:\n  secret: s\n`);
    reg = await spawnRegistry(cfg, {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_SERVICE_NAME: 'registry-under-test',
    });
  });
  after(async () => {
    await reg?.stop();
    await new Promise((ok) => (receiver ? receiver.close(ok) : ok(null)));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sends one trace for a blob upload: the server span under the caller\'s, storage spans under it', async () => {
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const data = randomBytes(5000);
    const res = await req(reg.url, 'POST', `/v2/traced/app/blobs/uploads/?digest=${sha256(data)}`, data, { traceparent: `00-${traceId}-${callerSpan}-01` });
    expect(res.status).to.equal(201);
    const end = Date.now() + 20000;
    let mine: OtlpSpan[] = [];
    while (Date.now() < end) {
      mine = spans.filter((s) => s.traceId === traceId);
      if (mine.some((s) => s.name.startsWith('storage ')) && mine.some((s) => s.parentSpanId === callerSpan)) break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    const server = mine.find((s) => s.parentSpanId === callerSpan);
    expect(server, JSON.stringify(mine.map((s) => s.name))).to.not.equal(undefined);
    expect(server!.name).to.equal('POST /v2/{name}/blobs/uploads/');
    const attr = (s: OtlpSpan, k: string) => s.attributes?.find((a) => a.key === k)?.value;
    expect(Number(attr(server!, 'http.response.status_code')?.intValue)).to.equal(201);
    expect(attr(server!, 'registry.repository')?.stringValue).to.equal('traced/app');
    const storage = mine.filter((s) => s.name.startsWith('storage '));
    expect(storage.length).to.be.at.least(3);
    // Every storage span hangs below the server span (directly or through another span of the trace).
    const byId = new Map(mine.map((s) => [s.spanId, s]));
    for (const s of storage) {
      let p = s.parentSpanId;
      while (p && p !== server!.spanId) p = byId.get(p)?.parentSpanId;
      expect(p, `${s.name} is not under the request's span`).to.equal(server!.spanId);
    }
    expect(storage.map((s) => s.name)).to.include.members(['storage PutContent', 'storage Writer']);
    // The request's log record carries the trace.
    const line = reg.output().split('\n').find((l) => l.includes('"response completed"') && l.includes(traceId));
    expect(line, 'a response record with the trace id').to.be.a('string');
    expect(JSON.parse(line!)).to.include({ trace_id: traceId, span_id: server!.spanId });
  });

  it('writes logrus-shaped JSON records with log.fields, honours or makes X-Request-Id, and writes the combined access log on stdout', async () => {
    const given = await req(reg.url, 'GET', '/v2/', undefined, { 'X-Request-Id': 'my-request-42', 'User-Agent': 'probe/1.0' });
    expect(given.headers.get('x-request-id')).to.equal('my-request-42');
    const made = await req(reg.url, 'GET', '/v2/nothing/here/tags/list');
    const madeId = made.headers.get('x-request-id')!;
    expect(madeId).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await new Promise((ok) => setTimeout(ok, 200));
    const records = reg.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const rec = records.find((x) => x['http.request.id'] === 'my-request-42');
    expect(rec).to.include({
      level: 'info', msg: 'response completed', service: 'registry', environment: 'test',
      'http.request.method': 'GET', 'http.request.uri': '/v2/', 'http.request.useragent': 'probe/1.0',
      'http.response.status': 200, 'http.response.written': 2,
    });
    expect(String(rec!.time)).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(String(rec!['http.response.duration'])).to.match(/^[\d.]+(µs|ms|s)$/);
    expect(records.find((x) => x['http.request.id'] === madeId)).to.include({ 'http.response.status': 404 });
    // Apache combined, on stdout: host ident user [time] "request" status bytes "referer" "agent".
    expect(reg.stdout()).to.match(/^127\.0\.0\.1 - - \[\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/v2\/ HTTP\/1\.1" 200 2 "" "probe\/1\.0"$/m);
  });
});
