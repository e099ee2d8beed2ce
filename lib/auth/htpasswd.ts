// auth.htpasswd: Basic authentication against an Apache htpasswd file with
// bcrypt entries (htpasswd -B). The file is re-read when it changes (checked
// at most every 5 s). bcrypt costs ~0.1 s a check, so successful checks are
// remembered for a minute, keyed by a hash of user and password (bounded).
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import type { Request } from 'express';
import { LRUCache } from 'lru-cache';
import type { Access, AccessController, AuthResult } from './access.js';

const RECHECK_MS = 5000;

export function parseHtpasswd(text: string, path: string): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((line, i) => {
    const l = line.trim();
    if (!l || l.startsWith('#')) return;
    const colon = l.indexOf(':');
    if (colon <= 0) throw new Error(`${path}:${i + 1}: not "user:hash"`);
    const hash = l.slice(colon + 1);
    if (!/^\$2[aby]\$\d\d\$/.test(hash)) throw new Error(`${path}:${i + 1}: only bcrypt entries are supported (htpasswd -B)`);
    users.set(l.slice(0, colon), hash);
  });
  return users;
}

export class HtpasswdController implements AccessController {
  private users: Map<string, string>;
  private mtime: number;
  private checkedAt = 0;
  private readonly ok = new LRUCache<string, true>({ max: 10_000, ttl: 60_000 });

  constructor(private readonly realm: string, private readonly path: string) {
    this.users = parseHtpasswd(readFileSync(path, 'utf8'), path);
    this.mtime = statSync(path).mtimeMs;
  }

  private reload(): void {
    const now = Date.now();
    if (now - this.checkedAt < RECHECK_MS) return;
    this.checkedAt = now;
    try {
      const m = statSync(this.path).mtimeMs;
      if (m === this.mtime) return;
      this.users = parseHtpasswd(readFileSync(this.path, 'utf8'), this.path);
      this.mtime = m;
      this.ok.clear();
    } catch { /* keep the users we have: a file being rewritten is read next time */ }
  }

  async authorize(req: Request, _needed: Access[]): Promise<AuthResult> {
    const challenge = `Basic realm="${this.realm.replace(/"/g, '')}"`;
    const h = req.headers.authorization;
    if (!h || !/^basic /i.test(h)) return { challenge, error: 'authentication required' };
    const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { challenge, error: 'malformed Basic credentials' };
    const user = decoded.slice(0, colon);
    const pass = decoded.slice(colon + 1);
    this.reload();
    const hash = this.users.get(user);
    const key = createHash('sha256').update(`${user}\0${pass}\0${hash ?? ''}`).digest('hex');
    if (hash && (this.ok.has(key) || await bcrypt.compare(pass, hash))) {
      this.ok.set(key, true);
      return { grant: { subject: user, allows: () => true } };
    }
    return { challenge, error: 'invalid username or password' };
  }
}
