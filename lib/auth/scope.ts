// The access a request needs, from its route and method, as distribution
// asks for it: reads need pull, uploads and manifest pushes pull+push,
// deletes delete, the catalog registry:catalog:*.
import type { Access } from './access.js';

export function neededAccess(method: string, route: 'base' | 'catalog' | 'tags' | 'manifest' | 'upload' | 'blob' | 'referrers', name?: string): Access[] {
  const repo = (action: string): Access => ({ type: 'repository', name: name!, action });
  switch (route) {
    case 'base': return [];
    case 'catalog': return [{ type: 'registry', name: 'catalog', action: '*' }];
    case 'tags': case 'referrers': return [repo('pull')];
    case 'upload': return [repo('pull'), repo('push')];
    case 'manifest':
    case 'blob':
      if (method === 'GET' || method === 'HEAD') return [repo('pull')];
      if (method === 'DELETE') return [repo('delete')];
      return [repo('pull'), repo('push')];
  }
}
