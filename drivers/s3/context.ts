// What the S3 driver's parts share: the client, the bucket and the options
// every object is written with.
import type { S3Client, ServerSideEncryption, StorageClass, ObjectCannedACL } from '@aws-sdk/client-s3';

export interface ObjectOptions {
  ServerSideEncryption?: ServerSideEncryption;
  SSEKMSKeyId?: string;
  StorageClass?: StorageClass;
  ACL?: ObjectCannedACL;
  ContentType?: string;
}

export interface S3Context {
  client: S3Client;
  bucket: string;
  chunkSize: number;
  objectOptions: ObjectOptions;
  warnOnce(kind: string, message: string): void;
}
