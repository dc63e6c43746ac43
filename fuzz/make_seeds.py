#!/usr/bin/env python3
"""Writes the seeds of the daemon/negotiation fuzz targets from the shared
captures (shared/protocol/captures/*.tap): the daemon text lines, the auth
answer, the argument words, the capability string and the name lists, the
path words; plus a few hand-made id and xattr lists. Run from fuzz/:
    python3 make_seeds.py [CAPTURES_DIR]
"""
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
caps = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    here, "..", "..", "shared", "protocol", "captures")
if not os.path.isdir(caps):
    caps = "/work/shared/protocol/captures"


def streams(name):
    c2s, s2c = bytearray(), bytearray()
    with open(os.path.join(caps, name), encoding="latin-1") as f:
        for line in f:
            m = re.match(r"CHUNK \d+ \d+ (C>S|S>C) ([0-9a-f]*)", line)
            if m:
                (c2s if m.group(1) == "C>S" else s2c).extend(bytes.fromhex(m.group(2)))
    return bytes(c2s), bytes(s2c)


def seed(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def text_part(stream):
    """The daemon text lines: up to and including @RSYNCD: OK / EXIT."""
    out = bytearray()
    for line in stream.split(b"\n"):
        out += line + b"\n"
        if line.startswith(b"@RSYNCD: OK") or line.startswith(b"@RSYNCD: EXIT") or line.startswith(b"@ERROR"):
            break
    return bytes(out)


daemon_caps = [f for f in sorted(os.listdir(caps)) if f.endswith(".tap") and "daemon" in f]
for f in daemon_caps:
    base = f[:-4]
    c2s, s2c = streams(f)
    seed("daemon_greeting", base + "-server", text_part(s2c))
    seed("daemon_greeting", base + "-client", text_part(c2s))
    lines = c2s.split(b"\n")
    # The client's greeting, module line, maybe an auth answer, then words.
    proto = 32
    m = re.match(rb"@RSYNCD: (\d+)", lines[0]) if lines else None
    if m:
        proto = int(m.group(1))
    sel = bytes([(proto - 27) % 6])
    for i, l in enumerate(lines[1:4], 1):
        if re.match(rb"^[A-Za-z0-9_]+ [A-Za-z0-9+/]{16,}$", l):
            seed("daemon_auth", base, b"\x00alice:rw @staff:ro bob:deny\x00" + l)
    # Words: after the last text line the client sent before the binary part.
    text_len = 0
    for l in lines:
        text_len += len(l) + 1
        if l.startswith(b"--server") or l == b"":
            break
    k = c2s.find(b"--server")
    if k >= 0:
        end_mark = b"\x00\x00" if proto >= 30 else b"\n\n"
        e = c2s.find(end_mark, k)
        if e > 0:
            words = c2s[k:e + 2]
            seed("daemon_argv", base, sel + words)
            sep = b"\x00" if proto >= 30 else b"\n"
            for w in words.split(sep):
                if w and not w.startswith(b"-"):
                    seed("path_sanitize", base + "-" + re.sub(rb"[^A-Za-z0-9]", b"_", w).decode()[:20], w)
                if w.startswith(b"-e"):
                    capstr = w[2:]
                    seed("negotiate", base, capstr + b"\x00xxh128 xxh3 xxh64 md5 md4 sha1 none\x00zstd lz4 zlibx zlib none")

# Name lists as they travel in the rsh captures (vstrings: printable runs).
for f in sorted(os.listdir(caps)):
    if not f.endswith(".tap") or "rsh" not in f:
        continue
    c2s, s2c = streams(f)
    runs = re.findall(rb"[a-z0-9 ]{8,}", s2c[:200] + c2s[:200])
    lists = [r.strip() for r in runs if b"md5" in r or b"zlib" in r or b"zstd" in r]
    if lists:
        seed("negotiate", f[:-4] + "-lists", b".LsfxCIvu\x00" + b"\x00".join(lists[:2]))

# Path words a hostile client might send.
for i, w in enumerate([b"../../etc/passwd", b"/abs/path", b"a/./b//../c/", b"..", b"mod/a/../../..", b"./", b"a\x00b"]):
    seed("path_sanitize", "hostile-%d" % i, w)

# Id lists: protocol 29 (int32) and 32 (varint), with and without id 0's name.
def i32(v):
    return v.to_bytes(4, "little", signed=True)

seed("id_list", "p29-root-staff", bytes([2]) + i32(1000) + b"\x04user" + i32(50) + b"\x05staff" + i32(0))
seed("id_list", "p32-id0", bytes([5 | 0x80]) + b"\x05\x04user\x00\x04root")
seed("id_list", "p32-empty", bytes([5]) + b"\x00")

# Xattr lists: a request (value numbers) and fill-in values.
seed("xattr_lists", "request", b"\x00\x01\x02\x00")
seed("xattr_lists", "values", b"\x01\x01\x05hello\x00")

# rsyncd.conf: the capture daemon's settings and the documented forms.
seed("rsyncd_conf", "capture", b"""motd file = /etc/motd
[pub]
    path = /srv/pub
    comment = the pub module
    timeout = 300
    read only = yes
[priv]
    path = /srv/priv
    auth users = alice:rw, @staff:ro, bob:deny
    secrets file = /etc/rsyncd.secrets
    hosts allow = 127.0.0.1 10.0.0.0/8 *.example.org
    refuse options = delete* compress
    read only = false
    use chroot = no
    munge symlinks = yes
    filter = - *.tmp
    exclude = .git/
&include /etc/rsyncd.d
""")
seed("hosts_refuse", "capture", b"127.0.0.1 10.0.0.0/8 ::1 fe80::/64 *.example.org host?\x00delete* compress !a\x00--server\n--delete\n-z\n.")
