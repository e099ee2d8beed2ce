// Prometheus metrics: promtool accepts our exposition, and a real Prometheus
// (Debian's), scraping the debug listener, returns our counters after a
// skopeo push and pull: pushes counted exactly, bytes pushed and pulled to
// the byte. And the commands' --metrics-file for cron jobs.
import { expect } from 'chai';
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REGISTRY_BIN, type TestRegistry, freePort, requireTool, startTestRegistry, tempDir, waitForHttp } from '../helpers/registry.js';
import { killGroup, track } from '../helpers/children.js';
import { image, imageBlobs, writeLayout } from '../helpers/ociLayout.js';
import { hostOf, skopeo } from '../helpers/skopeo.js';

function promtool(text: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

async function query(prom: string, q: string): Promise<number | null> {
  const res = await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(q)}`);
  if (!res.ok) throw new Error(`Prometheus answered ${res.status} to ${q}: ${await res.text()}`);
  const body = await res.json() as { data?: { result?: { value: [number, string] }[] } };
  const r = body.data?.result ?? [];
  return r.length ? r.reduce((a, x) => a + Number(x.value[1]), 0) : null;
}

describe('metrics: promtool and a real Prometheus', function () {
  this.timeout(180000);
  let dir: string;
  let r: TestRegistry;
  let debugPort: number;
  const img = image(2, 'amd64', 50_000);
  const blobBytes = [img.config, ...img.layers].reduce((n, b) => n + b.size, 0);

  before(async function () {
    requireTool(this, 'skopeo');
    requireTool(this, 'promtool');
    requireTool(this, 'prometheus');
    dir = await tempDir('metrics-');
    debugPort = await freePort();
    r = await startTestRegistry('', { httpExtra: `  debug:\n    addr: 127.0.0.1:${debugPort}\n    prometheus:\n      enabled: true\n      path: /metrics\n      repositorylabels: 10\n` });
    await writeLayout(join(dir, 'img'), img.manifest, imageBlobs(img), 'v1');
  });
  after(async () => {
    await r?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('distribution\'s metric names and ours pass promtool check metrics', async () => {
    await skopeo('copy', `oci:${join(dir, 'img')}:v1`, `docker://${hostOf(r.url)}/prom/app:v1`);
    const text = await (await fetch(`http://127.0.0.1:${debugPort}/metrics`)).text();
    for (const name of [
      'registry_http_in_flight_requests', 'registry_http_requests_total', 'registry_http_request_duration_seconds_bucket',
      'registry_http_request_size_bytes_bucket', 'registry_http_response_size_bytes_bucket', 'registry_storage_action_seconds_bucket',
      'registry_storage_cache_requests_total', 'registry_storage_cache_hits_total', 'registry_storage_cache_errors_total',
      'registry_blob_pushed_bytes_total', 'registry_uploads_completed_total', 'registry_repository_pushes_total',
      'process_cpu_user_seconds_total', 'nodejs_heap_size_used_bytes',
    ]) expect(text, name).to.include(`${name}`);
    expect(text).to.match(/registry_storage_action_seconds_count\{driver="filesystem",action="PutContent"\} [1-9]/);
    expect(text).to.match(/registry_http_requests_total\{code="201",handler="manifest",method="PUT"\} 1/);
    const lint = promtool(text);
    expect(lint.status, lint.out).to.equal(0);
  });

  it('a real Prometheus scraping the debug listener returns the counters after a skopeo push and pull', async () => {
    // A second push of the same image under another tag: one more manifest push, no new blob bytes.
    await skopeo('copy', `oci:${join(dir, 'img')}:v1`, `docker://${hostOf(r.url)}/prom/app:v2`);
    await skopeo('copy', `docker://${hostOf(r.url)}/prom/app:v1`, `oci:${join(dir, 'out')}:v1`);
    const promPort = await freePort();
    await writeFile(join(dir, 'prometheus.yml'), `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: registry\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['127.0.0.1:${debugPort}']\n`);
    const prom: ChildProcess = track(spawn('prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
    ], { stdio: 'ignore', detached: true }));
    const url = `http://127.0.0.1:${promPort}`;
    try {
      await waitForHttp(`${url}/-/ready`, 60000, true);
      const end = Date.now() + 60000;
      let pushes: number | null = null;
      while (Date.now() < end) {
        pushes = await query(url, 'sum(registry_http_requests_total{handler="manifest",method="PUT",code="201"})');
        if (pushes === 2) break;
        await new Promise((ok) => setTimeout(ok, 500));
      }
      expect(pushes, 'manifest pushes, as Prometheus has them').to.equal(2);
      expect(await query(url, 'registry_repository_pushes_total{repository="prom/app"}')).to.equal(2);
      expect(await query(url, 'registry_repository_pulls_total{repository="prom/app"}')).to.be.at.least(1);
      // Every blob byte skopeo sent was stored once, and every byte it fetched was sent.
      expect(await query(url, 'registry_blob_pushed_bytes_total')).to.equal(blobBytes);
      expect(await query(url, 'registry_blob_pulled_bytes_total')).to.equal(blobBytes);
      expect(await query(url, 'up{job="registry"}')).to.equal(1);
    } finally {
      await killGroup(prom);
    }
  });

  it('garbage-collect and purge-uploads write --metrics-file for the textfile collector', async () => {
    const cfg = join(dir, 'gc.yml');
    await writeFile(cfg, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${r.root}\n`);
    const run = (...args: string[]) => new Promise<void>((resolve, reject) => {
      execFile(process.execPath, [REGISTRY_BIN, ...args], (e, _o, se) => (e ? reject(new Error(`${e.message}\n${se}`)) : resolve()));
    });
    await run('garbage-collect', cfg, '--offline', '--grace', '0s', '--metrics-file', join(dir, 'gc.prom'));
    await run('purge-uploads', cfg, '--metrics-file', join(dir, 'purge.prom'));
    for (const [f, task] of [['gc.prom', 'garbage-collect'], ['purge.prom', 'purge-uploads']]) {
      const text = await readFile(join(dir, f), 'utf8');
      expect(text).to.include(`registry_maintenance_runs_total{task="${task}",result="success"} 1`);
      expect(text).to.match(new RegExp(`registry_maintenance_last_success_timestamp_seconds\\{task="${task}"\\} \\d+`));
      const lint = promtool(text);
      expect(lint.status, lint.out).to.equal(0);
    }
  });
});
