// auth.silly, distribution's development access controller: any request with
// an Authorization header is let in; without one it gets a Bearer challenge
// naming realm, service and scope. For development only, as there.
import type { Request } from 'express';
import { type Access, type AccessController, type AuthResult, scopeString } from './access.js';

export class SillyController implements AccessController {
  constructor(private readonly realm: string, private readonly service: string) {}

  async authorize(req: Request, needed: Access[]): Promise<AuthResult> {
    if (req.headers.authorization) return { grant: { subject: '', allows: () => true } };
    const scope = scopeString(needed);
    return {
      challenge: `Bearer realm="${this.realm.replace(/"/g, '')}",service="${this.service.replace(/"/g, '')}"${scope ? `,scope="${scope}"` : ''}`,
      error: 'authentication required',
    };
  }
}
