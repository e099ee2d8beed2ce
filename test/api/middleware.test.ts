// middleware.storage: distribution's redirect and cloudfront middlewares.
// CloudFront URLs are checked the way CloudFront checks them: the canned
// policy's signature against the key pair's public key.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import * as http from 'node:http';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type TestRegistry, requireTool, startTestRegistry, tempDir } from '../helpers/registry.js';
import { pushBlob, req } from '../helpers/http.js';
import { sha256 } from '../helpers/ociLayout.js';

const dataPath = (d: string) => `/docker/registry/v2/blobs/sha256/${d.slice(7, 9)}/${d.slice(7)}/data`;

describe('middleware.storage: redirect and cloudfront', function () {
  this.timeout(60000);
  let dir: string;
  const data = randomBytes(4096);
  const d = sha256(data);
  before(async () => { dir = await tempDir('middleware-'); });
  after(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

  it('redirect sends blob GETs to baseurl + the storage path; storage.redirect.disable turns it off', async () => {
    const r = await startTestRegistry('middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: https://mirror.example.com/base/\n');
    const off = await startTestRegistry('middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: https://mirror.example.com/\n', { storageYaml: '  inmemory: {}\n  redirect:\n    disable: true\n' });
    try {
      await pushBlob(r.url, 'mw/app', data, d);
      const res = await req(r.url, 'GET', `/v2/mw/app/blobs/${d}`);
      expect(res.status).to.equal(307);
      expect(res.headers.get('location')).to.equal(`https://mirror.example.com/base${dataPath(d)}`);
      expect(res.headers.get('docker-content-digest')).to.equal(d);
      // Unknown blobs are still unknown: no redirect to nothing.
      expect((await req(r.url, 'GET', `/v2/mw/app/blobs/${sha256(Buffer.from('none'))}`)).status).to.equal(404);
      await pushBlob(off.url, 'mw/app', data, d);
      const streamed = await req(off.url, 'GET', `/v2/mw/app/blobs/${d}`);
      expect(streamed.status).to.equal(200);
      expect(streamed.body.equals(data)).to.equal(true);
    } finally {
      await r.stop();
      await off.stop();
    }
  });

  it('cloudfront signs URLs CloudFront accepts, and sends clients inside AWS (ipfilteredby) to the store itself', async function () {
    if (!requireTool(this, 'openssl')) return;
    const key = join(dir, 'cf.pem');
    execFileSync('openssl', ['genrsa', '-out', key, '2048'], { stdio: 'ignore' });
    const pub = createPublicKey(readFileSync(key));
    // AWS's ip-ranges.json, served by the test: loopback is "us-east-1", 10/8 is "eu-west-1".
    let fetched = 0;
    const ranges = http.createServer((_q, s) => {
      fetched++;
      s.setHeader('Content-Type', 'application/json');
      s.end(JSON.stringify({
        prefixes: [{ ip_prefix: '127.0.0.0/8', region: 'us-east-1', service: 'AMAZON' }, { ip_prefix: '10.0.0.0/8', region: 'eu-west-1', service: 'AMAZON' }],
        ipv6_prefixes: [{ ipv6_prefix: '::1/128', region: 'us-east-1', service: 'AMAZON' }],
      }));
    });
    await new Promise<void>((ok) => ranges.listen(0, '127.0.0.1', ok));
    const rangesURL = `http://127.0.0.1:${(ranges.address() as AddressInfo).port}/ip-ranges.json`;
    const cf = (extra: string) => `middleware:\n  storage:\n    - name: cloudfront\n      options:\n        baseurl: https://d111111abcdef8.cloudfront.net/\n        privatekey: ${key}\n        keypairid: KTESTPAIR\n        duration: 600s\n${extra}`;
    const plain = await startTestRegistry(cf(''));
    const regional = await startTestRegistry(cf(`        ipfilteredby: awsregion\n        awsregion: us-east-1\n        iprangesurl: ${rangesURL}\n`));
    try {
      await pushBlob(plain.url, 'cf/app', data, d);
      const res = await req(plain.url, 'GET', `/v2/cf/app/blobs/${d}`);
      expect(res.status).to.equal(307);
      const loc = new URL(res.headers.get('location')!);
      expect(`${loc.origin}${loc.pathname}`).to.equal(`https://d111111abcdef8.cloudfront.net${dataPath(d)}`);
      expect(loc.searchParams.get('Key-Pair-Id')).to.equal('KTESTPAIR');
      const expires = Number(loc.searchParams.get('Expires'));
      expect(expires - Date.now() / 1000).to.be.within(590, 610);
      // CloudFront's canned policy, signed with SHA-1 RSA, in its URL-safe base64.
      const policy = JSON.stringify({ Statement: [{ Resource: `${loc.origin}${loc.pathname}`, Condition: { DateLessThan: { 'AWS:EpochTime': expires } } }] });
      const sig = Buffer.from(loc.searchParams.get('Signature')!.replace(/-/g, '+').replace(/_/g, '=').replace(/~/g, '/'), 'base64');
      expect(verify('sha1', Buffer.from(policy), pub, sig), 'signature verifies against the key pair').to.equal(true);

      await pushBlob(regional.url, 'cf/app', data, d);
      const end = Date.now() + 10000;
      while (fetched === 0 && Date.now() < end) await new Promise((ok) => setTimeout(ok, 50));
      await new Promise((ok) => setTimeout(ok, 100));
      // From us-east-1 (an AWS address in the chosen region): the driver's own answer (the filesystem streams).
      const inside = await req(regional.url, 'GET', `/v2/cf/app/blobs/${d}`, undefined, { 'X-Forwarded-For': '127.0.0.5' });
      expect(inside.status).to.equal(200);
      expect(inside.body.equals(data)).to.equal(true);
      // From eu-west-1 (AWS, but not a chosen region) and from outside AWS: CloudFront.
      for (const ip of ['10.1.2.3', '192.0.2.10']) {
        const outside = await req(regional.url, 'GET', `/v2/cf/app/blobs/${d}`, undefined, { 'X-Forwarded-For': ip });
        expect(outside.status, ip).to.equal(307);
        expect(outside.headers.get('location'), ip).to.match(/^https:\/\/d111111abcdef8\.cloudfront\.net\//);
      }
    } finally {
      await plain.stop();
      await regional.stop();
      await new Promise((ok) => ranges.close(ok));
    }
  });
});
