// What an endpoint's durable queue does, whichever store holds it: the disk
// spool (one node) or a Redis stream (the cluster). Events are kept as their
// JSON text; the queue never parses them.
import type { QueueBounds } from '../config/config.js';

export interface QueuedEvent {
  /** Where the event is in its queue (a stream id, a file offset). */
  pos: string;
  /** The event's JSON. */
  body: string;
  /** When it was queued (ms since the epoch). */
  at: number;
}

export interface DeadEvent {
  /** The event's JSON. */
  body: string;
  at: number;
  deadAt: number;
  /** maxevents, maxbytes, maxage (bounds) or the delivery's last failure. */
  reason: string;
}

/** Told when events leave the queue undelivered. */
export type DeadLetterListener = (reason: string, count: number) => void;

export interface EndpointQueue {
  readonly kind: 'disk' | 'redis';
  readonly bounds: QueueBounds;
  /** Queues events; resolves once they are durable (or, with durable false, once written). */
  append(bodies: string[], durable: boolean): Promise<void>;
  /** The next undelivered event, waiting up to waitMs; null if none came, or
   *  this node does not deliver this endpoint now (another node does). */
  next(waitMs: number): Promise<QueuedEvent | null>;
  /** The event was delivered: it leaves the queue. */
  ack(e: QueuedEvent): Promise<void>;
  /** The event will not be delivered: it goes to the dead-letter record. */
  deadLetter(e: QueuedEvent, reason: string): Promise<void>;
  /** False once another node may have taken over delivery (stop retrying). */
  owned(): boolean;
  /** Events and bytes waiting. */
  pending(): Promise<{ events: number; bytes: number }>;
  /** Dead-lettered events, oldest first, at most limit. */
  listDead(limit: number): Promise<{ total: number; events: DeadEvent[] }>;
  /** Puts every dead-lettered event back at the queue's end; returns how many. */
  replayDead(): Promise<number>;
  close(): Promise<void>;
}
