// WWW-Authenticate challenges (RFC 9110 §11.6.1) as registries send them:
// `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`.

export interface Challenge { scheme: string; params: Record<string, string> }

/** Every challenge in a header value; parameters' names lower-cased. */
export function parseChallenges(header: string | null | undefined): Challenge[] {
  const out: Challenge[] = [];
  if (!header) return out;
  const s = header;
  let i = 0;
  const skip = () => { while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++; };
  const token = () => { const st = i; while (i < s.length && !' \t,="'.includes(s[i])) i++; return s.slice(st, i); };
  while (i < s.length) {
    skip();
    const scheme = token();
    if (!scheme) break;
    const c: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(c);
    for (;;) {
      skip();
      const save = i;
      const name = token();
      while (s[i] === ' ') i++;
      if (!name || s[i] !== '=') { i = save; break; }
      i++;
      while (s[i] === ' ') i++;
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') { if (s[i] === '\\' && i + 1 < s.length) i++; value += s[i++]; }
        i++;
      } else {
        value = token();
      }
      c.params[name.toLowerCase()] = value;
    }
  }
  return out;
}
