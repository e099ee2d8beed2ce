// The configuration as a tree whose leaves keep both the YAML 1.1 value and
// the exact text they were written with. distribution reads its config with
// a YAML 1.1 decoder into typed fields: a string field gets the text as
// written (`secret: 0123` stays "0123"), a bool field takes yes/no/on/off, an
// int field a number. So the type is decided by the field, not by the YAML,
// and the schema (schema.ts) makes that choice.
import YAML, { isMap, isScalar, isSeq, type Node } from 'yaml';
import { ConfigError } from './schema.js';

/** A scalar: what YAML 1.1 makes of it, and its text as written. */
export class Scalar {
  constructor(readonly value: unknown, readonly text: string) {}
}

export type TreeNode = Scalar | TreeNode[] | { [key: string]: TreeNode } | null;
export type TreeMap = { [key: string]: TreeNode };

export const isTreeMap = (n: TreeNode | undefined): n is TreeMap =>
  n !== null && n !== undefined && typeof n === 'object' && !Array.isArray(n) && !(n instanceof Scalar);

function fromNode(n: Node | null | undefined, where: string): TreeNode {
  if (n === null || n === undefined) return null;
  if (isMap(n)) {
    const out: TreeMap = {};
    for (const item of n.items) {
      const k = isScalar(item.key) ? String(item.key.value) : String(item.key);
      out[k] = fromNode(item.value as Node | null, where ? `${where}.${k}` : k);
    }
    return out;
  }
  if (isSeq(n)) return n.items.map((it, i) => fromNode(it as Node | null, `${where}[${i}]`));
  if (isScalar(n)) {
    if (n.value === null) return null;
    const text = typeof n.source === 'string' ? n.source : String(n.value);
    return new Scalar(n.value, text);
  }
  throw new ConfigError(where, 'holds a YAML node this reader does not handle (an alias or tag?)');
}

const PARSE_OPTS = { version: '1.1' as const, uniqueKeys: false, merge: true };

/** Parses a config file into a tree (YAML 1.1, as distribution's reader). */
export function parseTree(text: string): TreeNode {
  const doc = YAML.parseDocument(text, PARSE_OPTS);
  if (doc.errors.length) throw new ConfigError('', `not valid YAML: ${doc.errors[0].message}`);
  return fromNode(doc.contents as Node | null, '');
}

/** An environment value: YAML when it parses as such, else the plain text. */
export function parseEnvValue(raw: string): TreeNode {
  const doc = YAML.parseDocument(raw, PARSE_OPTS);
  if (doc.errors.length) return new Scalar(raw, raw);
  const t = fromNode(doc.contents as Node | null, '');
  // A scalar keeps the variable's exact text (REGISTRY_HTTP_SECRET=0123).
  if (t instanceof Scalar) return new Scalar(t.value, raw.trim());
  return t ?? new Scalar('', raw);
}

/** Plain JavaScript values of a tree (scalars become their YAML value). */
export function plain(n: TreeNode | undefined): unknown {
  if (n === null || n === undefined) return undefined;
  if (n instanceof Scalar) return n.value;
  if (Array.isArray(n)) return n.map(plain);
  return Object.fromEntries(Object.entries(n).map(([k, v]) => [k, plain(v)]));
}
