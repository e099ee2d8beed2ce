// REGISTRY_* environment overrides, read as distribution reads them
// (configuration/parser.go): variables in name order; each `_`-separated
// segment names a field, matched case-insensitively; inside a map a segment is
// a key (lower-cased, or the existing key of another case); a number indexes a
// list, and the list's length appends; the value is YAML. A variable that
// names no field is a warning and is ignored, as distribution logs "Ignoring
// unrecognized environment variable": Kubernetes sets REGISTRY_PORT,
// REGISTRY_SERVICE_HOST and more in every pod of a namespace with a Service
// named registry. Beyond distribution, a field whose name holds `_` (azure's
// max_retries) is matched across segments.
import { type ConfigWarning, type Schema } from './schema.js';
import { suggest } from './suggest.js';
import { Scalar, type TreeMap, type TreeNode, isTreeMap, parseEnvValue } from './tree.js';

const KUBERNETES = /^REGISTRY_(PORT|SERVICE)(_|$)/;

function unwrap(s: Schema | undefined): Schema | undefined {
  return s?.kind === 'ignored' ? s.schema ?? { kind: 'any' } : s;
}

function containerFor(s: Schema | undefined, nextSeg: string | undefined): TreeNode {
  const u = unwrap(s);
  if (u?.kind === 'list' || u?.kind === 'stringlist') return [];
  if (u?.kind === 'any' && nextSeg !== undefined && /^\d+$/.test(nextSeg)) return [];
  return {};
}

function envName(path: string[]): string {
  return `REGISTRY_${path.map((p) => p.toUpperCase()).join('_')}`;
}

export function applyEnv(tree: TreeMap, root: Schema, env: NodeJS.ProcessEnv, warnings: ConfigWarning[]): void {
  const names = Object.keys(env).filter((k) => k.startsWith('REGISTRY_') && k !== 'REGISTRY_CONFIGURATION_PATH').sort();
  for (const name of names) {
    const segs = name.slice('REGISTRY_'.length).split('_').filter((x) => x !== '');
    if (segs.length === 0) continue;
    const warn = (message: string) => warnings.push({ key: name, message });
    const value = parseEnvValue(env[name] ?? '');
    let node: TreeNode = tree;
    let s: Schema | undefined = root;
    const path: string[] = [];
    let i = 0;
    while (i < segs.length) {
      s = unwrap(s);
      const seg = segs[i];
      if (Array.isArray(node)) {
        const idx = Number(seg);
        if (!/^\d+$/.test(seg) || idx > node.length) { warn(`index ${seg} is out of range for ${path.join('.')} (a list of ${node.length}), ignored`); break; }
        const item: Schema | undefined = s?.kind === 'list' ? s.item : s?.kind === 'stringlist' ? { kind: 'string' } : { kind: 'any' };
        path.push(seg);
        i++;
        if (i === segs.length) { node[idx] = value; break; }
        if (!Array.isArray(node[idx]) && !isTreeMap(node[idx])) node[idx] = containerFor(item, segs[i]);
        node = node[idx];
        s = item;
        continue;
      }
      if (!isTreeMap(node)) { warn(`cannot set ${segs.slice(i).join('_').toLowerCase()} inside the value of ${path.join('.')}, ignored`); break; }
      let key: string | undefined;
      let used = 1;
      let child: Schema | undefined;
      if (s?.kind === 'object') {
        // The longest field name that the next segments spell (max_retries is two).
        let best = 0;
        for (const f of Object.keys(s.fields)) {
          const n = f.split('_').length;
          if (n > best && i + n <= segs.length && segs.slice(i, i + n).join('_').toUpperCase() === f.toUpperCase()) {
            key = f;
            used = n;
            child = s.fields[f];
            best = n;
          }
        }
        if (!key && s.other) {
          key = Object.keys(node).find((k) => k.toLowerCase() === seg.toLowerCase()) ?? seg.toLowerCase();
          child = s.other;
        }
        if (!key) {
          const wanted = [...path, seg.toLowerCase()].join('.');
          const near = suggest(seg.toLowerCase(), path.join('.'), Object.keys(s.fields), root);
          const k8s = KUBERNETES.test(name) ? ' (Kubernetes sets REGISTRY_PORT* and REGISTRY_SERVICE_* in pods of a namespace with a Service named registry)' : '';
          warn(`names no configuration key (${wanted}), ignored${k8s}${near ? `; did you mean ${near} (${envName(near.split('.'))})?` : ''}`);
          break;
        }
      } else if (s?.kind === 'any' || s === undefined) {
        key = Object.keys(node).find((k) => k.toLowerCase() === seg.toLowerCase()) ?? seg.toLowerCase();
        child = { kind: 'any' };
      } else {
        warn(`${path.join('.')} takes a single value; ${segs.slice(i).join('_')} names nothing inside it, ignored`);
        break;
      }
      path.push(key);
      i += used;
      if (i === segs.length) { node[key] = value; break; }
      const cur: TreeNode | undefined = node[key];
      if (!Array.isArray(cur) && !isTreeMap(cur)) {
        // A bare `storage: s3` (or REGISTRY_STORAGE=s3) holding a parameter now.
        node[key] = cur instanceof Scalar && unwrap(child)?.kind === 'object' && (unwrap(child) as { bare?: boolean }).bare
          ? { [cur.text]: null }
          : containerFor(child, segs[i]);
      }
      node = node[key];
      s = child;
    }
  }
}
