// "Did you mean ...?" for unknown configuration keys: the nearest sibling by
// edit distance, else the nearest key anywhere in the schema, else a few
// words operators use for the listen address.
import type { Schema } from './schema.js';

const SYNONYMS: Record<string, string> = { port: 'http.addr', listen: 'http.addr', address: 'http.addr', bind: 'http.addr', service: 'http.addr' };

/** Edit distance with adjacent transpositions counted as one edit (levle -> level). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Length of the longest common subsequence (addr is most of adress). */
function lcs(a: string, b: string): number {
  const prev = Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    let diag = 0;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = a[i - 1] === b[j - 1] ? diag + 1 : Math.max(prev[j], prev[j - 1]);
      diag = up;
    }
  }
  return prev[b.length];
}

/** Among siblings, an abbreviation or a misspelling of one counts too. */
const nearSibling = (a: string, b: string) => near(a, b)
  || (Math.min(a.length, b.length) >= 0.6 * Math.max(a.length, b.length) && lcs(a.toLowerCase(), b.toLowerCase()) >= Math.max(3, 0.75 * Math.min(a.length, b.length)));

const near = (a: string, b: string) => distance(a.toLowerCase(), b.toLowerCase()) <= (a.length <= 3 ? 1 : a.length <= 5 ? 2 : 3);

const pathCache = new WeakMap<Schema, string[]>();
function allPaths(root: Schema): string[] {
  let out = pathCache.get(root);
  if (out) return out;
  out = [];
  const walk = (s: Schema | undefined, prefix: string) => {
    if (!s) return;
    if (s.kind === 'ignored') { walk(s.schema, prefix); return; }
    if (s.kind === 'list') { walk(s.item, prefix); return; }
    if (s.kind !== 'object') return;
    for (const [k, c] of Object.entries(s.fields)) {
      const p = prefix ? `${prefix}.${k}` : k;
      out!.push(p);
      walk(c, p);
    }
  };
  walk(root, '');
  pathCache.set(root, out);
  return out;
}

/** The full dotted key the operator probably meant, or undefined. */
export function suggest(key: string, parent: string, siblings: string[], root: Schema): string | undefined {
  const join = (k: string) => (parent ? `${parent}.${k}` : k);
  const folded = siblings.find((s) => s.toLowerCase() === key.toLowerCase());
  if (folded) return join(folded);
  const synonym = parent === '' ? SYNONYMS[key.toLowerCase()] : undefined;
  if (synonym) return synonym;
  const sib = siblings.filter((s) => nearSibling(key, s)).sort((a, b) => distance(key, a) - distance(key, b))[0];
  if (sib) return join(sib);
  const anywhere = allPaths(root)
    .filter((p) => near(key, p.slice(p.lastIndexOf('.') + 1)))
    .sort((a, b) => distance(key, a.slice(a.lastIndexOf('.') + 1)) - distance(key, b.slice(b.lastIndexOf('.') + 1)) || a.length - b.length)[0];
  return anywhere;
}
