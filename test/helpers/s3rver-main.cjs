// Runs s3rver for the tests with three fixes: its delimiter listing prunes every
// folder below a common prefix before looking inside, so a "directory" that
// holds only directories (a tag: current/ and index/) is never reported. Real
// S3 reports it. We list without the delimiter and fold the keys ourselves.
// A second fix: its ListObjectsV2 KeyCount counts only objects, where S3's
// counts common prefixes too; distribution's walk takes a listing whose
// KeyCounts add up to 0 for a missing path, so its catalog and
// garbage-collect failed on repositories that hold only folders. A third:
// it ran out of file descriptors under parallel listings (below). A fourth:
// its PUT overwrote an object's file in place, and answered a small PUT before
// the bytes were written; a GET racing it read an empty or half-written
// object, or was cut off mid-body when the file shrank under it. S3's PUT is
// atomic: the object is written beside and renamed over (below).
// Usage: node --openssl-legacy-provider s3rver-main.cjs DIR PORT
'use strict';
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

const listObjects = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function (bucket, options) {
  if (!options.delimiter) return listObjects.call(this, bucket, options);
  const { delimiter, prefix = '', maxKeys = Infinity } = options;
  const objects = [];
  const prefixes = new Set();
  let count = 0;
  let isTruncated = false;
  let after = options.startAfter || '';
  let resume = null; // where the next page starts: the last object, or past the last folder
  // Page through the keys below the prefix (a listing of everything at once
  // read the metadata of every key at once), skipping past each folded folder.
  for (let done = false; !done;) {
    const page = await listObjects.call(this, bucket, { prefix, startAfter: after, maxKeys: 500 });
    for (const o of page.objects) {
      after = o.key;
      const idx = o.key.slice(prefix.length).indexOf(delimiter);
      const cp = idx === -1 ? null : o.key.slice(0, prefix.length + idx + 1);
      if (cp && prefixes.has(cp)) continue;
      if (count >= maxKeys) { isTruncated = true; done = true; break; }
      count++;
      if (cp) prefixes.add(cp); else objects.push(o);
      resume = cp ? `${cp}~` : null;
    }
    if (!page.isTruncated) done = true;
  }
  // s3rver makes the continuation token (and V1's NextMarker) of the last
  // object: a page that ends on a folder (or holds only folders: it failed
  // with a TypeError) gets a placeholder there, `<folder>/~`, past every key
  // in the folder ('~' sorts after every character of the registry's paths;
  // it must be legal in XML), taken out of the answer below.
  if (isTruncated && resume) objects.push({ key: resume, placeholder: true, lastModifiedDate: new Date(0), metadata: {}, size: 0 });
  return { objects, commonPrefixes: [...prefixes].sort(), isTruncated };
};

// s3rver reads each listed key's metadata (three files) all at once: a few
// listings of 1,000 keys in parallel ran it out of file descriptors (EMFILE,
// answered as InternalError). At most 256 metadata reads at a time.
const getMetadata = FilesystemStore.prototype.getMetadata;
let active = 0;
const waiting = [];
FilesystemStore.prototype.getMetadata = async function (...args) {
  if (active >= 256) await new Promise((r) => waiting.push(r)); else active++;
  try {
    return await getMetadata.apply(this, args);
  } finally {
    const next = waiting.shift();
    if (next) next(); else active--;
  }
};

// Atomic PUT: the content goes to a temporary file beside the object (its
// name lacks the object suffix, so listings skip it), which is renamed over
// the object once written; the metadata files likewise.
const crypto = require('crypto');
const fs = require('fs-extra');
const path = require('path');
const { pipeline, Transform } = require('stream');
const tmpName = (p) => `${p}.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
async function writeAtomic(file, data) {
  const tmp = tmpName(file);
  await fs.writeFile(tmp, data);
  await fs.rename(tmp, file);
}
FilesystemStore.prototype.putObject = async function (object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await fs.mkdirp(path.dirname(objectPath));
  const tmp = tmpName(objectPath);
  const md5Context = crypto.createHash('md5');
  let size = 0;
  try {
    if (Buffer.isBuffer(object.content)) {
      md5Context.update(object.content);
      size = object.content.length;
      await fs.writeFile(tmp, object.content);
    } else {
      await new Promise((resolve, reject) => pipeline(
        object.content,
        new Transform({ transform(chunk, enc, cb) { md5Context.update(chunk); size += chunk.length; cb(null, chunk); } }),
        fs.createWriteStream(tmp),
        (err) => (err ? reject(err) : resolve()),
      ));
    }
    await fs.rename(tmp, objectPath);
  } catch (err) {
    await fs.remove(tmp).catch(() => {});
    throw err;
  }
  const md5 = md5Context.digest('hex');
  await this.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size, md5 };
};
// CopyObject (fs-extra's copy, used by s3rver only for it) likewise.
const copy = fs.copy;
fs.copy = async function (src, dest, ...rest) {
  const tmp = tmpName(dest);
  try {
    await copy.call(this, src, tmp, ...rest);
    await fs.rename(tmp, dest);
  } catch (err) {
    await fs.remove(tmp).catch(() => {});
    throw err;
  }
};
const S3Object = require('s3rver/lib/models/object');
FilesystemStore.prototype.putMetadata = async function (bucket, key, metadata, md5) {
  const json = {};
  for (const [k, v] of Object.entries(metadata || {})) {
    if (S3Object.ALLOWED_METADATA.includes(k) || k.startsWith('x-amz-meta-')) json[k] = v;
  }
  if (md5) await writeAtomic(this.getResourcePath(bucket, key, 'object.md5'), md5);
  await writeAtomic(this.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(json, null, 2));
};

const bucketCtrl = require('s3rver/lib/controllers/bucket');
const getBucket = bucketCtrl.getBucket;
bucketCtrl.getBucket = async function (ctx) {
  await getBucket.call(this, ctx);
  const r = ctx.body && ctx.body.ListBucketResult;
  if (r && Array.isArray(r.Contents)) {
    const kept = r.Contents.filter((c) => !c.Key.endsWith('/~'));
    if (r.KeyCount !== undefined) r.KeyCount -= r.Contents.length - kept.length;
    r.Contents = kept;
  }
  if (r && r.KeyCount !== undefined && Array.isArray(r.CommonPrefixes)) r.KeyCount += r.CommonPrefixes.length;
};

const [dir, port] = process.argv.slice(2);
new S3rver({ directory: dir, address: '127.0.0.1', port: Number(port), silent: true, vhostBuckets: false })
  .run()
  .catch((e) => { console.error(e); process.exit(1); });
