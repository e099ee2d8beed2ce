// The registry on the s3 driver, on s3rver.
import { S3RVER_KEY, S3RVER_SECRET, startS3rver } from '../helpers/s3rver.js';
import { cloudRegistrySuite } from './cloudSuite.js';

cloudRegistrySuite('s3 (s3rver)', async () => {
  const s3 = await startS3rver();
  const bucket = await s3.bucket();
  return {
    storageYaml: (redirect) => `  s3:\n    region: us-east-1\n    regionendpoint: ${s3.endpoint}\n    bucket: ${bucket}\n    accesskey: ${S3RVER_KEY}\n    secretkey: ${S3RVER_SECRET}\n    rootdirectory: /reg\n  redirect:\n    disable: ${!redirect}\n`,
    redirectPrefix: `${s3.endpoint}/${bucket}/reg/docker/registry/v2/blobs/`,
    signatureMark: 'X-Amz-Signature=',
    canRedirect: true,
    stop: () => s3.stop(),
  };
});
