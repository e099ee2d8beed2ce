// Runs the Cloud Storage emulator from firebase-tools for the tests. It serves
// the GCS JSON API that @google-cloud/storage speaks. Started here without its
// security-rules runtime (a Java process): the registry's requests are admin
// requests, which the emulator never checks against rules.
// Two fixes: it routes copies (rewriteTo/copyTo) only without the
// /storage/v1 prefix that the SDK sends, so we strip the prefix for them; and
// it ignores ifGenerationMatch=0 on inserts, which we enforce (412).
// One addition: the JSON API's batch endpoint (/batch/storage/v1), which the
// emulator lacks (501). Each part of the multipart/mixed request is sent to
// the emulator as its own request and its answer becomes a part of ours, as
// Google documents it (docs: "Sending batch requests"): Content-ID
// `<response-ID>` for the request part's `<ID>`, in order. GCS_EMULATOR_BATCH=0
// leaves it out, as on an endpoint without batches.
// Usage: node gcs-emulator.cjs PORT
'use strict';
const { StorageEmulator } = require('firebase-tools/lib/emulator/storage');
const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry');

class RulelessStorageEmulator extends StorageEmulator {
  async start() {
    const { host, port } = this.getInfo();
    const { createApp } = require('firebase-tools/lib/emulator/storage/server');
    this._app = await createApp(this.args.projectId, this);
    const copy = /^\/storage\/v1(\/b\/[^/]+\/o\/[^/]+\/(rewriteTo|copyTo)\/)/;
    const http = require('node:http');
    // The emulator's own server on an inner port; ours in front forwards to it.
    const inner = http.createServer(this._app);
    await new Promise((resolve) => inner.listen(0, '127.0.0.1', resolve));
    const agent = new http.Agent({ keepAlive: true });
    const forward = (req, res, body) => {
      const up = http.request({ host: '127.0.0.1', port: inner.address().port, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      if (body) up.end(body); else req.pipe(up);
    };
    const one = (method, path, headers, body) => new Promise((resolve) => {
      const up = http.request({ host: '127.0.0.1', port: inner.address().port, method, path: path.replace(copy, '$1'), headers, agent }, (ur) => {
        const chunks = [];
        ur.on('data', (c) => chunks.push(c));
        ur.on('end', () => resolve({ status: ur.statusCode, message: ur.statusMessage, headers: ur.headers, body: Buffer.concat(chunks) }));
      });
      up.on('error', (e) => resolve({ status: 502, message: 'Bad Gateway', headers: {}, body: Buffer.from(String(e)) }));
      up.end(body);
    });
    const batch = (req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', async () => {
        const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(String(req.headers['content-type'] ?? ''));
        if (!m) { res.writeHead(400).end('no boundary'); return; }
        const parts = Buffer.concat(chunks).toString('utf8').split(`--${m[1] ?? m[2]}`).slice(1).filter((p) => !p.startsWith('--'));
        if (parts.length > 100) { res.writeHead(400).end('too many calls'); return; }
        const out = `batch_${Date.now().toString(36)}`;
        let answer = '';
        for (const raw of parts) {
          const text = raw.replace(/^\r?\n/, '');
          const sep = /\r?\n\r?\n/.exec(text);
          if (!sep) continue;
          const partHeaders = text.slice(0, sep.index);
          const request = text.slice(sep.index + sep[0].length);
          const [head, ...rest] = request.split(/\r?\n\r?\n/);
          const [line, ...headerLines] = head.split(/\r?\n/);
          const [method, path] = line.split(' ');
          const headers = Object.fromEntries(headerLines.filter(Boolean).map((h) => [h.slice(0, h.indexOf(':')).trim(), h.slice(h.indexOf(':') + 1).trim()]));
          const r = await one(method, path, headers, rest.join('\r\n\r\n').replace(/\r?\n$/, ''));
          const id = /^content-id:\s*<([^>]*)>/im.exec(partHeaders);
          answer += `--${out}\r\nContent-Type: application/http\r\n${id ? `Content-ID: <response-${id[1]}>\r\n` : ''}\r\n` +
            `HTTP/1.1 ${r.status} ${r.message}\r\nContent-Type: ${r.headers['content-type'] ?? 'application/json'}\r\nContent-Length: ${r.body.length}\r\n\r\n${r.body.toString('utf8')}\r\n`;
        }
        res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${out}` }).end(`${answer}--${out}--\r\n`);
      });
    };
    const server = http.createServer((req, res) => {
      if (req.method === 'POST' && req.url.split('?')[0] === '/batch/storage/v1' && process.env.GCS_EMULATOR_BATCH !== '0') {
        batch(req, res);
        return;
      }
      req.url = req.url.replace(copy, '$1');
      // Real GCS refuses an insert with ifGenerationMatch=0 when the object
      // exists (412); the emulator ignores preconditions. The object's name
      // is in the query, or in the JSON metadata part of the multipart body.
      if (req.method === 'POST' && req.url.startsWith('/upload/') && /[?&]ifGenerationMatch=0(&|$)/.test(req.url)) {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks);
          const url = new URL(req.url, 'http://x');
          const bucket = decodeURIComponent(/\/b\/([^/]+)\/o/.exec(url.pathname)[1]);
          const m = /"name"\s*:\s*("(?:[^"\\]|\\.)*")/.exec(body.subarray(0, 4096).toString('latin1'));
          const name = url.searchParams.get('name') ?? (m ? JSON.parse(m[1]) : null);
          if (name !== null && this.adminStorageLayer.getMetadata(bucket, name)) {
            res.writeHead(412, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify({ error: { code: 412, message: 'At least one of the pre-conditions you specified did not hold.', errors: [{ reason: 'conditionNotMet' }] } }));
            return;
          }
          forward(req, res, body);
        });
        return;
      }
      forward(req, res, null);
    });
    await new Promise((resolve, reject) => {
      server.listen(port, host, resolve);
      server.on('error', reject);
    });
  }
}

const port = Number(process.argv[2]);
const emulator = new RulelessStorageEmulator({ projectId: 'test-project', host: '127.0.0.1', port, rules: [] , auto_download: false });
// Upload session URLs are built from the registry of running emulators.
EmulatorRegistry.start(emulator).catch((e) => { console.error(e); process.exit(1); });
