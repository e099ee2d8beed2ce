// Builds a driver from the config's storage section.
// Only the configured driver's module is loaded: each cloud SDK costs 0.2 to
// 0.3 s and 20 to 30 MiB at start, which every maintenance command and every
// node paid for all three (docs/performance.md).
import { Base } from './base.js';
import type { DriverObserver, StorageDriver } from './driver.js';
import type { S3Params } from './s3/driver.js';
import type { GcsParams } from './gcs/driver.js';
import type { AzureParams } from './azure/driver.js';
import { MIN_PART } from './s3/parts.js';
import type { Logger } from 'pino';

export const DRIVER_NAMES = ['filesystem', 'inmemory', 's3', 'azure', 'gcs'] as const;

function str(params: Record<string, unknown>, key: string, driver: string, required: boolean): string | undefined {
  const v = params[key];
  if (v === undefined || v === null || v === '') {
    if (required) throw new Error(`storage.${driver}.${key} is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw new Error(`storage.${driver}.${key} must be a string`);
  return v;
}

/** distribution accepts booleans as YAML booleans or strings. */
function bool(params: Record<string, unknown>, key: string, driver: string): boolean | undefined {
  const v = params[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new Error(`storage.${driver}.${key} must be true or false`);
}

/** A size in bytes, as a number or a numeric string, within [min, max]. */
function int(params: Record<string, unknown>, key: string, driver: string, min: number, max: number): number | undefined {
  const v = params[key];
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`storage.${driver}.${key} must be an integer from ${min} to ${max}`);
  return n;
}

function checkKeys(params: Record<string, unknown>, driver: string, keys: string[]): void {
  for (const k of Object.keys(params)) {
    if (!keys.includes(k)) throw new Error(`storage.${driver}.${k} is not a parameter of the ${driver} driver (${keys.join(', ')})`);
  }
}

const S3_KEYS = ['region', 'regionendpoint', 'forcepathstyle', 'bucket', 'rootdirectory', 'accesskey', 'secretkey',
  'sessiontoken', 'encrypt', 'keyid', 'secure', 'skipverify', 'v4auth', 'chunksize', 'multipartcopychunksize',
  'multipartcopymaxconcurrency', 'multipartcopythresholdsize', 'storageclass', 'objectacl', 'useragent', 'loglevel',
  'usedualstack', 'accelerate', 'usefipsendpoint', 'maxrequestspersecond', 'maxretries'];
const GiB5 = 5 * 1024 ** 3;

function s3Params(params: Record<string, unknown>, log?: Logger, observer?: DriverObserver): S3Params {
  checkKeys(params, 's3', S3_KEYS);
  const accesskey = str(params, 'accesskey', 's3', false);
  const secretkey = str(params, 'secretkey', 's3', false);
  if (Boolean(accesskey) !== Boolean(secretkey)) throw new Error('storage.s3.accesskey and storage.s3.secretkey go together (or neither, for the default credential chain)');
  const regionendpoint = str(params, 'regionendpoint', 's3', false);
  const region = str(params, 'region', 's3', !regionendpoint) ?? 'us-east-1';
  const storageclass = str(params, 'storageclass', 's3', false);
  if (storageclass && !/^[A-Z_]+$/.test(storageclass)) throw new Error(`storage.s3.storageclass must be an S3 storage class such as STANDARD, REDUCED_REDUNDANCY or NONE, not ${storageclass}`);
  if (bool(params, 'v4auth', 's3') === false) throw new Error('storage.s3.v4auth: false is not supported (signature v2 is gone from S3); remove the key');
  return {
    region,
    regionendpoint,
    forcepathstyle: bool(params, 'forcepathstyle', 's3'),
    bucket: str(params, 'bucket', 's3', true)!,
    rootdirectory: str(params, 'rootdirectory', 's3', false),
    accesskey, secretkey,
    sessiontoken: str(params, 'sessiontoken', 's3', false),
    encrypt: bool(params, 'encrypt', 's3'),
    keyid: str(params, 'keyid', 's3', false),
    secure: bool(params, 'secure', 's3'),
    skipverify: bool(params, 'skipverify', 's3'),
    chunksize: int(params, 'chunksize', 's3', MIN_PART, GiB5),
    multipartcopychunksize: int(params, 'multipartcopychunksize', 's3', MIN_PART, GiB5),
    multipartcopymaxconcurrency: int(params, 'multipartcopymaxconcurrency', 's3', 1, 10000),
    multipartcopythresholdsize: int(params, 'multipartcopythresholdsize', 's3', 0, GiB5),
    storageclass,
    objectacl: str(params, 'objectacl', 's3', false),
    useragent: str(params, 'useragent', 's3', false),
    usedualstack: bool(params, 'usedualstack', 's3'),
    accelerate: bool(params, 'accelerate', 's3'),
    usefipsendpoint: bool(params, 'usefipsendpoint', 's3'),
    maxrequestspersecond: int(params, 'maxrequestspersecond', 's3', 0, 1_000_000),
    maxretries: int(params, 'maxretries', 's3', 0, 100),
    log, observer,
  };
}

const GCS_KEYS = ['bucket', 'keyfile', 'credentials', 'rootdirectory', 'chunksize', 'endpoint', 'maxretries', 'useragent', 'maxconcurrency', 'readstalltimeout'];
const GCS_CHUNK = 256 << 10;

function gcsParams(params: Record<string, unknown>, log?: Logger, observer?: DriverObserver): GcsParams {
  checkKeys(params, 'gcs', GCS_KEYS);
  const keyfile = str(params, 'keyfile', 'gcs', false);
  const credentials = params.credentials;
  if (credentials !== undefined && (typeof credentials !== 'object' || credentials === null || Array.isArray(credentials))) {
    throw new Error('storage.gcs.credentials must be a map (a service account key: type, client_email, private_key, ...)');
  }
  if (keyfile && credentials) throw new Error('storage.gcs: give keyfile or credentials, not both');
  const chunksize = int(params, 'chunksize', 'gcs', GCS_CHUNK, GiB5);
  const readstalltimeout = durationMs(params, 'readstalltimeout', 'gcs');
  if (readstalltimeout === 0) throw new Error('storage.gcs.readstalltimeout must be more than 0 (a read that gives no byte for that long is taken as dead)');
  if (chunksize !== undefined && chunksize % GCS_CHUNK !== 0) throw new Error(`storage.gcs.chunksize must be a multiple of ${GCS_CHUNK} (256 KiB)`);
  return {
    bucket: str(params, 'bucket', 'gcs', true)!,
    keyfile,
    credentials: credentials as Record<string, unknown> | undefined,
    rootdirectory: str(params, 'rootdirectory', 'gcs', false),
    chunksize,
    endpoint: str(params, 'endpoint', 'gcs', false),
    maxretries: int(params, 'maxretries', 'gcs', 0, 100),
    useragent: str(params, 'useragent', 'gcs', false),
    readstalltimeout,
    log, observer,
  };
}

const AZURE_KEYS = ['accountname', 'accountkey', 'container', 'realm', 'serviceurl', 'rootdirectory', 'maxretries',
  'credentials', 'connectionstring', 'max_retries', 'retry_delay', 'skipverify', 'copy_status_poll_max_retry', 'copy_status_poll_delay'];

/** A duration in milliseconds: a number (ms, as the config layer hands it) or Go's text. */
function durationMs(params: Record<string, unknown>, key: string, driver: string): number | undefined {
  const v = params[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'number' && v >= 0) return v;
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim()) : null;
  if (!m) throw new Error(`storage.${driver}.${key} must be a duration such as 100ms or 2s`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as Record<string, number>)[m[2]];
}

function azureParams(params: Record<string, unknown>, log?: Logger, observer?: DriverObserver): AzureParams {
  checkKeys(params, 'azure', AZURE_KEYS);
  const creds = params.credentials;
  if (creds !== undefined && (typeof creds !== 'object' || creds === null || Array.isArray(creds))) throw new Error('storage.azure.credentials must be a map (type, clientid, tenantid, secret)');
  const c = (creds ?? {}) as Record<string, unknown>;
  const type = c.type === undefined ? undefined : String(c.type).toLowerCase();
  if (type !== undefined && !['default', 'client_secret', 'shared_key'].includes(type)) throw new Error(`storage.azure.credentials.type must be default, client_secret or shared_key, not ${type}`);
  const connectionstring = str(params, 'connectionstring', 'azure', false);
  const maxretries = int(params, 'max_retries', 'azure', 0, 100) ?? int(params, 'maxretries', 'azure', 0, 100);
  return {
    accountname: str(params, 'accountname', 'azure', !connectionstring) ?? '',
    accountkey: str(params, 'accountkey', 'azure', false),
    container: str(params, 'container', 'azure', true)!,
    realm: str(params, 'realm', 'azure', false),
    serviceurl: str(params, 'serviceurl', 'azure', false),
    rootdirectory: str(params, 'rootdirectory', 'azure', false),
    credentials: creds === undefined ? undefined : {
      type: type as 'default' | 'client_secret' | 'shared_key' | undefined,
      clientid: c.clientid === undefined ? undefined : String(c.clientid),
      tenantid: c.tenantid === undefined ? undefined : String(c.tenantid),
      secret: c.secret === undefined ? undefined : String(c.secret),
    },
    connectionstring,
    maxretries,
    retrydelayMs: durationMs(params, 'retry_delay', 'azure'),
    skipverify: bool(params, 'skipverify', 'azure'),
    copyPollDelayMs: durationMs(params, 'copy_status_poll_delay', 'azure'),
    copyPollMaxRetry: int(params, 'copy_status_poll_max_retry', 'azure', 0, 10_000),
    log, observer,
  };
}

/**
 * Checks the parameters and builds the driver, loading only its own module.
 * The parameters are checked before anything is loaded, so a wrong key fails
 * the same way whether or not the SDK is installed.
 * observer: told of SDK retries and throttling (the cloud drivers), for metrics.
 */
export async function createDriver(name: string, params: Record<string, unknown>, log?: Logger, observer?: DriverObserver): Promise<StorageDriver> {
  switch (name) {
    case 'inmemory': {
      const { InMemoryDriver } = await import('./inmemory/driver.js');
      return new Base(new InMemoryDriver());
    }
    case 'filesystem': {
      checkKeys(params, 'filesystem', ['rootdirectory', 'maxthreads']);
      const root = params.rootdirectory ?? '/var/lib/registry';
      if (typeof root !== 'string' || root === '') throw new Error('storage.filesystem.rootdirectory must be a non-empty string');
      // distribution's regulator: maxthreads filesystem calls at once (at least 25); none unless set.
      const maxthreads = int(params, 'maxthreads', 'filesystem', 25, 100_000);
      const { FilesystemDriver } = await import('./filesystem/driver.js');
      return new Base(new FilesystemDriver({ rootdirectory: root }), { maxConcurrency: maxthreads });
    }
    case 's3': {
      const p = s3Params(params, log, observer);
      const { S3Driver } = await import('./s3/driver.js');
      return new Base(new S3Driver(p));
    }
    case 'gcs': {
      const p = gcsParams(params, log, observer);
      // distribution bounds GCS calls at 50 at once unless told otherwise.
      const maxConcurrency = int(params, 'maxconcurrency', 'gcs', 1, 10_000) ?? 50;
      const { GcsDriver } = await import('./gcs/driver.js');
      return new Base(new GcsDriver(p), { maxConcurrency });
    }
    case 'azure': {
      const p = azureParams(params, log, observer);
      const { AzureDriver } = await import('./azure/driver.js');
      return new Base(new AzureDriver(p));
    }
    default:
      throw new Error(`storage driver "${name}" is not supported (supported: ${DRIVER_NAMES.join(', ')})`);
  }
}
