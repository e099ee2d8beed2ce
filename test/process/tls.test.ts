// http.tls: the registry serves HTTPS with the configured certificate.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import * as https from 'node:https';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../lib/config/config.js';
import { startRegistry } from '../../lib/server.js';
import { requireTool, tempDir } from '../helpers/registry.js';

describe('http.tls', function () {
  this.timeout(30000);
  it('serves the API over HTTPS with the given certificate and key', async function () {
    if (!requireTool(this, 'openssl')) return;
    const dir = await tempDir('registry-tls-');
    try {
      const cert = join(dir, 'cert.pem');
      const key = join(dir, 'key.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
      const config = parseConfig(`version: 0.1\nstorage: inmemory\nhttp:\n  addr: 127.0.0.1:0\n  secret: s\n  tls:\n    certificate: ${cert}\n    key: ${key}\n`, {});
      const r = await startRegistry(config, pino({ level: 'silent' }));
      try {
        expect(r.url).to.match(/^https:\/\//);
        const { status, peerCert } = await new Promise<{ status: number; peerCert: string }>((resolve, reject) => {
          https.get(`${r.url}/v2/`, { rejectUnauthorized: false }, (res) => {
            res.resume();
            resolve({ status: res.statusCode!, peerCert: (res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject.CN as string });
          }).on('error', reject);
        });
        expect(status).to.equal(200);
        expect(peerCert).to.equal('127.0.0.1');
      } finally {
        await r.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('requires client certificates signed by clientcas (mutual TLS) and honours minimumtls', async function () {
    if (!requireTool(this, 'openssl')) return;
    const dir = await tempDir('registry-mtls-');
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
    try {
      ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.pem', '-days', '1', '-subj', '/CN=127.0.0.1');
      ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test-ca');
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=client');
      ssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '1');
      ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'stranger.key', '-out', 'stranger.pem', '-days', '1', '-subj', '/CN=stranger');
      const f = (n: string) => join(dir, n);
      const config = parseConfig(`version: 0.1\nstorage: inmemory\nhttp:\n  addr: 127.0.0.1:0\n  secret: s\n  tls:\n    certificate: ${f('server.pem')}\n    key: ${f('server.key')}\n    clientcas: [${f('ca.pem')}]\n    minimumtls: tls1.3\n`, {});
      const r = await startRegistry(config, pino({ level: 'silent' }));
      const { readFileSync } = await import('node:fs');
      const get = (opts: https.RequestOptions) => new Promise<number>((resolve, reject) => {
        https.get(`${r.url}/v2/`, { rejectUnauthorized: false, ...opts }, (res) => { res.resume(); resolve(res.statusCode!); }).on('error', reject);
      });
      try {
        expect(await get({ cert: readFileSync(f('client.pem')), key: readFileSync(f('client.key')) })).to.equal(200);
        for (const [why, opts] of [
          ['no client certificate', {}],
          ['a certificate from another CA', { cert: readFileSync(f('stranger.pem')), key: readFileSync(f('stranger.key')) }],
          ['TLS 1.2 only', { cert: readFileSync(f('client.pem')), key: readFileSync(f('client.key')), maxVersion: 'TLSv1.2' as const }],
        ] as const) {
          try {
            await get(opts as https.RequestOptions);
            expect.fail(`served with ${why}`);
          } catch (e) {
            expect((e as Error).message, why).to.not.match(/served with/);
          }
        }
      } finally {
        await r.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
