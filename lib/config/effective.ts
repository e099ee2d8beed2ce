// The effective configuration as `registry config check` prints it: after
// REGISTRY_* overrides, as this registry reads it, with secrets masked and
// durations written back in Go's form.
import YAML from 'yaml';
import type { Config } from './config.js';

const MASK = '******';
const SECRET_HEADERS = /^(authorization|cookie|proxy-authorization|x-api-key)$/i;

export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const units: [string, number][] = [['h', 3600e3], ['m', 60e3], ['s', 1e3], ['ms', 1]];
  let left = ms;
  let out = '';
  for (const [u, size] of units) {
    const n = Math.floor(left / size);
    if (n > 0) { out += `${n}${u}`; left -= n * size; }
  }
  if (left > 0) out += `${Math.round(left * 1e6)}ns`;
  return out;
}

function rewrite(v: unknown, key: string, c: Config): unknown {
  if (c.secrets.has(key) && v !== undefined && v !== '') return MASK;
  if (c.durations.has(key) && typeof v === 'number') return formatDuration(v);
  if (Array.isArray(v)) return v.map((x, i) => rewrite(x, `${key}[${i}]`, c));
  if (v && typeof v === 'object') {
    const inHeaders = /(^|\.)headers$/.test(key);
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [
      k, inHeaders && SECRET_HEADERS.test(k) ? (Array.isArray(x) ? x.map(() => MASK) : MASK) : rewrite(x, key ? `${key}.${k}` : k, c),
    ]));
  }
  return v;
}

export function effectiveYAML(c: Config): string {
  return YAML.stringify(rewrite(c.effective, '', c), { lineWidth: 0 });
}
