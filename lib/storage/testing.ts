// For the storage layer's unit tests: small distinct manifests that need no blobs (put with skipReferences).
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** An artifact manifest, distinct for each n. */
export const artifactManifest = (n: number) => Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example',
  config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${'4'.repeat(64)}`, size: 2 },
  layers: [], annotations: { n: String(n) },
}));
