// A schema for distribution's config.yml: every key we accept and its type.
// normalize() reads a tree (tree.ts) the way distribution's YAML 1.1 decoder
// reads it into typed fields, and returns plain values:
// - a string field keeps the text as written (`secret: 0123` is "0123");
// - bool fields take true/false/yes/no/on/off in any case;
// - int fields take numbers and quoted numbers;
// - enumerations are case-insensitive (`level: INFO`);
// - a key we do not know is a warning (distribution ignores it), naming the
//   nearest known key; where ignoring it would change security it is an error;
// - a key we know but do not act on is a warning saying so (`ignored`), or an
//   error where ignoring it would change security or lose data (`refused`).
import { parseDuration } from './duration.js';
import { suggest } from './suggest.js';
import { Scalar, type TreeNode, isTreeMap, plain } from './tree.js';

export type Schema =
  | { kind: 'string'; secret?: boolean }
  | { kind: 'bool' }
  | { kind: 'int'; min?: number; max?: number }
  | { kind: 'number' }
  | { kind: 'duration' }
  | { kind: 'stringlist' }
  | { kind: 'enum'; values: string[] }
  | { kind: 'object'; fields: Record<string, Schema>; other?: Schema; unknown?: 'warn' | 'refuse'; bare?: boolean }
  | { kind: 'list'; item: Schema }
  | { kind: 'any' }
  | { kind: 'ignored'; why: string; schema?: Schema }
  | { kind: 'refused'; why: string };

export const str: Schema = { kind: 'string' };
export const secret: Schema = { kind: 'string', secret: true };
export const bool: Schema = { kind: 'bool' };
export const int: Schema = { kind: 'int' };
export const intIn = (min: number, max: number): Schema => ({ kind: 'int', min, max });
export const num: Schema = { kind: 'number' };
export const duration: Schema = { kind: 'duration' };
export const stringlist: Schema = { kind: 'stringlist' };
export const any: Schema = { kind: 'any' };
export const obj = (fields: Record<string, Schema>, other?: Schema): Schema => ({ kind: 'object', fields, other });
/** An object whose unknown keys are errors: ignoring them would change security (auth) or the store (storage). */
export const strictObj = (fields: Record<string, Schema>, bare = false): Schema => ({ kind: 'object', fields, unknown: 'refuse', bare });
export const list = (item: Schema): Schema => ({ kind: 'list', item });
export const oneOf = (...values: string[]): Schema => ({ kind: 'enum', values });
/** Accepted; a warning says it is ignored when it is set to anything but its zero value. */
export const ignored = (why: string, schema?: Schema): Schema => ({ kind: 'ignored', why, schema });
/** Known, and refused: ignoring it would change security or lose data. */
export const refused = (why: string): Schema => ({ kind: 'refused', why });

export class ConfigError extends Error {
  constructor(readonly key: string, message: string) {
    super(key ? `configuration: ${key}: ${message}` : `configuration: ${message}`);
    this.name = 'ConfigError';
  }
}

export interface ConfigWarning { key: string; message: string }
export const warningText = (w: ConfigWarning) => `configuration: ${w.key}: ${w.message}`;

export interface NormalizeContext {
  warnings: ConfigWarning[];
  /** Dotted keys of secret values, for masking. */
  secrets: Set<string>;
  /** Dotted keys of durations (normalized to milliseconds), for printing them back as Go durations. */
  durations?: Set<string>;
  root: Schema;
}

function describe(n: TreeNode): string {
  if (n === null) return 'null';
  if (Array.isArray(n)) return 'a list';
  if (n instanceof Scalar) return typeof n.value === 'string' ? `"${n.text.slice(0, 60)}"` : n.text.slice(0, 60);
  return 'a map';
}

const BOOL_TEXT: Record<string, boolean> = { true: true, false: false, yes: true, no: false, on: true, off: false, y: true, n: false };

/** Whether a value is set to something other than its zero value (for `ignored`). */
function isSet(n: TreeNode | undefined): boolean {
  if (n === null || n === undefined) return false;
  if (n instanceof Scalar) return !(n.value === false || n.value === '' || n.value === 0 || n.value === null);
  if (Array.isArray(n)) return n.some(isSet);
  // A section whose entries are all disabled is not in use (log.hooks with disabled: true).
  if (isTreeMap(n) && n.disabled instanceof Scalar && n.disabled.value === true) return false;
  return Object.values(n).some(isSet);
}

function scalarOf(n: TreeNode, key: string, want: string): Scalar {
  if (!(n instanceof Scalar)) throw new ConfigError(key, `must be ${want}, got ${describe(n)}`);
  return n;
}

/** Reads n as schema s says; undefined means unset (the default applies). */
export function normalize(n: TreeNode | undefined, s: Schema, key: string, ctx: NormalizeContext): unknown {
  if (s.kind === 'refused') {
    if (isSet(n)) throw new ConfigError(key, s.why);
    return undefined;
  }
  if (s.kind === 'ignored') {
    if (isSet(n)) ctx.warnings.push({ key, message: `is ignored: ${s.why}` });
    return s.schema && n !== undefined ? normalize(n, s.schema, key, ctx) : undefined;
  }
  if (n === undefined) return undefined;
  // `storage: s3`, `auth: htpasswd`: a bare name is that section with no parameters.
  if (s.kind === 'object' && s.bare && n instanceof Scalar && typeof n.value === 'string') n = { [n.text]: null };
  if (n === null) {
    if (s.kind === 'object') return {};
    if (s.kind === 'list' || s.kind === 'stringlist') return [];
    return undefined;
  }
  switch (s.kind) {
    case 'any': return plain(n);
    case 'string': {
      const v = scalarOf(n, key, 'a string');
      if (s.secret) ctx.secrets.add(key);
      return v.text;
    }
    case 'bool': {
      const v = scalarOf(n, key, 'true or false');
      if (typeof v.value === 'boolean') return v.value;
      const b = BOOL_TEXT[v.text.trim().toLowerCase()];
      if (b === undefined) throw new ConfigError(key, `must be true or false, got ${describe(n)}`);
      return b;
    }
    case 'int': case 'number': {
      const v = scalarOf(n, key, 'a number');
      const t = v.text.trim().replace(/_/g, '');
      let x: number;
      if (typeof v.value === 'number') x = v.value;
      else if (/^[-+]?\d+(\.\d+)?$/.test(t)) x = Number(t);
      else throw new ConfigError(key, `must be ${s.kind === 'int' ? 'an integer' : 'a number'}, got ${describe(n)}`);
      if (s.kind === 'int') {
        if (!Number.isSafeInteger(x)) throw new ConfigError(key, `must be an integer, got ${describe(n)}`);
        if ((s.min !== undefined && x < s.min) || (s.max !== undefined && x > s.max)) {
          throw new ConfigError(key, `must be from ${s.min ?? '-∞'} to ${s.max ?? '∞'}, got ${x}`);
        }
      }
      return x;
    }
    case 'duration': {
      const v = scalarOf(n, key, 'a duration such as 10s, 5m or 168h');
      const ms = parseDuration(typeof v.value === 'number' ? v.value : v.text);
      if (ms === null) throw new ConfigError(key, `must be a duration such as 10s, 5m or 168h, got ${describe(n)}`);
      ctx.durations?.add(key);
      return ms;
    }
    case 'enum': {
      const v = scalarOf(n, key, `one of ${s.values.join(', ')}`);
      const t = v.text.trim().toLowerCase();
      const found = s.values.find((x) => x.toLowerCase() === t);
      if (found === undefined) throw new ConfigError(key, `must be one of ${s.values.join(', ')}, got ${describe(n)}`);
      return found;
    }
    case 'stringlist': {
      // A single value where a list is expected reads as a list of one.
      const items = Array.isArray(n) ? n : [n];
      return items.map((x, i) => {
        if (x === null) return '';
        return scalarOf(x, `${key}[${i}]`, 'a string').text;
      });
    }
    case 'list': {
      if (!Array.isArray(n)) throw new ConfigError(key, `must be a list, got ${describe(n)}`);
      return n.map((x, i) => normalize(x, s.item, `${key}[${i}]`, ctx));
    }
    case 'object': {
      if (!isTreeMap(n)) throw new ConfigError(key, `must be a map, got ${describe(n)}`);
      const out: Record<string, unknown> = {};
      for (const [k, child] of Object.entries(n)) {
        const ck = key ? `${key}.${k}` : k;
        const cs = Object.hasOwn(s.fields, k) ? s.fields[k] : s.other;
        if (!cs) {
          const near = suggest(k, key, Object.keys(s.fields), ctx.root);
          const hint = near ? ` (did you mean ${near}?)` : '';
          if (s.unknown === 'refuse') throw new ConfigError(ck, `is not known to this registry${hint}; known here: ${Object.keys(s.fields).join(', ')}`);
          ctx.warnings.push({ key: ck, message: `unknown key, ignored${hint}` });
          continue;
        }
        const v = normalize(child, cs, ck, ctx);
        if (v !== undefined) out[k] = v;
      }
      return out;
    }
  }
}

/** The schema of a dotted key (list indexes skipped), or undefined. */
export function schemaAt(root: Schema, path: string[]): Schema | undefined {
  let s: Schema | undefined = root;
  for (const seg of path) {
    if (!s) return undefined;
    if (s.kind === 'ignored') s = s.schema;
    if (!s) return undefined;
    if (s.kind === 'list') s = s.item;
    if (s.kind !== 'object') return undefined;
    s = Object.hasOwn(s.fields, seg) ? s.fields[seg] : s.other;
  }
  return s;
}
