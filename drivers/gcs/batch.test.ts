// The batch request's body and the parsing of its answer, on the shapes
// Google documents ("Sending batch requests"); the driver's tests send real
// batches to the emulator.
import { expect } from 'chai';
import { deleteBatchBody, parseBatchAnswer } from './batch.js';

describe('gcs batch requests', () => {
  it('writes one nested DELETE per object, with its name escaped, and closes the body', () => {
    const body = deleteBatchBody('my-bucket', ['registry/a b/data', 'docker/registry/v2/blobs/sha256/ab/abc/data'], 'xyz');
    expect(body).to.equal(
      '--xyz\r\nContent-Type: application/http\r\nContent-ID: <1>\r\n\r\n' +
      'DELETE /storage/v1/b/my-bucket/o/registry%2Fa%20b%2Fdata HTTP/1.1\r\n\r\n' +
      '--xyz\r\nContent-Type: application/http\r\nContent-ID: <2>\r\n\r\n' +
      'DELETE /storage/v1/b/my-bucket/o/docker%2Fregistry%2Fv2%2Fblobs%2Fsha256%2Fab%2Fabc%2Fdata HTTP/1.1\r\n\r\n' +
      '--xyz--\r\n');
  });

  it('reads each call\'s status by its Content-ID, in any order, and leaves out the calls it does not answer', () => {
    const answer = [
      '--batch_pK7JBAk73-E=_AA5eFwv4m2Q=',
      'Content-Type: application/http',
      'Content-ID: <response-b29c5de2-0db4-490b-b421-6a51b598bd22+3>',
      '',
      'HTTP/1.1 429 Too Many Requests',
      'Content-Type: application/json; charset=UTF-8',
      '',
      '{"error":{"code":429,"message":"rate"}}',
      '',
      '--batch_pK7JBAk73-E=_AA5eFwv4m2Q=',
      'Content-Type: application/http',
      'Content-ID: <response-b29c5de2-0db4-490b-b421-6a51b598bd22+1>',
      '',
      'HTTP/1.1 204 No Content',
      'Content-Length: 0',
      '',
      '',
      '--batch_pK7JBAk73-E=_AA5eFwv4m2Q=',
      'Content-Type: application/http',
      'Content-ID: <response-b29c5de2-0db4-490b-b421-6a51b598bd22+2>',
      '',
      'HTTP/1.1 404 Not Found',
      '',
      '{"error":{"code":404}}',
      '--batch_pK7JBAk73-E=_AA5eFwv4m2Q=--',
      '',
    ].join('\r\n');
    const s = parseBatchAnswer('multipart/mixed; boundary=batch_pK7JBAk73-E=_AA5eFwv4m2Q=', answer);
    expect([...s.entries()].sort()).to.deep.equal([[0, 204], [1, 404], [2, 429]]);
    // Our own IDs, bare newlines, a quoted boundary, parts without an ID in order.
    const ours = '--b\nContent-Type: application/http\nContent-ID: <response-2>\n\nHTTP/1.1 503 Service Unavailable\n\n' +
      '--b\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n\n--b--\n';
    expect([...parseBatchAnswer('multipart/mixed; boundary="b"', ours).entries()]).to.deep.equal([[1, 503], [2, 204]]);
    expect(parseBatchAnswer('application/json', '{}').size).to.equal(0);
  });
});
