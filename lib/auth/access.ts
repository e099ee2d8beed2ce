// What a request needs (distribution's access records) and the contract every
// access controller meets: htpasswd, token, or none.
import type { Request } from 'express';

export interface Access {
  type: 'repository' | 'registry';
  name: string;
  action: string; // pull, push, delete, *
}

export interface Grant {
  /** Who: the user or the token's subject. */
  subject: string;
  /** Whether this grant covers an access (tokens carry a list; htpasswd users may do everything). */
  allows(a: Access): boolean;
}

/** Either a grant, or what to answer: a 401 challenge. */
export type AuthResult = { grant: Grant } | { challenge: string; error: string; insufficientScope?: boolean };

export interface AccessController {
  /** Authenticates the request and checks it covers every access. */
  authorize(req: Request, needed: Access[]): Promise<AuthResult>;
}

/** distribution's scope string: repository:name:pull,push */
export function scopeString(needed: Access[]): string {
  const by = new Map<string, Set<string>>();
  for (const a of needed) {
    const k = `${a.type}:${a.name}`;
    if (!by.has(k)) by.set(k, new Set());
    by.get(k)!.add(a.action);
  }
  return [...by.entries()].map(([k, acts]) => `${k}:${[...acts].join(',')}`).join(' ');
}
