#!/usr/bin/env python3
"""Chunked blob push over one keep-alive connection: POST, PATCH per chunk
(Content-Range), PUT ?digest=. Prints the seconds it took. Used by bench/run.ts
because one curl process per chunk costs more than some registries take."""
import http.client
import os
import sys
import time
from urllib.parse import urlsplit, urljoin

base, repo, path, chunk, digest = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
size = os.path.getsize(path)
u = urlsplit(base)
conn = http.client.HTTPConnection(u.hostname, u.port, blocksize=1 << 20)


class Section:
    """A file window that http.client reads in blocks."""
    def __init__(self, f, n):
        self.f, self.left = f, n

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        b = self.f.read(n)
        self.left -= len(b)
        return b


def call(method, url, body=None, headers=None):
    conn.request(method, url, body=body, headers=headers or {})
    r = conn.getresponse()
    r.read()
    return r


t0 = time.monotonic()
r = call('POST', f'/v2/{repo}/blobs/uploads/', headers={'Content-Length': '0'})
assert r.status == 202, r.status
loc = urljoin(base, r.getheader('Location'))
with open(path, 'rb') as f:
    off = 0
    while off < size:
        n = min(chunk, size - off)
        r = call('PATCH', loc, Section(f, n), {'Content-Length': str(n), 'Content-Range': f'{off}-{off + n - 1}', 'Content-Type': 'application/octet-stream'})
        assert r.status == 202, r.status
        loc = urljoin(base, r.getheader('Location'))
        off += n
sep = '&' if '?' in loc else '?'
r = call('PUT', f'{loc}{sep}digest={digest}', headers={'Content-Length': '0'})
assert r.status == 201, r.status
print(time.monotonic() - t0)
