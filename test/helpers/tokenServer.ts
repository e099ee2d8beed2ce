// A token server for tests, in the shape of distribution's token auth: Basic
// credentials in, a signed JWT out, granting what its policy allows of the
// requested scopes. Its key and certificate are made with openssl; the
// certificate is the registry's rootcertbundle.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { SignJWT, exportJWK } from 'jose';
import { libtrustKeyID } from '../../lib/auth/token.js';

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  jwksFile: string;
  /** Tokens issued so far. */
  issued: number;
  sign(access: { type: string; name: string; actions: string[] }[], opts?: { aud?: string; iss?: string; expiresIn?: number; notBefore?: number; key?: 'other'; header?: 'kid' | 'x5c' | 'jwks' }): Promise<string>;
  stop(): Promise<void>;
}

function keyPair(dir: string, name: string): { key: KeyObject; certPem: string; certDer: Buffer } {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`),
    '-days', '1', '-subj', `/CN=${name}`], { stdio: 'ignore' });
  const certPem = readFileSync(join(dir, `${name}.pem`), 'utf8');
  const certDer = Buffer.from(certPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return { key: createPrivateKey(readFileSync(join(dir, `${name}.key`))), certPem, certDer };
}

/** policy(user, type, name, requested actions) -> granted actions. */
export async function startTokenServer(dir: string, policy: (user: string, type: string, name: string, actions: string[]) => string[], names: { service?: string; issuer?: string } = {}): Promise<TokenServer> {
  const signer = keyPair(dir, 'token-signer');
  const other = keyPair(dir, 'other-signer');
  const service = names.service ?? 'test-registry';
  const issuer = names.issuer ?? 'test-token-issuer';
  const jwksFile = join(dir, 'jwks.json');
  const jwk = await exportJWK(createPublicKey(signer.key));
  const { writeFileSync } = await import('node:fs');
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...jwk, kid: 'jwks-key', alg: 'RS256', use: 'sig' }] }));

  const ts: TokenServer = {
    realm: '', service, issuer, certFile: join(dir, 'token-signer.pem'), jwksFile, issued: 0,
    async sign(access, opts = {}) {
      const k = opts.key === 'other' ? other : signer;
      const header: Record<string, unknown> = { alg: 'RS256', typ: 'JWT' };
      if ((opts.header ?? 'kid') === 'kid') header.kid = libtrustKeyID(createPublicKey(k.key));
      if (opts.header === 'x5c') header.x5c = [k.certDer.toString('base64')];
      if (opts.header === 'jwks') header.kid = 'jwks-key';
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ access })
        .setProtectedHeader(header as never)
        .setIssuer(opts.iss ?? issuer)
        .setAudience(opts.aud ?? service)
        .setSubject('alice')
        .setIssuedAt(now)
        .setNotBefore(opts.notBefore ?? now - 5)
        .setExpirationTime(now + (opts.expiresIn ?? 300))
        .setJti(String(Math.random()))
        .sign(k.key);
    },
    stop: () => new Promise((r) => server.close(() => r())),
  };

  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url!, 'http://x');
    const auth = req.headers.authorization ?? '';
    const [user, pass] = Buffer.from(auth.replace(/^Basic /i, ''), 'base64').toString().split(':');
    if (u.pathname !== '/token' || u.searchParams.get('service') !== service) { res.writeHead(400).end(); return; }
    if (!(user === 'alice' && pass === 'secret')) { res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="tokens"' }).end(); return; }
    const access = u.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean).map((s) => {
      const [type, ...rest] = s.split(':');
      const actions = rest.pop()!.split(',');
      const name = rest.join(':');
      return { type, name, actions: policy(user, type, name, actions) };
    }).filter((a) => a.actions.length);
    const token = await ts.sign(access);
    ts.issued++;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ts.realm = `http://127.0.0.1:${(server.address() as { port: number }).port}/token`;
  return ts;
}
