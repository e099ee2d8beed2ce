// An endpoint's queue in Redis, shared by every node: a stream of events with
// one consumer group, a byte counter, and a dead-letter stream. One node at a
// time delivers an endpoint (it holds the endpoint's lock), so the receiver
// sees the events in the order they were queued, each once per endpoint; when
// that node dies, its lock expires, another takes it and claims what the dead
// node had read but not acknowledged (delivered again, with the same ids).
//
// Keys share one hash tag per endpoint, so the scripts run on Redis Cluster:
//   registry::notifications::{<endpoint>}::events   stream (fields t: queued ms, e: event json)
//   registry::notifications::{<endpoint>}::bytes    bytes of the events in the stream
//   registry::notifications::{<endpoint>}::dead     dead letters (t, e, deadat, reason)
//   registry::notifications::{<endpoint>}::lock     the delivering node
import type { Logger } from 'pino';
import type { QueueBounds } from '../config/config.js';
import type { RedisClient } from '../cache/redisClient.js';
import { type HeldLock, holdRedisLock } from '../cache/redisLock.js';
import type { DeadEvent, DeadLetterListener, EndpointQueue, QueuedEvent } from './queue.js';

const GROUP = 'delivery';
/** How long a dead node's lock keeps others from delivering. */
const LOCK_TTL_MS = 10_000;
/** How often an idle deliverer looks for events other nodes queued. */
const POLL_MS = 100;
const BATCH = 16;

export const notificationKeys = (endpoint: string) => {
  const base = `registry::notifications::{${endpoint}}`;
  return { events: `${base}::events`, bytes: `${base}::bytes`, dead: `${base}::dead`, lock: `${base}::lock` };
};

// Queues the events, then moves the oldest to the dead letters while a bound
// is exceeded (at most 1000 per call; the next call goes on). Redis's clock
// stamps them, so every node ages them alike.
const APPEND = `
local stream, bytesKey, dead = KEYS[1], KEYS[2], KEYS[3]
local maxEvents, maxBytes, maxAge, maxDead = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 5, #ARGV do
  redis.call('XADD', stream, '*', 't', now, 'e', ARGV[i])
  redis.call('INCRBY', bytesKey, #ARGV[i])
end
local n = {0, 0, 0}
for _ = 1, 1000 do
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if not first then break end
  local at = tonumber(first[2][2])
  local which
  if redis.call('XLEN', stream) > maxEvents then which = 1
  elseif tonumber(redis.call('GET', bytesKey) or '0') > maxBytes then which = 2
  elseif maxAge > 0 and at < now - maxAge then which = 3
  else break end
  local reason = ({'maxevents', 'maxbytes', 'maxage'})[which]
  redis.call('XADD', dead, 'MAXLEN', '~', maxDead, '*', 't', at, 'e', first[2][4], 'deadat', now, 'reason', reason)
  redis.call('XDEL', stream, first[1])
  redis.call('DECRBY', bytesKey, #first[2][4])
  n[which] = n[which] + 1
end
return n`;

const ACK = `
redis.call('XACK', KEYS[1], '${GROUP}', ARGV[1])
if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then redis.call('DECRBY', KEYS[2], ARGV[2]) end
return 1`;

// An event a bound already moved to the dead letters is not recorded twice.
const DEAD = `
redis.call('XACK', KEYS[1], '${GROUP}', ARGV[1])
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DECRBY', KEYS[2], ARGV[2])
local t = redis.call('TIME')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 't', ARGV[3], 'e', ARGV[4], 'deadat', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 'reason', ARGV[6])
return 1`;

// Moves dead letters back to the stream's end, oldest first, as new events
// (their age starts anew): at most 1000, and no more than the queue's bounds
// have room for, so a replay never dead-letters what it replays.
const REPLAY = `
local maxEvents, maxBytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local room = math.min(1000, maxEvents - redis.call('XLEN', KEYS[1]))
local bytes = tonumber(redis.call('GET', KEYS[2]) or '0')
local moved = 0
if room <= 0 then return 0 end
for _, d in ipairs(redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', room)) do
  local body = ''
  for i = 1, #d[2], 2 do if d[2][i] == 'e' then body = d[2][i + 1] end end
  if bytes + #body > maxBytes then break end
  if body ~= '' then
    redis.call('XADD', KEYS[1], '*', 't', now, 'e', body)
    redis.call('INCRBY', KEYS[2], #body)
    bytes = bytes + #body
  end
  redis.call('XDEL', KEYS[3], d[1])
  moved = moved + 1
end
return moved`;

type StreamEntry = [string, string[]];

const toEvent = ([id, fields]: StreamEntry): QueuedEvent => {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  return { pos: id, at: Number(f.t), body: f.e ?? '' };
};

export class RedisQueue implements EndpointQueue {
  readonly kind = 'redis' as const;
  private keys: ReturnType<typeof notificationKeys>;
  private lock: HeldLock | null = null;
  private holding = false;
  private lastCheck = 0;
  private claiming = false;
  private claimFrom = '0-0';
  private buffer: QueuedEvent[] = [];
  private wakers: (() => void)[] = [];
  private groupReady = false;
  private closed = false;

  constructor(private redis: RedisClient, readonly endpoint: string, readonly bounds: QueueBounds, private consumer: string, private log: Logger, private onDead: DeadLetterListener = () => {}) {
    this.keys = notificationKeys(endpoint);
  }

  async append(bodies: string[]): Promise<void> {
    if (bodies.length === 0) return;
    const k = this.keys;
    const b = this.bounds;
    const moved = await this.redis.eval(APPEND, 3, k.events, k.bytes, k.dead, b.maxEvents, b.maxBytes, b.maxAgeMs, b.maxDeadEvents, ...bodies) as number[];
    ['maxevents', 'maxbytes', 'maxage'].forEach((r, i) => { if (moved[i]) this.onDead(r, moved[i]); });
    for (const w of this.wakers.splice(0)) w();
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    try {
      await this.redis.xgroup('CREATE', this.keys.events, GROUP, '0', 'MKSTREAM');
    } catch (e) {
      if (!String((e as Error).message).includes('BUSYGROUP')) throw e;
    }
    this.groupReady = true;
  }

  /** Takes or keeps the endpoint's lock; false while another node delivers. */
  private async ensureOwner(): Promise<boolean> {
    if (this.lock && Date.now() - this.lastCheck > LOCK_TTL_MS / 5) {
      this.lastCheck = Date.now();
      if (!(await this.lock.stillHeld().catch(() => false))) {
        this.log.warn({ endpoint: this.endpoint }, 'notifications: lost the delivery lock of an endpoint (another node delivers it now)');
        await this.lock.release();
        this.lock = null;
        this.holding = false;
        this.buffer = [];
      }
    }
    if (this.lock) return true;
    this.lock = await holdRedisLock(this.redis, this.keys.lock, LOCK_TTL_MS);
    if (!this.lock) return false;
    this.holding = true;
    this.lastCheck = Date.now();
    await this.ensureGroup();
    // What a node before us read and did not acknowledge comes first, in order.
    this.claiming = true;
    this.claimFrom = '0-0';
    this.log.info({ endpoint: this.endpoint }, 'notifications: this node delivers the endpoint');
    return true;
  }

  async next(waitMs: number): Promise<QueuedEvent | null> {
    try {
      return await this.read(waitMs);
    } catch (e) {
      // A Redis that restarted empty has no group any more: make it again (and take the lock again).
      if (String((e as Error).message).includes('NOGROUP')) {
        this.groupReady = false;
        await this.ensureGroup();
        return null;
      }
      throw e;
    }
  }

  private async read(waitMs: number): Promise<QueuedEvent | null> {
    const until = Date.now() + waitMs;
    while (!this.closed) {
      if (!(await this.ensureOwner())) {
        await this.sleep(Math.max(0, until - Date.now()));
        return null;
      }
      if (this.buffer.length) return this.buffer.shift()!;
      if (this.claiming) {
        const [nextFrom, entries] = await this.redis.call('XAUTOCLAIM', this.keys.events, GROUP, this.consumer, '0', this.claimFrom, 'COUNT', String(BATCH)) as [string, (StreamEntry | null)[]];
        this.claimFrom = nextFrom;
        if (nextFrom === '0-0') this.claiming = false;
        for (const e of entries) if (e) this.buffer.push(toEvent(e));
        continue;
      }
      const got = await this.redis.xreadgroup('GROUP', GROUP, this.consumer, 'COUNT', BATCH, 'STREAMS', this.keys.events, '>') as [string, StreamEntry[]][] | null;
      const entries = got?.[0]?.[1] ?? [];
      for (const e of entries) this.buffer.push(toEvent(e));
      if (this.buffer.length) continue;
      const left = until - Date.now();
      if (left <= 0) return null;
      await this.sleep(Math.min(POLL_MS, left));
    }
    return null;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wakers.push(() => { clearTimeout(t); resolve(); });
    });
  }

  owned(): boolean { return this.holding && !this.closed; }

  async ack(e: QueuedEvent): Promise<void> {
    await this.redis.eval(ACK, 2, this.keys.events, this.keys.bytes, e.pos, Buffer.byteLength(e.body));
  }

  async deadLetter(e: QueuedEvent, reason: string): Promise<void> {
    const k = this.keys;
    const moved = await this.redis.eval(DEAD, 3, k.events, k.bytes, k.dead, e.pos, Buffer.byteLength(e.body), e.at, e.body, this.bounds.maxDeadEvents, reason) as number;
    if (moved) this.onDead(reason, 1);
  }

  async pending(): Promise<{ events: number; bytes: number }> {
    const [events, bytes] = await Promise.all([this.redis.xlen(this.keys.events), this.redis.get(this.keys.bytes)]);
    return { events, bytes: Number(bytes ?? 0) };
  }

  async listDead(limit: number): Promise<{ total: number; events: DeadEvent[] }> {
    const total = await this.redis.xlen(this.keys.dead);
    const rows = limit > 0 ? await this.redis.xrange(this.keys.dead, '-', '+', 'COUNT', limit) as StreamEntry[] : [];
    return {
      total,
      events: rows.map(([, fields]) => {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
        return { body: f.e ?? '', at: Number(f.t), deadAt: Number(f.deadat), reason: f.reason ?? '' };
      }),
    };
  }

  async replayDead(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.redis.eval(REPLAY, 3, this.keys.events, this.keys.bytes, this.keys.dead, this.bounds.maxEvents, this.bounds.maxBytes) as number;
      total += n;
      if (n < 1000) return total;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.wakers.splice(0)) w();
    this.holding = false;
    await this.lock?.release();
    this.lock = null;
  }
}
