#!/usr/bin/env python3
"""Rotating knock sequences, derived as the README specifies, in Python's
standard library alone: a second implementation to check knockd-rs (and
any other client) against.

    scripts/rotate-reference.py                  # the README's test vectors
    scripts/rotate-reference.py SECRET DOOR FIRST-LAST LENGTH PROTOS PERIOD UNIX_TIME
"""
import base64, hashlib, hmac, struct, sys

def derive(secret_b32, door, first, last, length, protos, period, unix_time):
    secret = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = unix_time // period
    msg = b"knockd-rs rotating sequence v1" + b"\0" + door.encode() + b"\0" + struct.pack(">Q", counter)
    n = last - first + 1
    limit = (1 << 32) - (1 << 32) % n
    stream, j = b"", 0
    def nxt():
        nonlocal stream, j
        if not stream:
            stream = hmac.new(secret, msg + struct.pack(">I", j), hashlib.sha256).digest()
            j += 1
        v, stream = struct.unpack(">I", stream[:4])[0], stream[4:]
        return v
    ports = []
    while len(ports) < length:
        v = nxt()
        if v >= limit:
            continue
        p = first + v % n
        if p in ports:
            continue
        ports.append(p)
    out = []
    for k, p in enumerate(ports):
        proto = protos[k] if len(protos) == length else protos[0]
        out.append(f"{p}:{proto}")
    return counter, ",".join(out)

vectors = [
    ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "ssh", 10000, 10999, 5, ["tcp"], 30, 1700000000),
    ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "ssh", 10000, 10999, 5, ["tcp"], 30, 1700000009),
    ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "ssh", 10000, 10999, 5, ["tcp"], 30, 1700000010),
    ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "web", 10000, 10999, 5, ["tcp"], 30, 1700000000),
    ("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U", "openSSH", 1, 65535, 8, ["tcp", "udp", "tcp", "udp", "tcp", "udp", "tcp", "udp"], 60, 1800000000),
    ("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U", "tiny", 7000, 7004, 5, ["udp"], 3600, 0),
]
if len(sys.argv) == 8:
    secret, door, rng, length, protos, period, unix = sys.argv[1:]
    first, last = (int(x) for x in rng.split("-"))
    vectors = [(secret, door, first, last, int(length), protos.split(","), int(period), int(unix))]
for v in vectors:
    c, s = derive(*v)
    print(f"{v[0]} {v[1]} {v[2]}-{v[3]} len={v[4]} protos={','.join(v[5])} period={v[6]} t={v[7]} -> counter={c} {s}")
