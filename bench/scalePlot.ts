// The plot of bench/scale.ts's results: time against the store's size (files
// per copy) for each operation, ours beside docker-registry 2.8.2, one panel
// per operation and a line per registry and store. Reads what scale.ts wrote
// (bench/results/scale-fs-latest.json, scale-s3-latest.json) and writes
// docs/scale.png. Usage: npm run bench:plot (after npm run bench:scale).
// vega-lite draws it, resvg turns its SVG into the PNG.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface SizeResult { size: string; gen: { files: number }; ours: Record<string, number | string>; theirs: Record<string, number | string> }
interface ResultFile { node: string; distribution: string; store: string; results: SizeResult[] }

/** The operations plotted, by the key scale.ts records them under, and their unit. */
const OPERATIONS: [key: string, label: string, toSeconds: number][] = [
  ['gc --dry-run, s', 'garbage-collect --dry-run', 1],
  ['gc --delete-untagged, s', 'garbage-collect --delete-untagged', 1],
  ['_catalog (n=100, all pages), s', '_catalog, all pages', 1],
  ['tags/list of 10,000 tags (n=1000), s', 'tags/list, 10,000 tags', 1],
  ['DELETE manifest among 10,000 tags, s', 'manifest DELETE among 10,000 tags', 1],
  ['cold manifest GET by tag, ms', 'cold manifest GET by tag', 1 / 1000],
];

interface Point { operation: string; files: number; seconds: number; series: string; stopped: boolean }

export function points(files: ResultFile[]): Point[] {
  const out: Point[] = [];
  for (const f of files) {
    for (const r of f.results) {
      for (const [who, row] of [['ours', r.ours], ['docker-registry 2.8.2', r.theirs]] as const) {
        for (const [key, label, scale] of OPERATIONS) {
          const v = row[key];
          // A run stopped at --limit is drawn at the limit, marked as stopped.
          const stopped = typeof v === 'string' ? /^>(\d+(?:\.\d+)?)/.exec(v) : null;
          const seconds = typeof v === 'number' ? v * scale : stopped ? Number(stopped[1]) : NaN;
          if (!Number.isFinite(seconds)) continue;
          out.push({ operation: label, files: r.gen.files, seconds: Math.max(seconds, 1e-4), series: `${who}, ${f.store}`, stopped: stopped !== null });
        }
      }
    }
  }
  return out;
}

function spec(data: Point[], title: { text: string; subtitle: string }): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values: data },
    facet: { field: 'operation', type: 'nominal', title: null, sort: OPERATIONS.map(([, l]) => l) },
    columns: 3,
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 260, height: 180,
      layer: [
        { mark: { type: 'line', point: true } },
        { transform: [{ filter: 'datum.stopped' }], mark: { type: 'point', shape: 'triangle-up', size: 120, filled: true } },
      ],
      encoding: {
        x: { field: 'files', type: 'quantitative', scale: { type: 'log' }, title: 'files in the store' },
        y: { field: 'seconds', type: 'quantitative', scale: { type: 'log' }, title: 'seconds' },
        color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 400, columns: 2 } },
        strokeDash: { condition: { test: "indexof(datum.series, 'docker-registry') >= 0", value: [4, 3] }, value: [1, 0] },
      },
    },
    config: { background: 'white', font: 'sans-serif' },
  };
}

async function main(): Promise<void> {
  const files = ['fs', 's3'].map((s) => join(REPO_ROOT, `bench/results/scale-${s}-latest.json`)).filter((f) => existsSync(f))
    .map((f) => JSON.parse(readFileSync(f, 'utf8')) as ResultFile);
  if (!files.length) throw new Error('no bench/results/scale-*-latest.json: run npm run bench:scale first');
  const data = points(files);
  const title = { text: 'Time against store size, log-log (bench/scale.ts)', subtitle: `ours and docker-registry 2.8.2 on the same stores, Node ${files[0].node}; a triangle: stopped at the run limit` };
  const view = new vega.View(vega.parse(compile(spec(data, title)).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 1.5 }, font: { loadSystemFonts: true } }).render().asPng();
  const out = join(REPO_ROOT, 'docs/scale.png');
  writeFileSync(out, png);
  console.log(`${out}: ${data.length} points from ${files.map((f) => f.store).join(', ')}`);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
