// Throttling and transient 5xx on every cloud driver: a proxy in front of the
// stand-in answers the SDK's next requests with the store's own throttling
// reply; the SDK's retry settings must carry the operation through, and
// faults past the retries must surface as a StorageDriverError, not a crash.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Base } from '../../drivers/base.js';
import { type DriverObserver, StorageDriverError, type StorageDriver } from '../../drivers/driver.js';
import { S3Driver } from '../../drivers/s3/driver.js';
import { AzureDriver } from '../../drivers/azure/driver.js';
import { GcsDriver } from '../../drivers/gcs/driver.js';
import { S3RVER_KEY, S3RVER_SECRET, startS3rver } from '../helpers/s3rver.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../helpers/azurite.js';
import { startGcsEmulator } from '../helpers/gcs.js';
import { type Fault, type StorageProxy, startStorageProxy } from '../helpers/storageProxy.js';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';

interface Case {
  name: string;
  fault: Fault;
  setup(): Promise<{ target: string; driver(endpoint: string, observer: DriverObserver): StorageDriver; stop(): Promise<void> }>;
}

const cases: Case[] = [
  {
    name: 's3 (SlowDown)',
    fault: { status: 503, body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>' },
    async setup() {
      const s3 = await startS3rver();
      const bucket = await s3.bucket();
      return {
        target: s3.endpoint,
        driver: (endpoint, observer) => new Base(new S3Driver({ region: 'us-east-1', regionendpoint: endpoint, bucket, accesskey: S3RVER_KEY, secretkey: S3RVER_SECRET, maxretries: 3, observer })),
        stop: () => s3.stop(),
      };
    },
  },
  {
    name: 'azure (ServerBusy)',
    fault: { status: 503, headers: { 'x-ms-error-code': 'ServerBusy' }, body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is busy.</Message></Error>' },
    async setup() {
      const az = await startAzurite();
      const container = `c${randomBytes(6).toString('hex')}`;
      await new BlobServiceClient(az.serviceurl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).getContainerClient(container).create();
      return {
        target: new URL(az.serviceurl).origin,
        driver: (endpoint, observer) => new Base(new AzureDriver({ accountname: AZURITE_ACCOUNT, accountkey: AZURITE_KEY, container, serviceurl: `${endpoint}/${AZURITE_ACCOUNT}`, maxretries: 2, observer })),
        stop: () => az.stop(),
      };
    },
  },
  {
    name: 'gcs (429 rateLimitExceeded)',
    fault: { status: 429, headers: { 'Content-Type': 'application/json' }, body: '{"error":{"code":429,"message":"rateLimitExceeded","errors":[{"reason":"rateLimitExceeded"}]}}' },
    async setup() {
      const emu = await startGcsEmulator();
      const bucket = await emu.bucket();
      return {
        target: emu.endpoint,
        driver: (endpoint, observer) => new Base(new GcsDriver({ bucket, endpoint, maxretries: 2, observer, readstalltimeout: 2000 })),
        stop: () => emu.stop(),
      };
    },
  },
];

describe('storage: throttling and transient errors are retried by the SDKs', function () {
  this.timeout(120000);
  for (const c of cases) {
    describe(c.name, () => {
      let stop: () => Promise<void>;
      let proxy: StorageProxy;
      let d: StorageDriver;
      // What the metrics are told (registry_storage_retries_total, _throttled_total).
      const seen = { retries: 0, throttled: 0 };
      before(async () => {
        const s = await c.setup();
        stop = s.stop;
        proxy = await startStorageProxy(s.target);
        d = s.driver(proxy.url, { retry: () => { seen.retries++; }, throttled: () => { seen.throttled++; } });
      });
      after(async () => { await proxy?.close(); await stop?.(); });

      it('writes and reads through throttling', async () => {
        const data = randomBytes(100000);
        proxy.inject(c.fault, 1);
        await d.putContent({}, '/r/small', data);
        proxy.inject(c.fault, 1);
        expect((await d.getContent({}, '/r/small')).equals(data)).to.equal(true);
        proxy.inject(c.fault, 1);
        const w = await d.writer({}, '/r/written', false);
        await w.write(data);
        await w.commit();
        proxy.inject(c.fault, 1);
        expect((await d.stat({}, '/r/written')).size).to.equal(data.length);
        expect(proxy.faultsServed()).to.equal(4);
        // Each fault was a throttling answer the SDK retried, and the metrics were told so.
        expect(seen.throttled, 'throttled').to.equal(4);
        expect(seen.retries, 'retries').to.equal(4);
      });

      // A connection reset after the headers is past the SDKs' request
      // retries (S3's ends when the headers arrive): the driver must read the
      // object again, whole, rather than fail or return half of it.
      it('reads a small object again whole when its body is cut off halfway', async () => {
        const data = randomBytes(50000);
        await d.putContent({}, '/r/cut', data);
        const before = proxy.bodiesCut();
        proxy.cutBodies(1);
        const got = await d.getContent({}, '/r/cut');
        proxy.cutBodies(0);
        expect(proxy.bodiesCut() - before, 'bodies cut').to.equal(1);
        expect(got.length).to.equal(data.length);
        expect(got.equals(data)).to.equal(true);
      });

      // A streamed read (a blob served without a redirect) cut off halfway
      // must fail, so that the client's connection is closed, not hang.
      it('fails a streamed read whose body is cut off halfway, and does not hang', async () => {
        const data = randomBytes(50000);
        await d.putContent({}, '/r/cutstream', data);
        proxy.cutBodies(1);
        const s = await d.reader({}, '/r/cutstream', 0);
        let n = 0;
        const err = await (async () => {
          try { for await (const c of s) n += (c as Buffer).length; } catch (e) { return e as Error; }
          return null;
        })();
        proxy.cutBodies(0);
        expect(n, 'bytes read').to.be.below(data.length);
        expect(err, `read ${n} bytes and ended`).to.be.instanceOf(Error);
        // The store still serves the object whole.
        expect((await d.getContent({}, '/r/cutstream')).equals(data)).to.equal(true);
      });

      it('reports a store that keeps failing as a StorageDriverError', async () => {
        proxy.inject({ ...c.fault, status: 500 }, 1000);
        try {
          await d.getContent({}, '/r/small');
          expect.fail('no error');
        } catch (e) {
          expect(e, String(e)).to.be.instanceOf(StorageDriverError);
        } finally {
          proxy.inject(c.fault, 0);
        }
      });
    });
  }
});
