// stallGuard and readWhole without a store: a source that goes quiet fails,
// a slow reader does not, a short body is read again. (Against the stores'
// stand-ins, through a proxy that cuts bodies: test/storage/retries.test.ts.)
import { expect } from 'chai';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageDriverError } from './driver.js';
import { StalledReadError, readWhole, stallGuard } from './wholeRead.js';

const drain = async (r: Readable): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('drivers: wholeRead', () => {
  it('stallGuard fails a source that gives no byte while it is read', async () => {
    const src = new PassThrough();
    src.write(Buffer.from('half'));
    const err = await drain(stallGuard(src, 100, 'x')).then(() => null, (e: Error) => e);
    expect(err).to.be.instanceOf(StalledReadError);
    expect(src.destroyed, 'the source is let go').to.equal(true);
  });

  it('stallGuard lets a slow reader pause longer than the timeout', async () => {
    const data = Buffer.alloc(1 << 20, 7);
    const out = stallGuard(Readable.from([data.subarray(0, 1 << 19), data.subarray(1 << 19)]), 50, 'x');
    const parts: Buffer[] = [];
    for await (const c of out) {
      parts.push(c as Buffer);
      await sleep(120); // the reader is busy: the source waits on it, not the other way round
    }
    expect(Buffer.concat(parts).equals(data)).to.equal(true);
  });

  it('stallGuard fails a source that closes before its end', async () => {
    const src = new PassThrough();
    src.write(Buffer.from('half'));
    setImmediate(() => src.destroy());
    const err = await drain(stallGuard(src, 10_000, 'x')).then(() => null, (e: Error) => e);
    expect(err?.message).to.match(/closed before its end/);
  });

  it('readWhole opens again after a short body, and gives up after three', async () => {
    let opens = 0;
    const got = await readWhole('t', 'k', async () => {
      opens++;
      return { body: Readable.from([Buffer.from(opens < 3 ? 'ab' : 'abcd')]), length: 4 };
    });
    expect(got.toString()).to.equal('abcd');
    expect(opens).to.equal(3);
    opens = 0;
    const err = await readWhole('t', 'k', async () => {
      opens++;
      return { body: Readable.from([Buffer.from('ab')]), length: 4 };
    }).then(() => null, (e: Error) => e);
    expect(err).to.be.instanceOf(StorageDriverError);
    expect(err?.message).to.match(/2 bytes, 4 announced/);
    expect(opens).to.equal(3);
  });

  it('readWhole does not retry a refusal of the open itself', async () => {
    let opens = 0;
    const err = await readWhole('t', 'k', async () => { opens++; throw new Error('not found'); }).then(() => null, (e: Error) => e);
    expect(err?.message).to.equal('not found');
    expect(opens).to.equal(1);
  });
});
