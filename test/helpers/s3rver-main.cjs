// Runs s3rver for the tests with one fix: its delimiter listing prunes every
// folder below a common prefix before looking inside, so a "directory" that
// holds only directories (a tag: current/ and index/) is never reported. Real
// S3 reports it. We list without the delimiter and fold the keys ourselves.
// A second fix: its ListObjectsV2 KeyCount counts only objects, where S3's
// counts common prefixes too; distribution's walk takes a listing whose
// KeyCounts add up to 0 for a missing path, so its catalog and
// garbage-collect failed on repositories that hold only folders.
// Usage: node --openssl-legacy-provider s3rver-main.cjs DIR PORT
'use strict';
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

const listObjects = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function (bucket, options) {
  if (!options.delimiter) return listObjects.call(this, bucket, options);
  const { delimiter, prefix = '', maxKeys = Infinity, startAfter = '' } = options;
  const all = await listObjects.call(this, bucket, { prefix, startAfter });
  const objects = [];
  const prefixes = new Set();
  let count = 0;
  let isTruncated = false;
  for (const o of all.objects) {
    const idx = o.key.slice(prefix.length).indexOf(delimiter);
    const cp = idx === -1 ? null : o.key.slice(0, prefix.length + idx + 1);
    if (cp && prefixes.has(cp)) continue;
    if (count >= maxKeys) { isTruncated = true; break; }
    count++;
    if (cp) prefixes.add(cp); else objects.push(o);
  }
  return { objects, commonPrefixes: [...prefixes].sort(), isTruncated };
};

const bucketCtrl = require('s3rver/lib/controllers/bucket');
const getBucket = bucketCtrl.getBucket;
bucketCtrl.getBucket = async function (ctx) {
  await getBucket.call(this, ctx);
  const r = ctx.body && ctx.body.ListBucketResult;
  if (r && r.KeyCount !== undefined && Array.isArray(r.CommonPrefixes)) r.KeyCount += r.CommonPrefixes.length;
};

const [dir, port] = process.argv.slice(2);
new S3rver({ directory: dir, address: '127.0.0.1', port: Number(port), silent: true, vhostBuckets: false })
  .run()
  .catch((e) => { console.error(e); process.exit(1); });
