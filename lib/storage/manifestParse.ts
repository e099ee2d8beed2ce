// Parses and checks a manifest's shape. What it references is checked by the
// manifest store against the repository.
import { parseDigest } from '../digest.js';
import { err } from '../errors.js';
import { MT, isIndexType } from './mediaTypes.js';

export interface ManifestDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: unknown;
}

export interface ParsedManifest {
  mediaType: string;
  /** Blobs the manifest needs in the repository (config, layers). */
  blobs: ManifestDescriptor[];
  /** Child manifests (index / manifest list). */
  manifests: ManifestDescriptor[];
  subject?: ManifestDescriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  configMediaType?: string;
}

const invalid = (message: string) => err('MANIFEST_INVALID', `manifest invalid: ${message}`, { reason: message });

function descriptor(v: unknown, where: string): ManifestDescriptor {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${where} must be a descriptor object`);
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw invalid(`${where}.mediaType must be a non-empty string`);
  if (typeof d.digest !== 'string' || !parseDigest(d.digest)) throw invalid(`${where}.digest is not a valid digest: ${String(d.digest).slice(0, 200)}`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  if (d.urls !== undefined && (!Array.isArray(d.urls) || d.urls.some((u) => typeof u !== 'string'))) throw invalid(`${where}.urls must be an array of strings`);
  if (d.annotations !== undefined && !isStringMap(d.annotations)) throw invalid(`${where}.annotations must map strings to strings`);
  if (d.artifactType !== undefined && typeof d.artifactType !== 'string') throw invalid(`${where}.artifactType must be a string`);
  return d as unknown as ManifestDescriptor;
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

/** Picks the manifest's media type from its body and the request's Content-Type. */
export function manifestMediaType(body: Record<string, unknown>, contentType: string | undefined): string {
  const declared = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  const ct = contentType?.split(';')[0].trim().toLowerCase();
  const specific = ct && ct !== 'application/json' && ct !== 'application/octet-stream' ? ct : undefined;
  if (declared && specific && declared !== specific) {
    throw invalid(`mediaType ${declared} in the body does not match Content-Type ${specific}`);
  }
  if (declared) return declared;
  if (specific) return specific;
  if (body.schemaVersion === 1) return MT.dockerSchema1;
  if (Array.isArray(body.manifests)) return MT.ociIndex;
  return MT.ociManifest;
}

export function parseManifest(content: Buffer, contentType: string | undefined): ParsedManifest {
  let body: unknown;
  try {
    body = JSON.parse(content.toString('utf8'));
  } catch (e) {
    throw invalid(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('must be a JSON object');
  const m = body as Record<string, unknown>;
  const mediaType = manifestMediaType(m, contentType);
  if (mediaType === MT.dockerSchema1 || mediaType === MT.dockerSchema1Signed || m.schemaVersion === 1) {
    throw invalid('Docker schema1 manifests are not supported; push with a client that writes schema2 or OCI manifests');
  }
  if (m.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  // distribution's schema2 and manifest-list parsers require the media type in
  // the body: without it the same bytes would read as OCI once the request's
  // Content-Type is forgotten.
  if ((mediaType === MT.dockerManifest || mediaType === MT.dockerManifestList) && m.mediaType !== mediaType) {
    throw invalid(`a Docker ${mediaType === MT.dockerManifest ? 'image manifest' : 'manifest list'} must say "mediaType": "${mediaType}" in its body`);
  }
  const out: ParsedManifest = { mediaType, blobs: [], manifests: [] };
  if (m.subject !== undefined) out.subject = descriptor(m.subject, 'subject');
  if (m.artifactType !== undefined) {
    if (typeof m.artifactType !== 'string' || m.artifactType === '') throw invalid('artifactType must be a non-empty string');
    out.artifactType = m.artifactType;
  }
  if (m.annotations !== undefined) {
    if (!isStringMap(m.annotations)) throw invalid('annotations must map strings to strings');
    out.annotations = m.annotations;
  }

  if (isIndexType(mediaType)) {
    if (!Array.isArray(m.manifests)) throw invalid('manifests must be an array');
    out.manifests = m.manifests.map((d, i) => descriptor(d, `manifests[${i}]`));
    return out;
  }
  if (mediaType === MT.ociManifest || mediaType === MT.dockerManifest) {
    if (m.manifests !== undefined) throw invalid('an image manifest has no manifests field');
    const config = descriptor(m.config, 'config');
    out.configMediaType = config.mediaType;
    if (!Array.isArray(m.layers)) throw invalid('layers must be an array');
    const layers = m.layers.map((d, i) => descriptor(d, `layers[${i}]`));
    if (mediaType === MT.dockerManifest && layers.length === 0) throw invalid('a Docker image manifest needs at least one layer');
    out.blobs = [config, ...layers];
    return out;
  }
  throw invalid(`unsupported manifest media type ${mediaType.slice(0, 200)}`);
}
