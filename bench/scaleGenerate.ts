// A synthetic registry written straight in distribution's layout (no HTTP),
// for bench/scale.ts: R repositories, M manifests (images, indexes of two
// images, artifacts with a subject; about a fifth of the images untagged),
// B small layer blobs shared across repositories, a config blob per image,
// and one repository with `bigTags` tags. Deterministic for a seed, so a
// destructive measurement runs on a second copy generated the same way.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DriverContext, StorageDriver } from '../drivers/driver.js';
import { blobDataPath, layerLinkPath, referrerLinkPath, revisionLinkPath, tagCurrentLinkPath, tagIndexLinkPath } from '../lib/storage/paths.js';

export interface ScaleSize { name: string; repos: number; manifests: number; blobs: number; bigTags: number }

export const SIZES: Record<string, ScaleSize> = {
  // tiny: a smoke test of the bench itself, not a size to report.
  tiny: { name: 'tiny', repos: 3, manifests: 60, blobs: 200, bigTags: 300 },
  small: { name: 'small', repos: 20, manifests: 1_000, blobs: 5_000, bigTags: 10_000 },
  medium: { name: 'medium', repos: 100, manifests: 10_000, blobs: 50_000, bigTags: 10_000 },
  large: { name: 'large', repos: 200, manifests: 25_000, blobs: 100_000, bigTags: 10_000 },
};

/** Where generated files go: a directory (plain writes, no sync: a bench fixture) or a driver (an object store). */
export type Sink = (path: string, data: Buffer) => Promise<void>;

export function dirSink(root: string): Sink {
  const made = new Set<string>();
  return async (path, data) => {
    const file = join(root, path);
    const d = dirname(file);
    if (!made.has(d)) { await mkdir(d, { recursive: true }); made.add(d); }
    await writeFile(file, data);
  };
}

/** Straight into s3rver's folder for a bucket, in its on-disk format (the
 *  object, its MD5 and its metadata beside it), as our s3 driver would store
 *  the path under rootdirectory: the same bucket in seconds where writing
 *  through s3rver's HTTP took minutes (s3rver must not be serving the bucket
 *  yet, or it must re-read it: it keeps nothing in memory). */
export function s3rverSink(bucketDir: string, rootdirectory: string): Sink {
  const files = dirSink(join(bucketDir, rootdirectory.replace(/^\/+|\/+$/g, '')));
  const meta = Buffer.from(JSON.stringify({ 'content-type': 'application/octet-stream' }, null, 2));
  return async (path, data) => {
    await files(`${path}._S3rver_object`, data);
    await files(`${path}._S3rver_object.md5`, Buffer.from(createHash('md5').update(data).digest('hex')));
    await files(`${path}._S3rver_metadata.json`, meta);
  };
}

export function driverSink(driver: StorageDriver): Sink {
  const ctx: DriverContext = { requestId: 'scale-generate' } as DriverContext;
  return (path, data) => driver.putContent(ctx, path, data);
}

/** mulberry32: small, fast, good enough to pick shapes. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Generated {
  /** Repository names, sorted. */
  repos: string[];
  /** The repository with bigTags tags, and one of its tags. */
  bigRepo: string;
  bigTag: string;
  /** A manifest of the big repository that its tags point to (DELETE target). */
  bigManifest: string;
  /** Files written. */
  files: number;
  /** What a --delete-untagged collection should find (for a sanity check). */
  untaggedImages: number;
}

/** Runs fn over items, at most `limit` at once. */
async function each<T>(items: T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]);
  }));
}

export async function generate(size: ScaleSize, sink: Sink, seed = 1, concurrency = 32): Promise<Generated> {
  const rand = rng(seed);
  const files: [string, Buffer][] = [];
  let written = 0;
  const flush = async () => {
    const batch = files.splice(0);
    await each(batch, concurrency, ([p, d]) => sink(p, d));
    written += batch.length;
  };
  const put = async (p: string, d: Buffer) => { files.push([p, d]); if (files.length >= 4096) await flush(); };
  const link = (p: string, dgst: string) => put(p, Buffer.from(dgst));

  // The shared layer pool.
  const layers: { digest: string; size: number }[] = [];
  for (let i = 0; i < size.blobs; i++) {
    const data = Buffer.alloc(64 + Math.floor(rand() * 192));
    for (let j = 0; j < data.length; j += 4) data.writeUInt32LE((rand() * 0xffffffff) >>> 0, Math.min(j, data.length - 4));
    data.write(`layer-${seed}-${i}`, 0);
    const digest = sha(data);
    layers.push({ digest, size: data.length });
    await put(blobDataPath(digest), data);
  }
  const repos = Array.from({ length: size.repos }, (_, i) => `scale/repo-${String(i).padStart(4, '0')}`);
  const bigRepo = repos[0];
  const perRepo = Math.ceil(size.manifests / size.repos);
  let made = 0;
  let untaggedImages = 0;
  let bigManifest = '';
  const storeManifest = async (repo: string, body: object, tag?: string) => {
    const data = Buffer.from(JSON.stringify(body));
    const digest = sha(data);
    await put(blobDataPath(digest), data);
    await link(revisionLinkPath(repo, digest), digest);
    if (tag) {
      await link(tagCurrentLinkPath(repo, tag), digest);
      await link(tagIndexLinkPath(repo, tag, digest), digest);
    }
    made++;
    return { digest, size: data.length };
  };
  for (const repo of repos) {
    const tagged: string[] = [];
    for (let k = 0; k < perRepo && made < size.manifests; k++) {
      const kind = rand();
      const image = async (tag?: string) => {
        const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed, repo, k, r: rand() }));
        const cd = sha(config);
        await put(blobDataPath(cd), config);
        await link(layerLinkPath(repo, cd), cd);
        const picked = Array.from({ length: 2 + Math.floor(rand() * 3) }, () => layers[Math.floor(rand() * layers.length)]);
        for (const l of picked) await link(layerLinkPath(repo, l.digest), l.digest);
        return storeManifest(repo, {
          schemaVersion: 2, mediaType: OCI_MANIFEST,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length },
          layers: picked.map((l) => ({ mediaType: LAYER, digest: l.digest, size: l.size })),
        }, tag);
      };
      if (kind < 0.1 && made + 3 <= size.manifests) {
        // An index of two images, tagged; its images are untagged but kept by it.
        const a = await image();
        const b = await image();
        await storeManifest(repo, {
          schemaVersion: 2, mediaType: OCI_INDEX,
          manifests: [a, b].map((m, i) => ({ mediaType: OCI_MANIFEST, digest: m.digest, size: m.size, platform: { architecture: i ? 'arm64' : 'amd64', os: 'linux' } })),
        }, `index-${k}`);
      } else if (kind < 0.2 && tagged.length) {
        // An artifact (a signature, say) whose subject is a tagged image: kept with it.
        const subject = tagged[Math.floor(rand() * tagged.length)];
        const empty = Buffer.from('{}');
        const ed = sha(empty);
        await put(blobDataPath(ed), empty);
        await link(layerLinkPath(repo, ed), ed);
        const sig = Buffer.from(`signature ${repo} ${k} ${rand()}`);
        const sd = sha(sig);
        await put(blobDataPath(sd), sig);
        await link(layerLinkPath(repo, sd), sd);
        const subj = JSON.parse(subject) as { digest: string; size: number };
        const m = await storeManifest(repo, {
          schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example.signature',
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: ed, size: empty.length },
          layers: [{ mediaType: 'application/vnd.example.signature', digest: sd, size: sig.length }],
          subject: { mediaType: OCI_MANIFEST, digest: subj.digest, size: subj.size },
        });
        await link(referrerLinkPath(repo, subj.digest, m.digest), m.digest);
      } else if (kind < 0.38) {
        await image();
        untaggedImages++;
      } else {
        const m = await image(`v${k}`);
        tagged.push(JSON.stringify(m));
      }
    }
    if (repo === bigRepo) {
      // Many tags over a few manifests, as CI pipelines leave them.
      const targets = tagged.slice(0, 10).map((t) => (JSON.parse(t) as { digest: string }).digest);
      bigManifest = targets[0];
      for (let t = 0; t < size.bigTags; t++) {
        const d = targets[t % targets.length];
        await link(tagCurrentLinkPath(repo, `build-${t}`), d);
        await link(tagIndexLinkPath(repo, `build-${t}`, d), d);
      }
    }
  }
  await flush();
  return { repos, bigRepo, bigTag: 'build-1', bigManifest, files: written, untaggedImages };
}
