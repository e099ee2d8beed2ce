// A small schema for distribution's config.yml: every key we accept, its
// type, and a message naming the key for anything else.
import { parseDuration } from './duration.js';

export type Schema =
  | { kind: 'string' | 'bool' | 'int' | 'duration' | 'stringlist' | 'any' | 'addr' }
  | { kind: 'enum'; values: string[] }
  | { kind: 'object'; fields: Record<string, Schema>; other?: Schema; note?: string }
  | { kind: 'unsupported'; why: string };

export const str: Schema = { kind: 'string' };
export const bool: Schema = { kind: 'bool' };
export const int: Schema = { kind: 'int' };
export const duration: Schema = { kind: 'duration' };
export const stringlist: Schema = { kind: 'stringlist' };
export const any: Schema = { kind: 'any' };
export const obj = (fields: Record<string, Schema>, other?: Schema): Schema => ({ kind: 'object', fields, other });
export const oneOf = (...values: string[]): Schema => ({ kind: 'enum', values });
export const unsupported = (why: string): Schema => ({ kind: 'unsupported', why });

export class ConfigError extends Error {
  constructor(readonly key: string, message: string) {
    super(key ? `configuration: ${key}: ${message}` : `configuration: ${message}`);
    this.name = 'ConfigError';
  }
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'a map' : `${typeof v} ${JSON.stringify(v)}`;
}

/** Throws ConfigError naming the first key that does not fit. */
export function validate(v: unknown, s: Schema, key: string): void {
  if (v === null || v === undefined) return; // empty value: the default applies
  switch (s.kind) {
    case 'any': return;
    case 'string': if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(key, `must be a string, got ${typeName(v)}`); return;
    case 'addr': if (typeof v !== 'string') throw new ConfigError(key, `must be an address such as 127.0.0.1:5000, got ${typeName(v)}`); return;
    case 'bool': if (typeof v !== 'boolean') throw new ConfigError(key, `must be true or false, got ${typeName(v)}`); return;
    case 'int': if (typeof v !== 'number' || !Number.isInteger(v)) throw new ConfigError(key, `must be an integer, got ${typeName(v)}`); return;
    case 'duration': if (parseDuration(v) === null) throw new ConfigError(key, `must be a duration such as 10s, 5m or 168h, got ${typeName(v)}`); return;
    case 'stringlist': if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(key, `must be a list of strings, got ${typeName(v)}`); return;
    case 'enum': if (typeof v !== 'string' || !s.values.includes(v)) throw new ConfigError(key, `must be one of ${s.values.join(', ')}, got ${typeName(v)}`); return;
    case 'unsupported': throw new ConfigError(key, `is not supported by this registry (${s.why}); remove it`);
    case 'object': {
      if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(key, `must be a map, got ${typeName(v)}`);
      for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
        const ck = key ? `${key}.${k}` : k;
        const cs = s.fields[k] ?? s.other;
        if (!cs) throw new ConfigError(ck, `unknown key (accepted here: ${Object.keys(s.fields).join(', ')})`);
        validate(child, cs, ck);
      }
    }
  }
}
