// Small HTTP helpers over fetch and raw sockets for API tests.
import { expect } from 'chai';
import * as net from 'node:net';

export async function req(base: string, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, { method, body: body as BodyInit | undefined, headers, redirect: 'manual' });
  const buf = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString()) as Record<string, unknown> };
}

export async function expectError(p: ReturnType<typeof req>, status: number, code: string): Promise<Awaited<ReturnType<typeof req>>> {
  const r = await p;
  expect(r.status, r.body.toString()).to.equal(status);
  if (r.body.length) {
    const j = r.json() as { errors: { code: string; message: string }[] };
    expect(j.errors[0].code, r.body.toString()).to.equal(code);
    expect(j.errors[0].message).to.be.a('string').and.not.equal('');
  }
  return r;
}

/** Sends headers and part of a body, then drops the connection. */
export async function abortedRequest(base: string, method: string, path: string, contentLength: number, sent: Buffer): Promise<void> {
  const u = new URL(base);
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => {
      s.write(`${method} ${path} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${contentLength}\r\n\r\n`);
      s.write(sent, () => setTimeout(() => { s.destroy(); resolve(); }, 100));
    });
    s.on('error', reject);
  });
  await new Promise((r) => setTimeout(r, 200)); // let the server notice
}

export async function pushBlob(base: string, name: string, data: Buffer, digest: string): Promise<void> {
  const r = await req(base, 'POST', `/v2/${name}/blobs/uploads/?digest=${digest}`, data, { 'Content-Type': 'application/octet-stream' });
  expect(r.status, r.body.toString()).to.equal(201);
}

export async function pushManifest(base: string, name: string, ref: string, data: Buffer, mediaType: string) {
  const r = await req(base, 'PUT', `/v2/${name}/manifests/${ref}`, data, { 'Content-Type': mediaType });
  expect(r.status, r.body.toString()).to.equal(201);
  return r;
}
