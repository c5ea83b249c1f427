#!/usr/bin/env python3
"""TCP flows in a classic pcap file (stdlib only), for the proxy lab's manifest and comparison.

A flow is keyed by the connection's client side (the one that sent the SYN) and server side.
For each flow: the time from the client's SYN to the server's SYN/ACK as seen at the capture
point (on the client's side of the delay link this is the link's round trip), whether the
three-way handshake completed, and the payload bytes each way.

    pcapstat.py FILE.pcap [--server IP:PORT]      prints one JSON line per flow
"""
import ipaddress
import json
import statistics
import struct
import sys

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113

SYN = 0x02
ACK = 0x10
FIN = 0x01
RST = 0x04


def _packets(path):
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            raise ValueError("%s: not a classic pcap file" % path)
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        linktype = struct.unpack(endian + "I", head[20:24])[0] & 0x0FFFFFFF
        rec = struct.Struct(endian + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _orig = rec.unpack(h)
            data = f.read(incl)
            if len(data) < incl:
                return
            ts = sec + frac / (1e9 if nano else 1e6)
            yield ts, linktype, data


def _ip_payload(linktype, data):
    """Returns (ip bytes) for IPv4/IPv6 frames, else None."""
    if linktype == LINKTYPE_ETHERNET:
        off = 12
        etype = struct.unpack("!H", data[off:off + 2])[0]
        off += 2
        while etype in (0x8100, 0x88A8):
            etype = struct.unpack("!H", data[off + 2:off + 4])[0]
            off += 4
        if etype not in (0x0800, 0x86DD):
            return None
        return data[off:]
    if linktype == LINKTYPE_LINUX_SLL:
        etype = struct.unpack("!H", data[14:16])[0]
        if etype not in (0x0800, 0x86DD):
            return None
        return data[16:]
    if linktype == LINKTYPE_RAW:
        return data
    return None


def _tcp(ip):
    """(src, dst, sport, dport, flags, payload_len) or None."""
    if not ip:
        return None
    ver = ip[0] >> 4
    if ver == 4:
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6 or len(ip) < ihl + 20:
            return None
        total = struct.unpack("!H", ip[2:4])[0]
        src = ".".join(str(b) for b in ip[12:16])
        dst = ".".join(str(b) for b in ip[16:20])
        tcp = ip[ihl:total]
    elif ver == 6:
        if ip[6] != 6 or len(ip) < 60:
            return None
        plen = struct.unpack("!H", ip[4:6])[0]
        src = str(ipaddress.IPv6Address(ip[8:24]))
        dst = str(ipaddress.IPv6Address(ip[24:40]))
        tcp = ip[40:40 + plen]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport = struct.unpack("!HH", tcp[0:4])
    doff = (tcp[12] >> 4) * 4
    flags = tcp[13]
    return src, dst, sport, dport, flags, max(0, len(tcp) - doff)


def addr(ip, port):
    return "%s:%d" % (ip, port)


def flows(path):
    """List of flow dicts in order of their first SYN (flows without a seen SYN are skipped)."""
    table = {}
    order = []
    for ts, lt, data in _packets(path):
        t = _tcp(_ip_payload(lt, data))
        if t is None:
            continue
        src, dst, sport, dport, flags, plen = t
        a, b = addr(src, sport), addr(dst, dport)
        if flags & SYN and not flags & ACK:
            key = (a, b)
            if key not in table:
                fl = {"client": a, "server": b, "syn_ts": ts, "synack_ts": None,
                      "handshake": False, "c2s_bytes": 0, "s2c_bytes": 0,
                      "c2s_pkts": 0, "s2c_pkts": 0, "first_ts": ts, "last_ts": ts,
                      "fin": False, "rst": False}
                table[key] = fl
                order.append(fl)
            continue
        if (a, b) in table:
            fl, c2s = table[(a, b)], True
        elif (b, a) in table:
            fl, c2s = table[(b, a)], False
        else:
            continue
        fl["last_ts"] = ts
        if flags & RST:
            fl["rst"] = True
        if flags & FIN:
            fl["fin"] = True
        if not c2s and flags & SYN and flags & ACK:
            if fl["synack_ts"] is None:
                fl["synack_ts"] = ts
            continue
        if c2s and flags & ACK and fl["synack_ts"] is not None:
            fl["handshake"] = True
        if plen:
            fl["c2s_bytes" if c2s else "s2c_bytes"] += plen
            fl["c2s_pkts" if c2s else "s2c_pkts"] += 1
    for fl in order:
        fl["rtt_ms"] = None
        if fl["synack_ts"] is not None:
            fl["rtt_ms"] = round((fl["synack_ts"] - fl["syn_ts"]) * 1000.0, 3)
    return order


def server_flows(path, server):
    return [f for f in flows(path) if f["server"] == server]


def summary(path, server):
    """Flows to `server` with a completed handshake, and their median handshake RTT."""
    fl = [f for f in server_flows(path, server) if f["handshake"]]
    rtts = [f["rtt_ms"] for f in fl if f["rtt_ms"] is not None]
    return {
        "flows": len(fl),
        "rtt_ms": round(statistics.median(rtts), 2) if rtts else None,
        "rtt_ms_min": round(min(rtts), 2) if rtts else None,
        "rtt_ms_max": round(max(rtts), 2) if rtts else None,
    }


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    server = None
    if "--server" in args:
        i = args.index("--server")
        server = args[i + 1]
        del args[i:i + 2]
    for fl in flows(args[0]):
        if server is None or fl["server"] == server:
            print(json.dumps(fl))


if __name__ == "__main__":
    main()
