// auth.htpasswd: Basic authentication against an Apache htpasswd file with
// bcrypt entries (htpasswd -B). The file is re-read when it changes (checked
// at most every 5 s). bcrypt costs ~0.1 s a check, so successful checks are
// remembered for a minute, keyed by a hash of user and password (bounded).
// As distribution: a missing file is created with the user "docker" and a
// generated password, logged once; a file that cannot be read is logged as an
// error and every request is refused (401) until it can be.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
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

/** Creates a missing htpasswd file with user "docker" and a random password; returns the password, or null if the file exists. */
export function provisionHtpasswd(path: string): string | null {
  try { statSync(path); return null; } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return null; }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const password = randomBytes(32).toString('base64url');
  writeFileSync(path, `docker:${bcrypt.hashSync(password, 10)}\n`, { mode: 0o600, flag: 'wx' });
  return password;
}

export class HtpasswdController implements AccessController {
  /** null while the file cannot be read: every request is refused. */
  private users: Map<string, string> | null = null;
  private mtime = -1;
  private checkedAt = 0;
  private readonly ok = new LRUCache<string, true>({ max: 10_000, ttl: 60_000 });
  private lastError = '';

  constructor(private readonly realm: string, private readonly path: string, private readonly log?: Logger) {
    const password = provisionHtpasswd(path);
    if (password !== null) {
      // Once, at creation, as distribution: the operator reads it from the log.
      log?.warn({ user: 'docker', password, path }, 'htpasswd file was missing: created it with a generated user and password');
    }
    this.load(true);
  }

  /** Reads the file if it changed; on failure keeps the users it had, or refuses all if it never read one. */
  private load(first = false): void {
    try {
      const m = statSync(this.path).mtimeMs;
      if (m === this.mtime && this.users) return;
      this.users = parseHtpasswd(readFileSync(this.path, 'utf8'), this.path);
      this.mtime = m;
      this.ok.clear();
      this.lastError = '';
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== this.lastError) {
        this.lastError = msg;
        this.log?.error({ path: this.path, err: msg }, this.users ? 'htpasswd file cannot be read: keeping the users read before' : 'htpasswd file cannot be read: every request is refused (401) until it can be');
      }
      if (first) this.users = null;
    }
  }

  private reload(): void {
    const now = Date.now();
    if (now - this.checkedAt < RECHECK_MS) return;
    this.checkedAt = now;
    this.load();
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
    if (!this.users) return { challenge, error: 'authentication is unavailable: the htpasswd file cannot be read (see the registry log)' };
    const hash = this.users.get(user);
    const key = createHash('sha256').update(`${user}\0${pass}\0${hash ?? ''}`).digest('hex');
    if (hash && (this.ok.has(key) || await bcrypt.compare(pass, hash))) {
      this.ok.set(key, true);
      return { grant: { subject: user, allows: () => true } };
    }
    return { challenge, error: 'invalid username or password' };
  }
}
