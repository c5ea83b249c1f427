#!/usr/bin/env python3
"""Loops capture files into one Ethernet pcap for throughput comparisons (bench-peers.sh).

  pcap_loop.py --out OUT.pcap --packets N FILE_OR_DIR...

Reads classic pcap (either byte order, micro- or nanosecond) and pcapng (EPB and SPB blocks,
per-interface if_tsresol), keeps the Ethernet frames (link type 1; other link types are counted
and left out, so every tool reads one link type), and writes them pass after pass until at
least N frames are out (a whole number of passes). Timestamps are rebased: each file starts
one hour after the previous one ended (a jump of more than an hour inside a file is cut to
one hour), and time never goes backwards. Each pass after the first moves every IP address
(outer IPv4 and IPv6 headers, behind at most one VLAN tag) by the pass number, so a pass is new
flows to every tool, as real traffic would be, rather than flows a tool has already decided (nDPI
keeps them across the gap): the first 16-bit word of the address goes up by the pass number and
the second down by as much, in one's complement, which leaves the IP header checksum and the
TCP/UDP pseudo-header sum as they were (a checksum-neutral rewrite). Prints a
JSON line: files used and skipped, frames per pass, passes, frames written.
"""

import argparse
import json
import os
import struct
import sys

GAP_NS = 3600 * 10**9
LINKTYPE_ETHERNET = 1


def pcap_frames(data, path):
    """Yields (linktype, ts_ns, caplen_bytes, wire_len) of a classic pcap."""
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
             b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}.get(magic)
    if order is None:
        raise ValueError(f"{path}: not a pcap or pcapng file (magic {magic.hex()})")
    e, mult = order
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        if off + incl > len(data):
            break
        yield linktype, sec * 10**9 + frac * mult, data[off:off + incl], orig
        off += incl


def pcapng_frames(data, path):
    """Yields (linktype, ts_ns, bytes, wire_len) of the EPB/SPB blocks of a pcapng file."""
    e = "<"
    ifaces = []  # (linktype, ns per tick)
    off = 0
    while off + 12 <= len(data):
        btype = struct.unpack(e + "I", data[off:off + 4])[0]
        if btype == 0x0A0D0D0A:  # section header: its byte-order magic sets the endianness
            bom = data[off + 8:off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
        if blen < 12 or off + blen > len(data):
            break
        body = data[off + 8:off + blen - 4]
        if btype == 1:  # interface description
            linktype = struct.unpack(e + "H", body[:2])[0]
            tick_ns = 1000.0
            opt = 8
            while opt + 4 <= len(body):
                code, olen = struct.unpack(e + "HH", body[opt:opt + 4])
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    r = body[opt + 4]
                    tick_ns = 1e9 / (2 ** (r & 0x7F) if r & 0x80 else 10 ** r)
                opt += 4 + (olen + 3) // 4 * 4
            ifaces.append((linktype, tick_ns))
        elif btype == 6 and len(body) >= 20:  # enhanced packet
            iface, hi, lo, incl, orig = struct.unpack(e + "IIIII", body[:20])
            if iface < len(ifaces):
                linktype, tick_ns = ifaces[iface]
                yield linktype, int(((hi << 32) | lo) * tick_ns), body[20:20 + incl], orig
        elif btype == 3 and len(body) >= 4 and ifaces:  # simple packet: no timestamp
            orig = struct.unpack(e + "I", body[:4])[0]
            yield ifaces[0][0], 0, body[4:4 + orig], orig
        off += blen


def address_offsets(frame):
    """Offsets of the IP addresses in an Ethernet frame (outer header, at most one VLAN tag)."""
    off = 12
    ethertype = frame[off:off + 2]
    if ethertype in (b"\x81\x00", b"\x88\xa8"):
        off += 4
        ethertype = frame[off:off + 2]
    ip = off + 2
    if ethertype == b"\x08\x00" and len(frame) >= ip + 20:
        return (ip + 12, ip + 16)
    if ethertype == b"\x86\xdd" and len(frame) >= ip + 40:
        return (ip + 8, ip + 24)
    return ()


def ones_add(x, k):
    s = x + k
    return (s & 0xFFFF) + (s >> 16)


def moved(frame, offsets, k):
    """`frame` with every address at `offsets` moved by `k` without changing its word sum."""
    if not offsets or k == 0:
        return frame
    b = bytearray(frame)
    for o in offsets:
        hi = (b[o] << 8) | b[o + 1]
        lo = (b[o + 2] << 8) | b[o + 3]
        hi, lo = ones_add(hi, k), ones_add(lo, 0xFFFF - k)
        b[o:o + 4] = bytes((hi >> 8, hi & 0xFF, lo >> 8, lo & 0xFF))
    return bytes(b)


def frames_of(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return pcapng_frames(data, path)
    return pcap_frames(data, path)


def inputs(args):
    for a in args:
        if os.path.isdir(a):
            for root, dirs, files in os.walk(a):
                dirs[:] = sorted(d for d in dirs if d != "oracle")
                for name in sorted(files):
                    if name.endswith((".pcap", ".pcapng", ".cap")):
                        yield os.path.join(root, name)
        else:
            yield a


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args()

    one_pass = []  # (ts_ns from the pass start, bytes, wire_len, address offsets)
    used, skipped, other_link = [], [], 0
    t = 0
    for path in inputs(a.inputs):
        try:
            frames = list(frames_of(path))
        except (ValueError, struct.error) as err:
            skipped.append(f"{path}: {err}")
            continue
        eth = [(ts, b, w) for lt, ts, b, w in frames if lt == LINKTYPE_ETHERNET]
        other_link += len(frames) - len(eth)
        if not eth:
            skipped.append(f"{path}: no Ethernet frames")
            continue
        used.append(path)
        prev = eth[0][0]
        last = t
        for ts, b, w in eth:
            # Within a file, time may step back (merged captures): never below the previous
            # frame, so the output is ordered. It may also jump by months or years (merged
            # captures): a jump is cut to the gap, which expires every flow just the same.
            last += min(max(0, ts - prev), GAP_NS)
            prev = ts
            one_pass.append((last, b, w, address_offsets(b)))
        t = last + GAP_NS
    if not one_pass:
        print(json.dumps({"error": "no Ethernet frames in " + " ".join(a.inputs),
                          "skipped": skipped}))
        return 1
    passes = max(1, -(-a.packets // len(one_pass)))
    pass_len = t
    base = 1_700_000_000 * 10**9
    with open(a.out, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, LINKTYPE_ETHERNET))
        for p in range(passes):
            shift = base + p * pass_len
            chunk = []
            k = p % 0xFFFF
            for ts, b, w, offsets in one_pass:
                b = moved(b, offsets, k)
                abs_ns = shift + ts
                chunk.append(struct.pack("<IIII", abs_ns // 10**9, abs_ns % 10**9, len(b), w))
                chunk.append(b)
            out.write(b"".join(chunk))
    print(json.dumps({"files": len(used), "skipped": skipped, "other_link_frames": other_link,
                      "frames_per_pass": len(one_pass), "passes": passes,
                      "frames": passes * len(one_pass)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
