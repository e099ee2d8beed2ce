// A flame graph of a V8 CPU profile (node --cpu-prof), drawn from the
// profile's own samples: identical stacks are merged, each frame is as wide
// as the CPU time spent in it and below it, the root at the bottom. Idle
// time (waiting for the network or the disk) is left out, so the width is
// the time the process was on a CPU. vega-lite draws it, resvg makes the PNG
// (as bench/scalePlot.ts does). Also the functions by self time, for tables.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[]; hitCount?: number }
export interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

/** A merged frame: CPU microseconds in it (self) and in it and below (total). */
interface Frame { name: string; kind: string; self: number; total: number; children: Map<string, Frame> }

const IDLE = '(idle)';
const WIDTH = 1200;
const ROW = 16;

/** Where a frame's code lives, for its colour. */
function kindOf(f: CallFrame): string {
  const u = f.url;
  if (f.functionName === '(garbage collector)') return 'GC';
  if (!u) return f.functionName.startsWith('(') ? 'V8 and native' : 'native';
  if (u.startsWith('node:')) return 'Node.js';
  if (u.includes('/node_modules/')) return 'dependencies';
  return 'registry';
}

function label(f: CallFrame): string {
  const name = f.functionName || '(anonymous)';
  if (!f.url) return name;
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f.url);
  const where = f.url.startsWith('node:') ? f.url.slice(5) : m ? `${m[1]}/${basename(f.url)}` : f.url.replace(/^.*\/dist\//, '');
  return `${name} ${where}:${f.lineNumber + 1}`;
}

/** A span of the profiled process's life, in the profile's clock (CLOCK_MONOTONIC µs, as process.hrtime). */
export interface Window { from: number; to: number }

/** Microseconds each profile node was sampled in, within `w` (a sample's time is the delta after it). */
function selfTimes(p: CpuProfile, w?: Window): Map<number, number> {
  const t = new Map<number, number>();
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (w && (at < w.from || at > w.to)) continue;
    // The time until the next sample, cut at the window's end (the last
    // sample before a quiet spell is followed by a long gap).
    const dt = Math.min(p.timeDeltas[i + 1] ?? 0, w ? w.to - at : Infinity);
    t.set(p.samples[i], (t.get(p.samples[i]) ?? 0) + Math.max(0, dt));
  }
  return t;
}

/** The profile as one merged tree (same frames on the same path are one), idle left out. */
export function mergedTree(p: CpuProfile, w?: Window): { root: Frame; idle: number; wall: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = selfTimes(p, w);
  const root: Frame = { name: 'all', kind: 'root', self: 0, total: 0, children: new Map() };
  let idle = 0;
  // Iterative walk: profiles can be deeper than the call stack allows.
  const stack: [ProfileNode, Frame][] = [];
  const rootNode = p.nodes[0];
  for (const c of rootNode.children ?? []) stack.push([byId.get(c)!, root]);
  while (stack.length) {
    const [n, parent] = stack.pop()!;
    if (n.callFrame.functionName === IDLE) { idle += self.get(n.id) ?? 0; continue; }
    const key = label(n.callFrame);
    let f = parent.children.get(key);
    if (!f) parent.children.set(key, f = { name: key, kind: kindOf(n.callFrame), self: 0, total: 0, children: new Map() });
    f.self += self.get(n.id) ?? 0;
    for (const c of n.children ?? []) stack.push([byId.get(c)!, f]);
  }
  const sum = (f: Frame): number => {
    let t = f.self;
    for (const c of f.children.values()) t += sum(c);
    return (f.total = t);
  };
  sum(root);
  return { root, idle, wall: w ? w.to - w.from : p.endTime - p.startTime };
}

/** The functions with the most self time, summed over every stack they are on. */
export function topSelf(root: Frame, n: number): { name: string; kind: string; us: number; share: number }[] {
  const by = new Map<string, { kind: string; us: number }>();
  const stack = [...root.children.values()];
  while (stack.length) {
    const f = stack.pop()!;
    const e = by.get(f.name) ?? { kind: f.kind, us: 0 };
    e.us += f.self;
    by.set(f.name, e);
    stack.push(...f.children.values());
  }
  return [...by.entries()].map(([name, e]) => ({ name, kind: e.kind, us: e.us, share: e.us / root.total }))
    .sort((a, b) => b.us - a.us).slice(0, n);
}

interface Rect { x: number; x2: number; depth: number; name: string; kind: string; text: string; share: string }

function rects(root: Frame, minShare: number): Rect[] {
  const out: Rect[] = [];
  const stack: [Frame, number, number][] = [[root, 0, 0]];
  while (stack.length) {
    const [f, x, depth] = stack.pop()!;
    const w = f.total / root.total;
    if (w < minShare) continue;
    const chars = Math.floor((w * WIDTH) / 6.5) - 1;
    const text = chars < 4 ? '' : f.name.length > chars ? `${f.name.slice(0, chars - 1)}…` : f.name;
    out.push({ x, x2: x + w, depth, name: f.name, kind: f.kind, text, share: `${(w * 100).toFixed(1)}%` });
    let cx = x;
    for (const c of [...f.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      stack.push([c, cx, depth + 1]);
      cx += c.total / root.total;
    }
  }
  return out;
}

function spec(data: Rect[], title: { text: string; subtitle: string }): TopLevelSpec {
  const depth = Math.max(...data.map((r) => r.depth)) + 1;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: WIDTH,
    height: depth * ROW,
    data: { values: data },
    encoding: {
      x: { field: 'x', type: 'quantitative', scale: { domain: [0, 1], nice: false }, axis: null },
      y: { field: 'depth', type: 'ordinal', sort: 'descending', axis: null, scale: { paddingInner: 0.06 } },
    },
    layer: [
      {
        mark: { type: 'bar', cornerRadius: 1, stroke: 'white', strokeWidth: 0.3 },
        encoding: {
          x2: { field: 'x2' },
          color: {
            field: 'kind', type: 'nominal', title: 'code',
            scale: {
              domain: ['root', 'registry', 'Node.js', 'dependencies', 'native', 'V8 and native', 'GC'],
              range: ['#bbbbbb', '#e4572e', '#f3a712', '#a8c256', '#669bbc', '#8d99ae', '#6a4c93'],
            },
            legend: { orient: 'bottom', direction: 'horizontal' },
          },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 2, fontSize: 10, baseline: 'middle' },
        encoding: { text: { field: 'text' } },
      },
    ],
    config: { background: 'white', font: 'sans-serif', view: { stroke: null } },
  };
}

/** Writes the flame graph of `profileFile` (the samples within `w`) to `png`; returns the merged tree's summary. */
export async function renderFlameGraph(profileFile: string, png: string, title: string, w?: Window): Promise<{ busyMs: number; idleMs: number; top: ReturnType<typeof topSelf> }> {
  const p = JSON.parse(readFileSync(profileFile, 'utf8')) as CpuProfile;
  const { root, idle } = mergedTree(p, w);
  if (root.total === 0) throw new Error(`${profileFile}: no samples in the window${w ? ` ${w.from}-${w.to}` : ''}`);
  const busyMs = root.total / 1000;
  const subtitle = `${busyMs.toFixed(0)} ms on a CPU (width 100%), ${(idle / 1000).toFixed(0)} ms idle (left out); frames under 0.2% not drawn`;
  const view = new vega.View(vega.parse(compile(spec(rects(root, 0.002), { text: title, subtitle })).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  writeFileSync(png, new Resvg(svg, { fitTo: { mode: 'zoom', value: 1.25 }, font: { loadSystemFonts: true } }).render().asPng());
  return { busyMs, idleMs: idle / 1000, top: topSelf(root, 15) };
}
