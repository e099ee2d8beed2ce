// tuneHeapForBatch (below) sets a smaller heap growing step for garbage-collect.
// tuneHeap sets V8's external-memory option exactly where V8 has it (13 and
// newer: Node 24 on), and an unknown option is never passed to an older V8
// (it would print an error at every start).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { tuneHeap } from './heap.js';

const v8Major = Number(process.versions.v8.split('.')[0]);
const known = spawnSync(process.execPath, ['--v8-options'], { encoding: 'utf8' }).stdout.includes('--external-memory-accounted-in-global-limit');

describe('heap: V8 options for uploads', () => {
  it(`sets the external-memory option only where this V8 (${process.versions.v8}) knows it`, () => {
    expect(v8Major >= 13).to.equal(known);
    expect(tuneHeap()).to.deep.equal(known ? ['--external-memory-accounted-in-global-limit'] : []);
  });

  it('leaves the option alone when node was started with it either way', () => {
    const code = `import('${new URL('./heap.js', import.meta.url).href}').then((m) => console.log(JSON.stringify(m.tuneHeap())))`;
    const args = known ? ['--no-external-memory-accounted-in-global-limit', '-e', code] : ['-e', code];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.equal('');
    expect(JSON.parse(r.stdout)).to.deep.equal([]);
  });
});

describe('heap: V8 options for the maintenance commands', () => {
  const run = (args: string[]) => {
    const code = `import('${new URL('./heap.js', import.meta.url).href}').then((m) => console.log(JSON.stringify(m.tuneHeapForBatch())))`;
    return spawnSync(process.execPath, [...args, '-e', code], { encoding: 'utf8' });
  };

  it(`sets a smaller heap growing step, an option this V8 (${process.versions.v8}) knows`, () => {
    expect(spawnSync(process.execPath, ['--v8-options'], { encoding: 'utf8' }).stdout).to.include('--heap-growing-percent');
    const r = run([]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.equal('');
    expect(JSON.parse(r.stdout)).to.deep.equal(['--heap-growing-percent=30']);
  });

  it('leaves it alone when node was started with it', () => {
    const r = run(['--heap-growing-percent=50']);
    expect(r.status, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout)).to.deep.equal([]);
  });
});
