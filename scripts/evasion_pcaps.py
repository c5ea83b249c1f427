#!/usr/bin/env python3
"""Writes the evasion fixtures: small pcaps (Ethernet) that hide a flagged TCP flow inside a
tunnel or IP fragments, beside a benign flow carried the same way.

Fragment files (frag_*.pcap) split the data segments of both flows (the handshakes stay whole)
into 16-byte IP fragments, so even the TCP header is cut in two:
  in_order, reversed      every fragment once
  overlap_first_real      the client's data, then an overlapping copy of part of it with other
                          bytes (a receiver that keeps the last copy sees the other bytes)
  overlap_last_real       the other bytes first, then the real ones over them
                          (the benign flow repeats the same fragment with identical bytes)
  too_many                the flagged flow's data in 8-byte fragments, more than 64 per
                          datagram; the benign flow in three ordinary fragments
  v6_in_order, v6_reversed    the same over IPv6 (fragment extension header)
  outer_gtpu              GTP-U packets whose outer IPv4 datagram is fragmented

TCP files (tcp_*.pcap) segment the client's data of both flows:
  one_byte                1-byte segments
  out_of_order            four segments, last first
  overlap_first_real      the real bytes, then a segment over them with other bytes
  overlap_last_real       other bytes first (ahead of a hole), then the real segment over them
  syn_data                the SYN carries other bytes where the real data will go
  bad_checksum            a copy of the client's data with other bytes and a wrong TCP checksum
                          first (the receiver drops it), then the real data
  rst_out_of_window       after the client's data, a RST from the client 50000 bytes ahead of
                          its stream (a receiver ignores it), then the server's answer; no FIN
  low_ttl                other bytes at TTL 2 (they expire before the server), then the real
                          data at TTL 64 at the same sequence number
  low_ttl_rst             a RST at the client's next sequence number but TTL 2, then the data
  high_ttl_syn            the flagged flow's SYN has TTL 200, its data TTL 64: data the
                          inspector takes as expiring early, until the server acknowledges it
                          (the benign flow plays it straight)
  out_of_window           the server's window is a quarter of the client's data, which comes in
                          quarters, each acknowledged; after the first, other bytes past the
                          window (the server drops them) where the third and fourth will go
  (the benign flow overlaps with identical bytes, a retransmission, except in low_ttl and
  out_of_window, where its decoy differs too)

Run from the repository root: `python3 scripts/evasion_pcaps.py [OUTDIR]` (default
fixtures/evasion). Standard library only (struct-packed by hand), deterministic: the same
bytes on every run, so tests/evasion.rs can check the committed files are current.

Flows in every file:
  flagged: client 10.1.0.1:40001 -> server 10.2.0.2:443, both sides speak SSH (an SSH banner
           on the HTTPS port: protocol_port_mismatch)
  benign:  client 10.1.0.1:40002 -> server 10.2.0.2:80, an ordinary HTTP/1.1 exchange
"""

import os
import struct
import sys

CLIENT4 = bytes([10, 1, 0, 1])
SERVER4 = bytes([10, 2, 0, 2])
CLIENT6 = bytes.fromhex("20010db8000100000000000000000001")
SERVER6 = bytes.fromhex("20010db8000200000000000000000002")
# Outer (tunnel endpoint) addresses.
OUTER_A4 = bytes([192, 0, 2, 1])
OUTER_B4 = bytes([192, 0, 2, 2])
OUTER_A6 = bytes.fromhex("20010db8ffff00000000000000000001")
OUTER_B6 = bytes.fromhex("20010db8ffff00000000000000000002")
MAC_A = bytes([2, 0, 0, 0, 0, 1])
MAC_B = bytes([2, 0, 0, 0, 0, 2])

SSH_CLIENT = b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"
SSH_SERVER = b"SSH-2.0-OpenSSH_8.9p1 Debian-3\r\n"
HTTP_REQUEST = (
    b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
HTTP_BODY = b"<!doctype html><html><head><title>ok</title></head><body>ok</body></html>\n"
HTTP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: "
    + str(len(HTTP_BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + HTTP_BODY
)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
# A TTL that expires a hop or two past the inspector, well before the server.
LOW_TTL = 2


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", window=64240):
    """A TCP segment with a correct checksum over the IPv4 or IPv6 pseudo-header."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0)
    seg = header + payload
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), 6)
    c = checksum(pseudo + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(sport, dport, payload):
    # Checksum 0: allowed over IPv4 and, for tunnels (RFC 6935), over IPv6.
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src, dst, proto, payload, ident=1, frag_offset=0, more=False, ttl=64, total=None):
    flags_frag = (0x2000 if more else 0) | (frag_offset // 8)
    length = 20 + len(payload) if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, ident, flags_frag, ttl, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", checksum(h)) + h[12:]
    return h + payload


def ipv6(src, dst, nh, payload, hop=64):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, hop, src, dst) + payload


def ipv6_fragment(src, dst, nh, chunk, offset, more, ident):
    frag = struct.pack("!BBHI", nh, 0, offset | (1 if more else 0), ident)
    return ipv6(src, dst, 44, frag + chunk)


def eth(ethertype, payload, src=MAC_A, dst=MAC_B):
    return dst + src + struct.pack("!H", ethertype) + payload


def conversation(client, server, cport, sport, to_server, to_client):
    """The IP packets of one whole TCP connection (handshake, one exchange, close)."""
    ip = ipv4 if len(client) == 4 else (lambda s, d, p, pl, **k: ipv6(s, d, 6, pl))
    proto = 6
    cs, ss = 1000, 5000
    pkts = []

    def c2s(seq, ack, flags, data=b""):
        seg = tcp(client, server, cport, sport, seq, ack, flags, data)
        pkts.append(ip(client, server, proto, seg) if len(client) == 4 else ipv6(client, server, 6, seg))

    def s2c(seq, ack, flags, data=b""):
        seg = tcp(server, client, sport, cport, seq, ack, flags, data)
        pkts.append(ip(server, client, proto, seg) if len(client) == 4 else ipv6(server, client, 6, seg))

    c2s(cs, 0, SYN)
    s2c(ss, cs + 1, SYN | ACK)
    c2s(cs + 1, ss + 1, ACK)
    c2s(cs + 1, ss + 1, PSH | ACK, to_server)
    s2c(ss + 1, cs + 1 + len(to_server), PSH | ACK, to_client)
    c2s(cs + 1 + len(to_server), ss + 1 + len(to_client), FIN | ACK)
    s2c(ss + 1 + len(to_client), cs + 2 + len(to_server), FIN | ACK)
    c2s(cs + 2 + len(to_server), ss + 2 + len(to_client), ACK)
    return pkts


# Strategies whose decoy differs from the real bytes in the benign flow too: the decoy never
# reaches the server, so it must not be inspected (nor conflict with the real bytes) either.
DECOY_BOTH = ("low_ttl", "out_of_window")


def tcp_segmented(strategy, cport, sport, to_server, to_client, flagged):
    """One connection whose client data is sent as `strategy` says."""
    client, server = CLIENT4, SERVER4
    cs, ss = 1000, 5000
    pkts = []
    other = bytes(b ^ 0x20 for b in to_server) if flagged or strategy in DECOY_BOTH else to_server

    def c2s(seq, ack, flags, data=b"", ttl=64):
        pkts.append(ipv4(client, server, 6, tcp(client, server, cport, sport, seq, ack, flags, data), ttl=ttl))

    def s2c(seq, ack, flags, data=b"", window=64240):
        pkts.append(ipv4(server, client, 6, tcp(server, client, sport, cport, seq, ack, flags, data, window)))

    n = len(to_server)
    # out_of_window: the server offers a quarter of the client's data as its window.
    q = n // 4
    # high_ttl_syn: the flagged flow's SYN claims a higher TTL than its data will have.
    syn_ttl = 200 if strategy == "high_ttl_syn" and flagged else 64
    c2s(cs, 0, SYN, other if strategy == "syn_data" else b"", ttl=syn_ttl)
    s2c(ss, cs + 1, SYN | ACK, window=q if strategy == "out_of_window" else 64240)
    c2s(cs + 1, ss + 1, ACK)
    d = cs + 1
    if strategy == "one_byte":
        for i in range(n):
            c2s(d + i, ss + 1, ACK, to_server[i:i + 1])
    elif strategy == "out_of_order":
        q = n // 4
        cuts = [(0, q), (q, 2 * q), (2 * q, 3 * q), (3 * q, n)]
        for a, b in reversed(cuts):
            c2s(d + a, ss + 1, ACK, to_server[a:b])
    elif strategy == "overlap_first_real":
        c2s(d, ss + 1, ACK, to_server[:20])
        c2s(d + 10, ss + 1, ACK, other[10:30])
        c2s(d + 20, ss + 1, PSH | ACK, to_server[20:])
    elif strategy == "bad_checksum":
        decoy = ipv4(client, server, 6, tcp(client, server, cport, sport, d, ss + 1, PSH | ACK, other))
        # Break the checksum (bytes 20+16..18 of the IPv4 packet).
        pkts.append(decoy[:36] + bytes([decoy[36] ^ 0xFF]) + decoy[37:])
        c2s(d, ss + 1, PSH | ACK, to_server)
    elif strategy == "low_ttl":
        c2s(d, ss + 1, PSH | ACK, other, ttl=LOW_TTL)
        c2s(d, ss + 1, PSH | ACK, to_server)
    elif strategy == "low_ttl_rst":
        c2s(d, 0, RST, ttl=LOW_TTL)
        c2s(d, ss + 1, PSH | ACK, to_server)
    elif strategy == "out_of_window":
        # The window's edge is learnt from the server's segments once the client sent data.
        c2s(d, ss + 1, ACK, to_server[:q])
        s2c(ss + 1, d + q, ACK, window=q)
        c2s(d + 2 * q + 5, ss + 1, ACK, other[2 * q + 5:])
        c2s(d + q, ss + 1, ACK, to_server[q:2 * q])
        s2c(ss + 1, d + 2 * q, ACK, window=q)
        c2s(d + 2 * q, ss + 1, ACK, to_server[2 * q:3 * q])
        s2c(ss + 1, d + 3 * q, ACK, window=n - 3 * q)
        c2s(d + 3 * q, ss + 1, PSH | ACK, to_server[3 * q:])
    elif strategy == "overlap_last_real":
        c2s(d + 10, ss + 1, ACK, other[10:30])
        c2s(d, ss + 1, PSH | ACK, to_server)
    else:
        c2s(d, ss + 1, PSH | ACK, to_server)
    if strategy == "rst_out_of_window":
        c2s(d + n + 50000, 0, RST)
        s2c(ss + 1, cs + 1 + n, PSH | ACK, to_client)
        return pkts
    s2c(ss + 1, cs + 1 + n, PSH | ACK, to_client)
    c2s(cs + 1 + n, ss + 1 + len(to_client), FIN | ACK)
    s2c(ss + 1 + len(to_client), cs + 2 + n, FIN | ACK)
    c2s(cs + 2 + n, ss + 2 + len(to_client), ACK)
    return pkts


def tcp_flows(strategy):
    flagged = tcp_segmented(strategy, 40001, 443, SSH_CLIENT, SSH_SERVER, True)
    benign = tcp_segmented(strategy, 40002, 80, HTTP_REQUEST, HTTP_RESPONSE, False)
    return flagged + benign


def flows(v6=False, flagged_client=SSH_CLIENT, flagged_server=SSH_SERVER):
    client, server = (CLIENT6, SERVER6) if v6 else (CLIENT4, SERVER4)
    flagged = conversation(client, server, 40001, 443, flagged_client, flagged_server)
    benign = conversation(client, server, 40002, 80, HTTP_REQUEST, HTTP_RESPONSE)
    return flagged + benign


def ip_payload(packet):
    """(header fields, payload) of an unfragmented IPv4 or IPv6 packet."""
    if packet[0] >> 4 == 4:
        ihl = (packet[0] & 0x0F) * 4
        return packet[12:16], packet[16:20], packet[9], packet[ihl:]
    return packet[8:24], packet[24:40], packet[6], packet[40:]


def fragments(packet, size, ident, extra=()):
    """The packet's payload in `size`-byte IP fragments, in order, plus `extra` fragments
    (offset, bytes, more) inserted after the fragment list position each names:
    extra = [(position, offset, data)]. Returns a list of IP packets."""
    src, dst, proto, payload = ip_payload(packet)
    pieces = []
    for off in range(0, len(payload), size):
        chunk = payload[off:off + size]
        pieces.append((off, chunk, off + size < len(payload)))
    for position, off, data in sorted(extra, reverse=True):
        pieces.insert(position, (off, data, True))
    out = []
    for off, chunk, more in pieces:
        if len(src) == 4:
            out.append(ipv4(src, dst, proto, chunk, ident=ident, frag_offset=off, more=more))
        else:
            out.append(ipv6_fragment(src, dst, proto, chunk, off, more, ident))
    return out


def has_data(packet):
    _, _, proto, payload = ip_payload(packet)
    return proto == 6 and len(payload) > 20


def is_flagged(packet):
    _, _, _, payload = ip_payload(packet)
    return 443 in struct.unpack("!HH", payload[:4])


def fragmented(packets, strategy):
    out = []
    ident = 100
    for p in packets:
        if not has_data(p):
            out.append(p)
            continue
        ident += 1
        client_data = is_to_server(p)
        if strategy == "reversed":
            out += list(reversed(fragments(p, 16, ident)))
        elif strategy in ("overlap_first_real", "overlap_last_real") and client_data:
            _, _, _, payload = ip_payload(p)
            if is_flagged(p):
                # Bytes 24..40 of the segment (the banner from its 5th byte) in another version.
                other = bytes(b ^ 0x20 for b in payload[24:40])
            else:
                other = payload[24:40]
            frags = fragments(p, 16, ident)
            copy = fragments(p, 16, ident, extra=[(0, 24, other)])[0]
            # frags[1] covers 16..32 and frags[2] 32..48: the copy overlaps both.
            if strategy == "overlap_first_real":
                out += frags[:3] + [copy] + frags[3:]
            else:
                out += frags[:1] + [copy] + frags[1:]
        elif strategy == "too_many" and is_flagged(p):
            out += fragments(p, 8, ident)
        elif strategy == "too_many":
            _, _, _, payload = ip_payload(p)
            out += fragments(p, (len(payload) // 3 + 7) // 8 * 8, ident)
        else:
            out += fragments(p, 16, ident)
    return out


# An SSH banner followed by a key exchange packet (what real clients send at once): long
# enough that 8-byte fragments are more than 64.
SSH_KEXINIT = struct.pack("!IBB", 596, 10, 20) + bytes(range(256)) * 2 + b"\0" * 82
LONG_SSH_CLIENT = SSH_CLIENT + SSH_KEXINIT
LONG_SSH_SERVER = SSH_SERVER + SSH_KEXINIT


def gtp_outer_fragments(packets):
    out = []
    ident = 500
    for inner in packets:
        outer = outer_ipv4(inner, 17, udp(2152, 2152, gtp_u(inner)))
        if has_data(inner):
            ident += 1
            out += fragments(outer, 48, ident)
        else:
            out.append(outer)
    return out


def is_to_server(inner):
    """Whether an inner IP packet goes from the client side (for outer addressing)."""
    if inner[0] >> 4 == 4:
        return inner[12:16] == CLIENT4
    return inner[8:24] == CLIENT6


def outer_ipv4(inner, proto, payload):
    a, b = (OUTER_A4, OUTER_B4) if is_to_server(inner) else (OUTER_B4, OUTER_A4)
    return ipv4(a, b, proto, payload)


def outer_ipv6(inner, nh, payload):
    a, b = (OUTER_A6, OUTER_B6) if is_to_server(inner) else (OUTER_B6, OUTER_A6)
    return ipv6(a, b, nh, payload)


def inner_ethertype(inner):
    return 0x0800 if inner[0] >> 4 == 4 else 0x86DD


def gre_header(flags, proto, key=None, seq=None, csum=False):
    h = struct.pack("!HH", flags, proto)
    if csum:
        h += b"\0\0\0\0"
    if key is not None:
        h += struct.pack("!I", key)
    if seq is not None:
        h += struct.pack("!I", seq)
    return h


def wrap_gre(inner):
    return eth(0x0800, outer_ipv4(inner, 47, gre_header(0, inner_ethertype(inner)) + inner))


def wrap_gre_key_seq(inner):
    h = gre_header(0x8000 | 0x2000 | 0x1000, inner_ethertype(inner), key=77, seq=3, csum=True)
    return eth(0x0800, outer_ipv4(inner, 47, h + inner))


def wrap_gre_teb(inner):
    h = gre_header(0, 0x6558)
    return eth(0x0800, outer_ipv4(inner, 47, h + eth(inner_ethertype(inner), inner)))


def wrap_erspan2(inner):
    # GRE with the sequence bit, then the 8-byte ERSPAN II header (version 1, session 5).
    h = gre_header(0x1000, 0x88BE, seq=9)
    erspan = struct.pack("!HHI", 0x1000 | 0, 0x0005, 0)
    return eth(0x0800, outer_ipv4(inner, 47, h + erspan + eth(inner_ethertype(inner), inner)))


def wrap_erspan3(inner):
    h = gre_header(0x1000, 0x22EB, seq=9)
    # 12-byte ERSPAN III header with the O bit set, then the 8-byte platform subheader.
    erspan = struct.pack("!HHIHH", 0x2000, 0x0005, 0, 0, 0x0001) + b"\0" * 8
    return eth(0x0800, outer_ipv4(inner, 47, h + erspan + eth(inner_ethertype(inner), inner)))


def wrap_ipip(inner):
    return eth(0x0800, outer_ipv4(inner, 4 if inner[0] >> 4 == 4 else 41, inner))


def wrap_over_ipv6(inner):
    return eth(0x86DD, outer_ipv6(inner, 4 if inner[0] >> 4 == 4 else 41, inner))


def wrap_vxlan(inner):
    vx = struct.pack("!BxxxI", 0x08, 4242 << 8)
    return eth(0x0800, outer_ipv4(inner, 17, udp(51000, 4789, vx + eth(inner_ethertype(inner), inner))))


def wrap_geneve(inner):
    # One 8-byte option (class 0x0102, type 0x80, 4 bytes of data), Ethernet inside.
    option = struct.pack("!HBB", 0x0102, 0x80, 1) + b"\x01\x02\x03\x04"
    gen = struct.pack("!BBHI", len(option) // 4, 0, 0x6558, 77 << 8) + option
    return eth(0x0800, outer_ipv4(inner, 17, udp(51000, 6081, gen + eth(inner_ethertype(inner), inner))))


def gtp_u(inner):
    # Version 1, PT, E flag: sequence word plus one PDU session container extension (0x85).
    ext = struct.pack("!BBBB", 1, 0x00, 0x01, 0)  # length 1 (4 bytes), ..., next type 0
    body = struct.pack("!HBB", 0, 0, 0x85) + ext + inner
    return struct.pack("!BBHI", 0x34, 0xFF, len(body), 0x1234) + body


def wrap_gtp(inner):
    return eth(0x0800, outer_ipv4(inner, 17, udp(2152, 2152, gtp_u(inner))))


def wrap_mpls(inner):
    labels = struct.pack("!I", (1001 << 12) | 64) + struct.pack("!I", (2002 << 12) | 0x100 | 64)
    return eth(0x8847, labels + inner)


def wrap_gtp_in_vxlan(inner):
    """Two tunnels: a mobile core's GTP-U carried across a VXLAN overlay."""
    gtp_packet = outer_ipv4(inner, 17, udp(2152, 2152, gtp_u(inner)))
    vx = struct.pack("!BxxxI", 0x08, 4242 << 8)
    return eth(0x0800, ipv4(OUTER_A4, OUTER_B4, 17, udp(51000, 4789, vx + eth(0x0800, gtp_packet))))


def wrap_too_deep(inner):
    """Five IP-in-IP layers: one more than the default depth of 4."""
    packet = inner
    for _ in range(5):
        packet = ipv4(OUTER_A4, OUTER_B4, 4 if packet[0] >> 4 == 4 else 41, packet)
    return eth(0x0800, packet)


TUNNELS = {
    "gre": (wrap_gre, False),
    "gre_key_seq": (wrap_gre_key_seq, False),
    "gre_teb": (wrap_gre_teb, False),
    "erspan2": (wrap_erspan2, False),
    "erspan3": (wrap_erspan3, False),
    "ipip": (wrap_ipip, False),
    "6in4": (wrap_ipip, True),
    "4in6": (wrap_over_ipv6, False),
    "6in6": (wrap_over_ipv6, True),
    "vxlan": (wrap_vxlan, False),
    "geneve": (wrap_geneve, False),
    "gtpu": (wrap_gtp, False),
    "gtpu_v6": (wrap_gtp, True),
    "mpls": (wrap_mpls, False),
    "gtpu_in_vxlan": (wrap_gtp_in_vxlan, False),
    "too_deep": (wrap_too_deep, False),
}


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            ts = 1_700_000_000 + i // 100
            usec = (i % 100) * 1000
            f.write(struct.pack("<IIII", ts, usec, len(frame), len(frame)))
            f.write(frame)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("fixtures", "evasion")
    os.makedirs(out, exist_ok=True)
    write_pcap(os.path.join(out, "plain.pcap"), [eth(inner_ethertype(p), p) for p in flows()])
    for name, (wrap, v6) in TUNNELS.items():
        write_pcap(os.path.join(out, f"tunnel_{name}.pcap"), [wrap(p) for p in flows(v6)])
    on_eth = lambda packets: [eth(inner_ethertype(p), p) for p in packets]
    for strategy in ("in_order", "reversed", "overlap_first_real", "overlap_last_real"):
        write_pcap(os.path.join(out, f"frag_{strategy}.pcap"), on_eth(fragmented(flows(), strategy)))
    long_flows = flows(flagged_client=LONG_SSH_CLIENT, flagged_server=LONG_SSH_SERVER)
    write_pcap(os.path.join(out, "frag_too_many.pcap"), on_eth(fragmented(long_flows, "too_many")))
    for strategy in ("in_order", "reversed"):
        write_pcap(
            os.path.join(out, f"frag_v6_{strategy}.pcap"),
            on_eth(fragmented(flows(v6=True), strategy)),
        )
    write_pcap(os.path.join(out, "frag_outer_gtpu.pcap"), on_eth(gtp_outer_fragments(flows())))
    for strategy in (
        "one_byte",
        "out_of_order",
        "overlap_first_real",
        "overlap_last_real",
        "syn_data",
        "bad_checksum",
        "rst_out_of_window",
        "low_ttl",
        "low_ttl_rst",
        "high_ttl_syn",
        "out_of_window",
    ):
        write_pcap(os.path.join(out, f"tcp_{strategy}.pcap"), on_eth(tcp_flows(strategy)))


if __name__ == "__main__":
    main()
