#!/usr/bin/env python3
"""Decodes zlib/zlibx/lz4 token streams the way rsync's receiver does
(token.c recv_deflated_token / see_deflate_token / recv_compressed_token),
with the system zlib and liblz4 (LZ4_decompress_safe via ctypes).

usage: rsync_inflate.py DIR NFILES PROTOCOL MODE(zlib|zlibx|lz4)
DIR/<i>.wire, <i>.basis, <i>.want, <i>.meta ("blength count") per file.
Exits non-zero on any mismatch.
"""
import sys, zlib, struct, ctypes

top, nfiles, proto, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
history = mode == "zlib"
lz4 = None
if mode == "lz4":
    lz4 = ctypes.CDLL("liblz4.so.1")
LZ4_OUT = max(32768 + 32768 // 255 + 16, 16385)


def lz4_record(data):
    dst = ctypes.create_string_buffer(LZ4_OUT)
    n = lz4.LZ4_decompress_safe(data, dst, len(data), LZ4_OUT)
    assert n > 0, f"LZ4_decompress_safe returned {n}"
    return dst.raw[:n]


def blocks(basis, blength, count, i):
    assert 0 <= i < count, (i, count)
    return basis[i * blength:(i + 1) * blength]


for fi in range(nfiles):
    rd = lambda ext: open(f"{top}/{fi}.{ext}", "rb").read()
    wire, basis, want = rd("wire"), rd("basis"), rd("want")
    blength, count = map(int, rd("meta").split())
    d = zlib.decompressobj(-15)  # inflateReset per file
    out = bytearray()
    tok = 0
    i = 0
    inflated = False

    def insert(b):
        n = len(b)
        off = 0
        while n > 0:
            n1 = min(n, 0xFFFF)
            piece = b[off:off + n1]
            hdr = bytes([0, n1 & 0xFF, n1 >> 8, ~n1 & 0xFF, (~n1 >> 8) & 0xFF])
            got = d.decompress(hdr + piece)
            assert got == piece, "stored block insert mismatch"
            n -= n1
            if proto >= 31:
                off += n1

    while True:
        flag = wire[i]
        i += 1
        if flag & 0xC0 == 0x40:
            n = ((flag & 0x3F) << 8) | wire[i]
            i += 1
            assert n > 0, "empty record (rsync: inflate returned Z_BUF_ERROR)"
            if lz4:
                out += lz4_record(wire[i:i + n])
            else:
                out += d.decompress(wire[i:i + n])
                inflated = True
            i += n
            continue
        if inflated:
            got = d.decompress(b"\0\0\xff\xff")
            assert got == b"", "lost sync"
            inflated = False
        if flag == 0:
            break
        if flag & 0x80:
            tok += flag & 0x3F
            run = flag & 0x40
            flag >>= 6
        else:
            tok = struct.unpack("<i", wire[i:i + 4])[0]
            i += 4
        r = 0
        if flag & 1:
            r = wire[i] | (wire[i + 1] << 8)
            i += 2
        for k in range(r + 1):
            if k:
                tok += 1
            b = blocks(basis, blength, count, tok)
            out += b
            if history:
                insert(b)
    assert i == len(wire), "trailing bytes"
    assert bytes(out) == want, f"file {fi}: output differs ({len(out)} vs {len(want)})"
print("ok")
