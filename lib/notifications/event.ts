// distribution's notification event and its envelope, field for field
// (notifications/event.go): the same names, the same omissions of empty
// fields, the same body layout (Go's MarshalIndent with three spaces and its
// HTML escaping), so that consumers written for distribution read ours.
import { randomUUID } from 'node:crypto';

export type EventAction = 'push' | 'pull' | 'mount' | 'delete';

/** distribution 3's envelope media type (2.8 sent ...events.v1+json with the same body). */
export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v2+json';

export interface DescriptorRecord {
  mediaType?: string;
  size?: number;
  digest?: string;
  urls?: string[];
  annotations?: Record<string, string>;
}

export interface EventTarget extends DescriptorRecord {
  length?: number;
  repository?: string;
  fromRepository?: string;
  url?: string;
  tag?: string;
  references?: DescriptorRecord[];
}

export interface RequestRecord { id: string; addr?: string; host?: string; method: string; useragent: string }
export interface ActorRecord { name?: string }
export interface SourceRecord { addr?: string; instanceID?: string }

export interface RegistryEvent {
  id: string;
  timestamp: string;
  action: EventAction;
  target: EventTarget;
  request: RequestRecord;
  actor: ActorRecord;
  source: SourceRecord;
}

// Wall-clock nanoseconds from a monotonic clock anchored once: Go's
// timestamps carry nanoseconds, and events of one request stay ordered.
const anchorNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

/** Now, as Go's RFC3339Nano prints a UTC time: trailing zeros of the fraction dropped. */
export function timestamp(): string {
  const ns = anchorNs + process.hrtime.bigint();
  const ms = Number(ns / 1_000_000n);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${new Date(ms).toISOString().slice(0, 19)}${frac ? `.${frac}` : ''}Z`;
}

/** A descriptor as distribution's JSON has it: mediaType, size, digest, then the optional fields; empty ones left out. */
export function descriptorRecord(d: { mediaType?: string; size?: number; digest?: string; urls?: string[]; annotations?: Record<string, string> }): DescriptorRecord {
  const r: DescriptorRecord = {};
  if (d.mediaType) r.mediaType = d.mediaType;
  if (d.size) r.size = d.size;
  if (d.digest) r.digest = d.digest;
  if (d.urls?.length) r.urls = d.urls;
  if (d.annotations && Object.keys(d.annotations).length) r.annotations = d.annotations;
  return r;
}

/** A new event: a random UUID, as distribution's. */
export function createEvent(action: EventAction, target: EventTarget, request: RequestRecord, actor: ActorRecord, source: SourceRecord): RegistryEvent {
  return { id: randomUUID(), timestamp: timestamp(), action, target, request, actor, source };
}

/** Orders a target's fields as distribution's struct does (a consumer diffing bodies sees no change). */
export function orderedTarget(t: EventTarget): EventTarget {
  const o: EventTarget = { ...descriptorRecord(t) };
  if (t.length) o.length = t.length;
  if (t.repository) o.repository = t.repository;
  if (t.fromRepository) o.fromRepository = t.fromRepository;
  if (t.url) o.url = t.url;
  if (t.tag) o.tag = t.tag;
  if (t.references?.length) o.references = t.references;
  return o;
}

// encoding/json escapes these inside strings unless told not to.
const GO_ESCAPES = /[<>&\u2028\u2029]/g;
const goEscape = (json: string) => json.replace(GO_ESCAPES, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** The POST body distribution sends: {"events": [...]}, indented by three spaces. */
export function envelope(events: RegistryEvent[]): string {
  return goEscape(JSON.stringify({ events }, null, 3));
}
