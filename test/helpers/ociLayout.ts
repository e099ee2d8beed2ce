// Generates OCI image layouts on disk (no network, nothing committed): real
// gzipped tar layers, config, manifest, and multi-arch indexes.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface Blob { digest: string; size: number; mediaType: string; data: Buffer }

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A one-file ustar archive. */
export function tarWithFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(content.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write(Math.floor(Date.now() / 1000).toString(8).padStart(11, '0') + '\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, pad, Buffer.alloc(1024)]);
}

export function blob(data: Buffer, mediaType: string): Blob {
  return { digest: sha256(data), size: data.length, mediaType, data };
}

export function layer(bytes: number): Blob {
  return blob(gzipSync(tarWithFile(`file-${randomBytes(4).toString('hex')}`, randomBytes(bytes))), 'application/vnd.oci.image.layer.v1.tar+gzip');
}

export interface Image { manifest: Blob; config: Blob; layers: Blob[] }

export function image(layerCount: number, arch = 'amd64', layerBytes = 2048): Image {
  const layers = Array.from({ length: layerCount }, () => layer(layerBytes));
  const config = blob(Buffer.from(JSON.stringify({
    architecture: arch, os: 'linux', created: new Date().toISOString(),
    config: { Env: ['PATH=/usr/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map(() => sha256(randomBytes(8))) },
  })), 'application/vnd.oci.image.config.v1+json');
  const manifest = blob(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  })), 'application/vnd.oci.image.manifest.v1+json');
  return { manifest, config, layers };
}

export function index(images: { img: Image; arch: string }[]): Blob {
  return blob(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: images.map(({ img, arch }) => ({
      mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size,
      platform: { architecture: arch, os: 'linux' },
    })),
  })), 'application/vnd.oci.image.index.v1+json');
}

/** Writes an OCI layout with one top-level entry (an image or an index) tagged ref. */
export async function writeLayout(dir: string, top: Blob, blobs: Blob[], ref = 'latest'): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const b of [top, ...blobs]) await writeFile(join(dir, 'blobs', 'sha256', b.digest.slice(7)), b.data);
  await writeFile(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.size, annotations: { 'org.opencontainers.image.ref.name': ref } }],
  }));
}

export const imageBlobs = (img: Image): Blob[] => [img.config, ...img.layers, img.manifest];
