// auth.token: distribution's bearer-token scheme. Clients get a JWT from the
// token server at `realm` for `service` and a scope; we verify its signature
// (a key from rootcertbundle, found by the token's x5c chain or its kid, or a
// key from the jwks file), issuer, audience (= service), expiry and
// not-before, then check its `access` claim covers what the request needs.
import { X509Certificate, createHash, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Request } from 'express';
import { type JWTPayload, type JWTVerifyGetKey, type ProtectedHeaderParameters, createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import type { Access, AccessController, AuthResult } from './access.js';
import { scopeString } from './access.js';

export interface TokenParams {
  realm: string;
  service: string;
  issuer: string;
  rootcertbundle?: string;
  jwks?: string;
  /** Accepted clock skew, seconds. */
  leeway?: number;
  /** distribution 3: the realm is https://<request host><autoredirectpath> (X-Forwarded-Proto honoured). */
  autoredirect?: boolean;
  autoredirectpath?: string;
  /** The algorithms a token may be signed with (all of jose's when empty). */
  signingalgorithms?: string[];
}

interface AccessEntry { type?: string; name?: string; actions?: string[] }

/** libtrust's key id, which distribution's token servers put in `kid`: base32 of SHA-256 of the SPKI DER, 240 bits, in groups of 4. */
export function libtrustKeyID(key: KeyObject): string {
  const digest = createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join(':');
}

function splitPEM(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export class TokenController implements AccessController {
  private readonly roots: X509Certificate[];
  private readonly byKid = new Map<string, KeyObject>();
  private readonly jwks?: JWTVerifyGetKey;

  constructor(private readonly p: TokenParams) {
    this.roots = p.rootcertbundle ? splitPEM(readFileSync(p.rootcertbundle, 'utf8')).map((pem) => new X509Certificate(pem)) : [];
    if (p.rootcertbundle && this.roots.length === 0) throw new Error(`auth.token.rootcertbundle: no certificate in ${p.rootcertbundle}`);
    for (const c of this.roots) this.byKid.set(libtrustKeyID(c.publicKey), c.publicKey);
    if (p.jwks) this.jwks = createLocalJWKSet(JSON.parse(readFileSync(p.jwks, 'utf8')));
    if (!this.roots.length && !this.jwks) throw new Error('auth.token needs rootcertbundle or jwks');
  }

  private realm(req: Request): string {
    if (!this.p.autoredirect) return this.p.realm;
    const proto = (req.headers['x-forwarded-proto'] as string | undefined)?.split(',')[0].trim() || 'https';
    const path = this.p.autoredirectpath || '/auth/token/';
    return `${proto}://${req.headers.host ?? 'localhost'}${path.startsWith('/') ? path : `/${path}`}`;
  }

  private challenge(req: Request, needed: Access[], error?: string): string {
    const parts = [`realm="${this.realm(req).replace(/"/g, '')}"`, `service="${this.p.service}"`];
    const scope = scopeString(needed);
    if (scope) parts.push(`scope="${scope}"`);
    if (error) parts.push(`error="${error}"`);
    return `Bearer ${parts.join(',')}`;
  }

  /** The key that signed the token: its x5c leaf (issued by, or one of, the root certificates), its kid, or the JWKS. */
  private keyFor(header: ProtectedHeaderParameters): KeyObject | JWTVerifyGetKey {
    if (header.x5c?.length && this.roots.length) {
      const chain = header.x5c.map((c) => new X509Certificate(Buffer.from(c, 'base64')));
      // Walk up the chain to a root in the bundle.
      for (let i = 0; i < chain.length; i++) {
        const cert = chain[i];
        if (i > 0 && !chain[i - 1].verify(cert.publicKey)) break;
        if (this.roots.some((r) => r.raw.equals(cert.raw) || cert.verify(r.publicKey))) return chain[0].publicKey;
      }
      throw new Error('token certificate chain does not lead to the root certificate bundle');
    }
    if (header.kid && this.byKid.has(header.kid)) return this.byKid.get(header.kid)!;
    if (this.jwks) return this.jwks;
    if (this.roots.length === 1 && !header.kid) return this.roots[0].publicKey;
    throw new Error(`token key ${header.kid ?? '(no kid)'} is not in the root certificate bundle`);
  }

  async authorize(req: Request, needed: Access[]): Promise<AuthResult> {
    const h = req.headers.authorization;
    if (!h || !/^bearer /i.test(h)) return { challenge: this.challenge(req, needed), error: 'authentication required' };
    const token = h.slice(7).trim();
    let payload: JWTPayload & { access?: AccessEntry[] };
    try {
      const header = decodeProtectedHeader(token);
      const key = this.keyFor(header);
      ({ payload } = await jwtVerify(token, key as KeyObject, {
        issuer: this.p.issuer,
        audience: this.p.service,
        clockTolerance: this.p.leeway ?? 60,
        requiredClaims: ['exp'],
        ...(this.p.signingalgorithms?.length ? { algorithms: this.p.signingalgorithms } : {}),
      }));
    } catch (e) {
      return { challenge: this.challenge(req, needed, 'invalid_token'), error: `invalid token: ${(e as Error).message}` };
    }
    const entries = Array.isArray(payload.access) ? payload.access : [];
    const allows = (a: Access) => entries.some((e) => e.type === a.type && e.name === a.name
      && Array.isArray(e.actions) && (e.actions.includes(a.action) || e.actions.includes('*')));
    const missing = needed.filter((a) => !allows(a));
    if (missing.length) {
      return { challenge: this.challenge(req, needed, 'insufficient_scope'), error: `token does not grant ${scopeString(missing)}`, insufficientScope: true };
    }
    return { grant: { subject: String(payload.sub ?? ''), allows } };
  }
}

