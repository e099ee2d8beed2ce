// HTTP listeners: addresses as distribution writes them, and TLS as http.tls
// (and http.debug.tls) configure it.
import { readFileSync } from 'node:fs';
import type * as https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { TLSConfig } from './config/config.js';
import { ConfigError } from './config/schema.js';
import { nodeVersion } from './config/tls.js';

export function parseAddr(addr: string): { host?: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new ConfigError('http.addr', `must be host:port or :port, got ${addr}`);
  const host = m[1] ?? m[2];
  return { host: host || undefined, port: Number(m[3]) };
}

/** https.ServerOptions for http.tls: certificate, client CAs and clientauth, versions, cipher suites. */
export function tlsOptions(t: TLSConfig, key = 'http.tls'): https.ServerOptions {
  const read = (f: string, what: string) => {
    try { return readFileSync(f); } catch (e) { throw new ConfigError(`${key}.${what}`, `cannot read ${f}: ${(e as Error).message}`); }
  };
  const opts: https.ServerOptions = {
    cert: read(t.certificate, 'certificate'),
    key: read(t.key, 'key'),
    minVersion: nodeVersion(t.minimumtls),
    ciphers: t.ciphers,
    honorCipherOrder: true,
  };
  if (t.clientcas.length) {
    opts.ca = t.clientcas.map((f) => read(f, 'clientcas'));
    opts.requestCert = true;
    // Only require-and-verify is enforced by OpenSSL itself; the rest are checked per connection.
    opts.rejectUnauthorized = t.clientauth === 'require-and-verify-client-cert';
  }
  return opts;
}

/** distribution 3's clientauth modes OpenSSL cannot express alone. */
export function enforceClientAuth(server: https.Server, mode: TLSConfig['clientauth'], log: Logger): void {
  if (mode === 'require-and-verify-client-cert' || mode === 'request-client-cert') return;
  server.on('secureConnection', (sock: TLSSocket) => {
    const cert = sock.getPeerCertificate();
    const has = cert && Object.keys(cert).length > 0;
    const refuse = mode === 'require-any-client-cert' ? !has : has && !sock.authorized;
    if (refuse) {
      log.info({ remote: sock.remoteAddress, mode, reason: sock.authorizationError }, 'TLS client certificate refused');
      sock.destroy();
    }
  });
}

