// Repository names and tags, with the OCI distribution-spec grammar.
import { err } from './errors.js';

// path-component ("/" path-component)*, each [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
// distribution limits the full name to 255 characters (reference.NameTotalLengthMax).
export const NAME_MAX = 255;

export function validName(name: string): boolean {
  return name.length > 0 && name.length <= NAME_MAX && NAME_RE.test(name);
}

export function validTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function mustName(name: string): string {
  if (!validName(name)) throw err('NAME_INVALID', `invalid repository name: ${name.slice(0, 300)}`, { name: name.slice(0, 300) });
  return name;
}
