// Turns what storage did for one request into distribution's events (its
// notifications/bridge.go): manifest push, pull and delete, blob push, pull,
// mount and delete, tag delete. Writes are recorded durably before the
// client's answer; pulls are queued without waiting for the disk (a crash can
// lose the last few milliseconds of pull events, never a push).
import { parseManifest } from '../storage/manifestParse.js';
import { type ActorRecord, type DescriptorRecord, type EventAction, type EventTarget, type RequestRecord, createEvent, descriptorRecord, orderedTarget } from './event.js';
import type { Notifier } from './notifier.js';

/** distribution reports every blob as application/octet-stream. */
const BLOB_TYPE = 'application/octet-stream';

export interface ManifestFacts { digest: string; mediaType: string; content: Buffer }

export class Bridge {
  constructor(private notifier: Notifier, private request: RequestRecord, private actor: ActorRecord, private url: (path: string) => string) {}

  private record(action: EventAction, target: EventTarget, durable: boolean): Promise<void> {
    return this.notifier.record([createEvent(action, orderedTarget(target), this.request, this.actor, this.notifier.source)], durable);
  }

  private manifestTarget(repo: string, m: ManifestFacts, tag?: string): EventTarget {
    const t: EventTarget = { mediaType: m.mediaType, size: m.content.length, digest: m.digest, length: m.content.length, repository: repo, url: this.url(`/v2/${repo}/manifests/${m.digest}`), tag };
    if (this.notifier.includeReferences) t.references = references(m);
    return t;
  }

  private blobTarget(repo: string, desc: { digest: string; size: number }): EventTarget {
    return { mediaType: BLOB_TYPE, size: desc.size, digest: desc.digest, length: desc.size, repository: repo, url: this.url(`/v2/${repo}/blobs/${desc.digest}`) };
  }

  manifestPushed(repo: string, m: ManifestFacts, tag?: string): Promise<void> {
    return this.record('push', this.manifestTarget(repo, m, tag), true);
  }

  manifestPulled(repo: string, m: ManifestFacts, tag?: string): Promise<void> {
    return this.record('pull', this.manifestTarget(repo, m, tag), false);
  }

  manifestDeleted(repo: string, digest: string): Promise<void> {
    return this.record('delete', { digest, repository: repo }, true);
  }

  tagDeleted(repo: string, tag: string): Promise<void> {
    return this.record('delete', { repository: repo, tag }, true);
  }

  blobPushed(repo: string, desc: { digest: string; size: number }): Promise<void> {
    return this.record('push', this.blobTarget(repo, desc), true);
  }

  blobPulled(repo: string, desc: { digest: string; size: number }): Promise<void> {
    return this.record('pull', this.blobTarget(repo, desc), false);
  }

  blobMounted(repo: string, desc: { digest: string; size: number }, from: string): Promise<void> {
    return this.record('mount', { ...this.blobTarget(repo, desc), fromRepository: from }, true);
  }

  blobDeleted(repo: string, digest: string): Promise<void> {
    return this.record('delete', { digest, repository: repo }, true);
  }
}

/** What the manifest references, as distribution's Manifest.References():
 *  an image's config and layers, an index's manifests (without platforms). */
function references(m: ManifestFacts): DescriptorRecord[] {
  try {
    const p = parseManifest(m.content, m.mediaType);
    return [...p.blobs, ...p.manifests].map(descriptorRecord);
  } catch {
    return [];
  }
}
