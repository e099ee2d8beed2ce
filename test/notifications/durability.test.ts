// Notifications that survive the process: `registry serve` killed with
// SIGKILL while 200 events wait (disk spool), and three nodes on one
// filesystem and one redis-server, the delivering node killed mid-delivery.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, requireTool, spawnRegistry, tempDir, type ChildRegistry } from '../helpers/registry.js';
import { sha256 } from '../helpers/ociLayout.js';
import { startReceiver, type Receiver } from '../helpers/webhookReceiver.js';
import { pushBlob } from '../helpers/http.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const blobOf = (i: number) => { const data = Buffer.from(`durable ${i} ${randomBytes(8).toString('hex')}`); return { data, digest: sha256(data) }; };

/** Pushes n blobs, `parallel` at a time, spread over the given registries; returns their digests in push order. */
async function pushMany(urls: string[], n: number, parallel: number, repo: string): Promise<string[]> {
  const digests: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < n) {
      const i = next++;
      const b = blobOf(i);
      digests[i] = b.digest;
      await pushBlob(urls[i % urls.length], repo, b.data, b.digest);
    }
  }));
  return digests;
}

/** Every pushed digest arrived; an event delivered twice carries the same id. Returns how many were duplicates. */
function checkDelivered(r: Receiver, digests: string[]): number {
  const ids = new Map<string, Set<string>>();
  for (const e of r.events()) {
    if (!ids.has(e.target.digest)) ids.set(e.target.digest, new Set());
    ids.get(e.target.digest)!.add(e.id);
  }
  for (const d of digests) {
    expect(ids.get(d), `event for ${d}`).to.not.equal(undefined);
    expect(ids.get(d)!.size, `ids of ${d}`).to.equal(1);
  }
  return r.events().length - digests.length;
}

async function vars(debugUrl: string): Promise<{ notifications: { endpoints: { queue: { events?: number; delivering: boolean } }[] } }> {
  return (await fetch(`${debugUrl}/debug/vars`)).json() as never;
}

describe('notifications: durable across processes', function () {
  this.timeout(240000);
  let dir: string;
  before(async () => { dir = await tempDir('notify-durable-'); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  async function config(name: string, receiver: Receiver, top = '', debugPort?: number, root = join(dir, `${name}-root`)): Promise<string> {
    const f = join(dir, `${name}.yml`);
    await writeFile(f, `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n${top}`
      + `http:\n  addr: 127.0.0.1:0\n  secret: durable-secret\n${debugPort ? `  debug:\n    addr: 127.0.0.1:${debugPort}\n` : ''}`
      + `notifications:\n  queue:\n    directory: ${join(dir, `${name}-queue`)}\n  endpoints:\n    - name: hook\n      url: ${receiver.url}\n      timeout: 2s\n      threshold: 3\n      backoff: 200ms\n`);
    return f;
  }

  it('delivers, after a SIGKILL and a restart, all 200 events that were waiting (duplicates keep their id)', async () => {
    const r = await startReceiver();
    r.mode = { kind: 'status', status: 503 };
    const debugPort = await freePort();
    const cfg = await config('kill', r, '', debugPort);
    let reg: ChildRegistry | undefined = await spawnRegistry(cfg);
    try {
      const digests = await pushMany([reg.url], 200, 8, 'killed/repo');
      const before = await vars(`http://127.0.0.1:${debugPort}`);
      expect(before.notifications.endpoints[0].queue.events).to.equal(200);
      expect(r.accepted).to.equal(0);
      expect(await reg.stop('SIGKILL')).to.equal(null);
      r.mode = { kind: 'ok' };
      reg = await spawnRegistry(cfg);
      await r.waitFor(() => new Set(r.events().map((e) => e.target.digest)).size === 200, 60000, '200 events after the restart');
      checkDelivered(r, digests);
      // In queue order: the order the pushes were answered in.
      expect(r.events().slice(0, 3).map((e) => e.action)).to.deep.equal(['push', 'push', 'push']);
    } finally {
      await reg?.stop();
      await r.stop();
    }
  });

  it('three nodes on one store and one Redis: each event once per endpoint, and another node finishes when the delivering one is killed', async function () {
    if (!requireTool(this, 'redis-server')) return;
    const redis: TestRedis = await startRedis();
    const r = await startReceiver();
    // Slow enough that the kill lands mid-delivery.
    r.mode = { kind: 'delay', ms: 40 };
    const nodes: { reg: ChildRegistry; debug: string }[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        // A port found free can be taken by an outgoing connection's local
        // port before the node binds it: then again, on another port.
        for (let attempt = 0; ; attempt++) {
          const debugPort = await freePort();
          // One store for all three: the same root directory.
          const f = await config(`node${i}`, r, `redis:\n  addr: ${redis.addr}\n`, debugPort, join(dir, 'shared-root'));
          try {
            nodes.push({ reg: await spawnRegistry(f), debug: `http://127.0.0.1:${debugPort}` });
            break;
          } catch (e) {
            if (attempt >= 2 || !/EADDRINUSE/.test(String(e))) throw e;
          }
        }
      }
      const digests = await pushMany(nodes.map((n) => n.reg.url), 90, 6, 'cluster/repo');
      await r.waitFor(() => r.events().length >= 15, 60000, '15 events before the kill');
      // Exactly one node delivers the endpoint.
      const delivering = [];
      for (const n of nodes) if ((await vars(n.debug)).notifications.endpoints[0].queue.delivering) delivering.push(n);
      expect(delivering).to.have.length(1);
      const before = r.events().length;
      expect(before).to.be.lessThan(90);
      expect(await delivering[0].reg.stop('SIGKILL')).to.equal(null);
      await r.waitFor(() => new Set(r.events().map((e) => e.target.digest)).size === 90, 90000, 'all 90 events after the kill');
      const dups = checkDelivered(r, digests);
      // At most the event in flight at the kill comes twice.
      expect(dups).to.be.at.most(1);
      // The events came from all three nodes.
      expect(new Set(r.events().map((e) => e.source.instanceID)).size).to.equal(3);
    } finally {
      for (const n of nodes) await n.reg.stop();
      await r.stop();
      await redis.stop();
    }
  });
});
