// distribution's on-storage layout (registry/storage/paths.go), byte for byte.
import { parseDigest } from '../digest.js';

export const ROOT = '/docker/registry/v2';

function split(dgst: string): { alg: string; hex: string } {
  const d = parseDigest(dgst);
  if (!d) throw new Error(`invalid digest in path: ${dgst}`);
  return { alg: d.algorithm, hex: d.hex };
}

export const blobsRoot = () => `${ROOT}/blobs`;
export function blobDir(dgst: string): string {
  const { alg, hex } = split(dgst);
  return `${ROOT}/blobs/${alg}/${hex.slice(0, 2)}/${hex}`;
}
export const blobDataPath = (dgst: string) => `${blobDir(dgst)}/data`;

export const repositoriesRoot = () => `${ROOT}/repositories`;
export const repoRoot = (name: string) => `${ROOT}/repositories/${name}`;

export function layerLinkPath(name: string, dgst: string): string {
  const { alg, hex } = split(dgst);
  return `${repoRoot(name)}/_layers/${alg}/${hex}/link`;
}
export const layersRoot = (name: string) => `${repoRoot(name)}/_layers`;

export const manifestsRoot = (name: string) => `${repoRoot(name)}/_manifests`;
export const revisionsRoot = (name: string) => `${manifestsRoot(name)}/revisions`;
export function revisionLinkPath(name: string, dgst: string): string {
  const { alg, hex } = split(dgst);
  return `${revisionsRoot(name)}/${alg}/${hex}/link`;
}

export const tagsRoot = (name: string) => `${manifestsRoot(name)}/tags`;
export const tagDir = (name: string, tag: string) => `${tagsRoot(name)}/${tag}`;
export const tagCurrentLinkPath = (name: string, tag: string) => `${tagDir(name, tag)}/current/link`;
export function tagIndexLinkPath(name: string, tag: string, dgst: string): string {
  const { alg, hex } = split(dgst);
  return `${tagDir(name, tag)}/index/${alg}/${hex}/link`;
}

// Ours: digest -> tags that pointed at it, one empty file per tag, so a
// manifest DELETE reads the tags of its own digest instead of every tag of
// the repository. `_`-prefixed, so distribution's catalog and garbage-collect
// never look inside; the marker says the index holds every current tag
// (docs/storage-layout.md).
export const tagDigestIndexRoot = (name: string) => `${repoRoot(name)}/_tagindex`;
export const tagDigestIndexMarkerPath = (name: string) => `${tagDigestIndexRoot(name)}/complete`;
export function tagDigestIndexDir(name: string, dgst: string): string {
  const { alg, hex } = split(dgst);
  return `${tagDigestIndexRoot(name)}/digests/${alg}/${hex}`;
}
export const tagDigestIndexEntryPath = (name: string, dgst: string, tag: string) => `${tagDigestIndexDir(name, dgst)}/${tag}`;

export const uploadsRoot = (name: string) => `${repoRoot(name)}/_uploads`;
export const uploadDir = (name: string, id: string) => `${uploadsRoot(name)}/${id}`;
export const uploadDataPath = (name: string, id: string) => `${uploadDir(name, id)}/data`;
export const uploadStartedAtPath = (name: string, id: string) => `${uploadDir(name, id)}/startedat`;
export const uploadHashStatesDir = (name: string, id: string, alg: string) => `${uploadDir(name, id)}/hashstates/${alg}`;
export const uploadHashStatePath = (name: string, id: string, alg: string, offset: number) =>
  `${uploadHashStatesDir(name, id, alg)}/${offset}`;

// Referrers follow distribution's open referrers pull requests: one link per
// referrer, grouped by subject, under the repository's _referrers folder.
export function referrersDir(name: string, subject: string): string {
  const { alg, hex } = split(subject);
  return `${repoRoot(name)}/_referrers/subjects/${alg}/${hex}`;
}
export function referrerLinkPath(name: string, subject: string, referrer: string): string {
  const { alg, hex } = split(referrer);
  return `${referrersDir(name, subject)}/${alg}/${hex}/link`;
}

// Ours, for pull-through mode (distribution keeps one scheduler-state.json
// instead): when each proxied blob and manifest was last pulled, one small
// file each (its modification time is the pull time, its content the size),
// outside repositories/ and blobs/ so distribution never reads it.
export const proxyRecordsRoot = () => `${ROOT}/_proxy/records`;
export function proxyRecordPath(name: string, kind: 'blob' | 'manifest', dgst: string): string {
  const { alg, hex } = split(dgst);
  return `${proxyRecordsRoot()}/${name}/${kind === 'blob' ? '_blobs' : '_manifests'}/${alg}/${hex}`;
}
