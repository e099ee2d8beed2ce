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

/** A server certificate, a CA with a client certificate it signed, and a stranger's self-signed one, in dir. */
function makeCertificates(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.pem', '-days', '1', '-subj', '/CN=127.0.0.1');
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test-ca');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=client');
  ssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '1');
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'stranger.key', '-out', 'stranger.pem', '-days', '1', '-subj', '/CN=stranger');
}

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
    try {
      makeCertificates(dir);
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

  it('honours ciphersuites, minimumtls tls1.0 and every clientauth mode', async function () {
    if (!requireTool(this, 'openssl')) return;
    const dir = await tempDir('registry-tlsopts-');
    const { readFileSync } = await import('node:fs');
    const tls = await import('node:tls');
    const f = (n: string) => join(dir, n);
    try {
      makeCertificates(dir);
      const start = async (extra: string) => startRegistry(parseConfig(`version: 0.1\nstorage: inmemory\nhttp:\n  addr: 127.0.0.1:0\n  secret: s\n  tls:\n    certificate: ${f('server.pem')}\n    key: ${f('server.key')}\n${extra}`, {}), pino({ level: 'silent' }));
      /** The protocol and cipher a handshake ends with, or the error; then a GET /v2/ over it. */
      const shake = (url: string, opts: import('node:tls').ConnectionOptions) => new Promise<string>((resolve) => {
        const u = new URL(url);
        const s = tls.connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false, ...opts }, () => {
          const got = `${s.getProtocol()} ${s.getCipher().name}`;
          s.write(`GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
          let body = '';
          s.on('data', (d) => { body += d; });
          s.on('end', () => resolve(body.startsWith('HTTP/1.1 200') ? got : `refused after handshake: ${body.slice(0, 40)}`));
          s.on('close', () => resolve(body.startsWith('HTTP/1.1 200') ? got : 'closed'));
        });
        s.on('error', (e) => resolve(`error ${e.message.slice(0, 60)}`));
      });
      // Cipher suites: only the listed one is offered for TLS 1.2.
      let r = await start('    ciphersuites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n');
      try {
        expect(await shake(r.url, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' })).to.equal('TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384');
        expect(await shake(r.url, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })).to.match(/^error/);
      } finally { await r.close(); }
      // minimumtls tls1.0 works (OpenSSL 3 needs security level 0 for it); the default refuses it.
      r = await start('    minimumtls: tls1.0\n    ciphersuites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n');
      try {
        expect(await shake(r.url, { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' })).to.equal('TLSv1 ECDHE-RSA-AES128-SHA');
      } finally { await r.close(); }
      r = await start('');
      try {
        expect(await shake(r.url, { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' })).to.match(/^error/);
      } finally { await r.close(); }
      // clientauth, distribution 3's four modes.
      const good = { cert: readFileSync(f('client.pem')), key: readFileSync(f('client.key')) };
      const stranger = { cert: readFileSync(f('stranger.pem')), key: readFileSync(f('stranger.key')) };
      const served = (x: string) => /^TLSv1\.3 /.test(x);
      for (const [mode, none, other, ok] of [
        ['request-client-cert', true, true, true],
        ['require-any-client-cert', false, true, true],
        ['verify-client-cert-if-given', true, false, true],
        ['require-and-verify-client-cert', false, false, true],
      ] as const) {
        r = await start(`    clientcas: [${f('ca.pem')}]\n    clientauth: ${mode}\n`);
        try {
          expect(served(await shake(r.url, {})), `${mode}, no certificate`).to.equal(none);
          expect(served(await shake(r.url, stranger)), `${mode}, another CA's certificate`).to.equal(other);
          expect(served(await shake(r.url, good)), `${mode}, a good certificate`).to.equal(ok);
        } finally { await r.close(); }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
