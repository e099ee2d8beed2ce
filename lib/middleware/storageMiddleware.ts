// middleware.storage, as distribution has it: wrappers around the storage
// driver that change where blob GETs are redirected.
// - redirect: to baseurl + the blob's storage path (a CDN or proxy in front
//   of the bucket, or of the registry's own files);
// - cloudfront: to a CloudFront URL signed with the key pair (canned policy,
//   valid `duration`), except for clients inside AWS (ipfilteredby aws or
//   awsregion), who get the driver's own presigned URL, as in distribution.
// Everything but redirectURL goes to the driver unchanged.
import { readFileSync } from 'node:fs';
import { getSignedUrl } from '@aws-sdk/cloudfront-signer';
import type { Logger } from 'pino';
import type { DriverContext, StorageDriver } from '../../drivers/driver.js';
import type { StorageMiddleware } from '../config/config.js';
import { ConfigError } from '../config/schema.js';
import { AwsIPs } from './awsIPs.js';

type RedirectFn = StorageDriver['redirectURL'];

/** A driver whose redirectURL is `redirect`; every other call is the driver's own. */
function withRedirect(driver: StorageDriver, redirect: RedirectFn): StorageDriver {
  return new Proxy(driver, {
    get(target, prop, receiver) {
      if (prop === 'redirectURL') return redirect;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

function joinURL(base: string, path: string): string {
  const u = new URL(base);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
  return u.toString();
}

export interface AppliedMiddleware { driver: StorageDriver; stop(): void }

/** Wraps the driver in each configured storage middleware, in order. */
export function applyStorageMiddleware(driver: StorageDriver, list: StorageMiddleware[], log: Logger, key = 'middleware.storage'): AppliedMiddleware {
  const stops: (() => void)[] = [];
  let d = driver;
  list.forEach((m, i) => {
    const inner = d;
    if (m.name === 'redirect') {
      d = withRedirect(inner, async (_ctx, method, path) => (method === 'GET' || method === 'HEAD' ? joinURL(m.baseurl, path) : null));
      log.info({ baseurl: m.baseurl }, 'storage middleware: redirect');
      return;
    }
    let privateKey: string;
    try {
      privateKey = readFileSync(m.privatekey, 'utf8');
    } catch (e) {
      throw new ConfigError(`${key}[${i}].options.privatekey`, `cannot read ${m.privatekey}: ${(e as Error).message}`);
    }
    const aws = m.ipfilteredby === 'none' ? null : new AwsIPs(m.iprangesurl, m.ipfilteredby === 'awsregion' ? m.awsregion : [], m.updatefrequencyMs, log);
    if (aws) stops.push(() => aws.stop());
    d = withRedirect(inner, async (ctx: DriverContext, method, path) => {
      if (method !== 'GET' && method !== 'HEAD') return null;
      // Clients inside AWS fetch from the bucket itself: no CloudFront charge.
      if (aws && ctx.remoteIP && aws.contains(ctx.remoteIP)) return inner.redirectURL(ctx, method, path);
      return getSignedUrl({
        url: joinURL(m.baseurl, path),
        keyPairId: m.keypairid,
        privateKey,
        dateLessThan: new Date(Date.now() + m.durationMs).toISOString(),
      });
    });
    log.info({ baseurl: m.baseurl, ipfilteredby: m.ipfilteredby }, 'storage middleware: cloudfront');
  });
  return { driver: d, stop: () => stops.forEach((s) => s()) };
}
