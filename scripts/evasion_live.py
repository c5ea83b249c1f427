#!/usr/bin/env python3
"""The live evasion suite's peers (tests/lab_evasion.rs, scripts/evasion.sh).

  serve --addr A --dir D      a recording server on A, ports 80 (HTTP) and 443 (answers an SSH
                              banner with its own): every connection's received bytes land in
                              D/<client port>.bin, and the answer is sent once the request is
                              whole (HTTP: end of head; SSH: end of line)
  play --src S --dst A --iface I [--l3] --sport P --kind http|ssh --strategy NAME
                              a TCP client in user space that plays one evasion strategy
                              (raw IPv4 out, AF_PACKET in) and prints one JSON line: whether
                              the handshake completed, the answer's bytes (hex) and whether the
                              server acknowledged every byte of the request

The client sends from an address its namespace does not own (the server side has a static
neighbour entry for it), so the kernel never answers the server's segments with a RST. Packets
are built with scripts/evasion_pcaps.py's helpers, the offline fixtures' builder. Standard
library only; needs root (raw sockets).
"""

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

# Run as root from the repository: leave no bytecode cache behind in scripts/.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evasion_pcaps as ev  # noqa: E402

FIN, SYN, RST, PSH, ACK = ev.FIN, ev.SYN, ev.RST, ev.PSH, ev.ACK
SSH_CLIENT = ev.SSH_CLIENT
SSH_SERVER = ev.SSH_SERVER
HTTP_REQUEST = ev.HTTP_REQUEST
HTTP_RESPONSE = ev.HTTP_RESPONSE

STRATEGIES = (
    "plain",
    "one_byte",
    "out_of_order",
    "overlap_first_real",
    "overlap_last_real",
    "frag_in_order",
    "frag_reversed",
    "frag_overlap_first_real",
    "frag_overlap_last_real",
    "bad_checksum",
    "low_ttl",
    "low_ttl_rst",
    "high_ttl_syn",
    "rst_out_of_window",
    "syn_data",
)


def serve(args):
    os.makedirs(args.dir, exist_ok=True)

    def handle(conn, peer, port):
        conn.settimeout(5)
        got = b""
        end = b"\r\n\r\n" if port == 80 else b"\r\n"
        try:
            while end not in got:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                got += chunk
            if end in got:
                conn.sendall(HTTP_RESPONSE if port == 80 else SSH_SERVER)
        except OSError:
            pass
        with open(os.path.join(args.dir, "%d.bin" % peer[1]), "wb") as f:
            f.write(got)
        try:
            conn.close()
        except OSError:
            pass

    def listen(port):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((args.addr, port))
        s.listen(64)
        while True:
            conn, peer = s.accept()
            threading.Thread(target=handle, args=(conn, peer, port), daemon=True).start()

    for port in (80, 443):
        threading.Thread(target=listen, args=(port,), daemon=True).start()
    open(os.path.join(args.dir, "ready"), "w").close()
    while True:
        time.sleep(3600)


class Client:
    def __init__(self, src, dst, iface, sport, dport, l2):
        self.src, self.dst = socket.inet_aton(src), socket.inet_aton(dst)
        self.dst_s = dst
        self.sport, self.dport = sport, dport
        self.out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.inp = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        self.inp.bind((iface, 0))
        self.ident = sport * 16 % 65536
        # Bytes before the IP header in what the device hands up: Ethernet's 14, none on an
        # IP tunnel's device.
        self.l2 = 14 if l2 else 0

    def ip(self, seg, ttl=64, ident=None):
        if ident is None:
            self.ident = (self.ident + 1) % 65536
            ident = self.ident
        return ev.ipv4(self.src, self.dst, 6, seg, ident=ident, ttl=ttl)

    def seg(self, seq, ack, flags, data=b""):
        return ev.tcp(self.src, self.dst, self.sport, self.dport, seq, ack, flags, data)

    def send(self, packet):
        self.out.sendto(packet, (self.dst_s, 0))

    def recv(self, timeout):
        """The next segment from the server as (seq, ack, flags, payload), or None."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return None
            self.inp.settimeout(left)
            try:
                frame = self.inp.recv(65536)
            except socket.timeout:
                return None
            ip = frame[self.l2:]
            if len(ip) < 40 or ip[9] != 6 or ip[12:16] != self.dst or ip[16:20] != self.src:
                continue
            total = struct.unpack("!H", ip[2:4])[0]
            ihl = (ip[0] & 15) * 4
            t = ip[ihl:total]
            sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", t[:14])
            if sport != self.dport or dport != self.sport:
                continue
            return seq, ack, flags, t[(off >> 4) * 4:]


def strategy_packets(c, name, d, a, data, decoy):
    """The IP packets that carry `data` (at sequence `d`, acknowledging `a`) as `name` says."""
    n = len(data)
    seg = lambda seq, payload, flags=PSH | ACK: c.seg(seq, a, flags, payload)  # noqa: E731
    whole = c.ip(seg(d, data))
    if name in ("plain", "syn_data", "high_ttl_syn"):
        return [whole]
    if name == "one_byte":
        return [c.ip(seg(d + i, data[i:i + 1], ACK)) for i in range(n)]
    if name == "out_of_order":
        q = n // 4
        cuts = [(0, q), (q, 2 * q), (2 * q, 3 * q), (3 * q, n)]
        return [c.ip(seg(d + x, data[x:y])) for x, y in reversed(cuts)]
    if name == "overlap_first_real":
        return [
            c.ip(seg(d, data[:20], ACK)),
            c.ip(seg(d + 10, decoy[10:30], ACK)),
            c.ip(seg(d + 20, data[20:])),
        ]
    if name == "overlap_last_real":
        return [c.ip(seg(d + 10, decoy[10:30], ACK)), whole]
    if name == "bad_checksum":
        bad = c.ip(seg(d, decoy))
        return [bad[:36] + bytes([bad[36] ^ 0xFF]) + bad[37:], whole]
    if name == "low_ttl":
        return [c.ip(seg(d, decoy), ttl=1), whole]
    if name == "low_ttl_rst":
        return [c.ip(c.seg(d, 0, RST), ttl=1), whole]
    if name == "rst_out_of_window":
        return [c.ip(c.seg(d + n + 50000, 0, RST)), whole]
    if name.startswith("frag_"):
        c.ident = (c.ident + 1) % 65536
        frags = ev.fragments(whole, 16, c.ident)
        if name == "frag_in_order":
            return frags
        if name == "frag_reversed":
            return list(reversed(frags))
        # A copy of bytes 24..40 of the segment (from the payload's 5th byte) in the decoy's
        # version, overlapping the second and third fragments.
        other = (seg(d, decoy))[24:40]
        copy = ev.fragments(whole, 16, c.ident, extra=[(0, 24, other)])[0]
        if name == "frag_overlap_first_real":
            return frags[:3] + [copy] + frags[3:]
        return frags[:1] + [copy] + frags[1:]
    raise SystemExit("unknown strategy %r; known: %s" % (name, ", ".join(STRATEGIES)))


def play(args):
    http = args.kind == "http"
    dport = 80 if http else 443
    data = HTTP_REQUEST if http else SSH_CLIENT
    # The decoy differs from the real bytes; a benign flow's decoy is another benign request
    # where the decoy never reaches the server (checksum, TTL) and the same bytes where the
    # server would see both copies (overlaps, fragments, SYN data), as a retransmission.
    unreachable = args.strategy in ("bad_checksum", "low_ttl")
    if http and not unreachable:
        decoy = data
    elif http:
        decoy = data.replace(b"/index.html", b"/other.html")
    elif args.strategy == "syn_data":
        # The start of a TLS ClientHello (record and handshake headers, then zeros): what an
        # inspector that kept the SYN's bytes would wait on while the SSH banner goes through.
        decoy = bytes.fromhex("160301020001000200fc0303").ljust(len(data), b"\0")
    else:
        decoy = bytes(b ^ 0x20 for b in data)
    c = Client(args.src, args.dst, args.iface, args.sport, dport, args.l2)
    cs = (args.sport * 7919) % (1 << 31)
    syn_data = decoy if args.strategy == "syn_data" else b""
    # A SYN with a higher TTL than the data: the flagged flow's data then looks like it expires
    # early, until the server acknowledges it (the benign flow plays it straight).
    syn_ttl = 200 if args.strategy == "high_ttl_syn" and not http else 64
    result = {"strategy": args.strategy, "kind": args.kind, "handshake": False,
              "answer": "", "acked": False}
    synack = None
    for _ in range(3):
        c.send(c.ip(c.seg(cs, 0, SYN, syn_data), ttl=syn_ttl))
        t0 = time.time()
        while synack is None and time.time() - t0 < 1.0:
            r = c.recv(1.0)
            if r and r[2] & SYN and r[2] & ACK:
                synack = r
        if synack:
            break
    if synack is None:
        print(json.dumps(result))
        return
    result["handshake"] = True
    ss = synack[0]
    d, a = cs + 1, ss + 1
    c.send(c.ip(c.seg(d, a, ACK)))
    for p in strategy_packets(c, args.strategy, d, a, data, decoy):
        c.send(p)
    answer = b""
    end = d + len(data)
    acked = False
    tries = 0
    last_send = time.time()
    deadline = time.time() + args.timeout
    fin = False
    while time.time() < deadline:
        r = c.recv(0.3)
        if r is not None:
            seq, ack, flags, payload = r
            if flags & RST:
                break
            if flags & ACK and (ack - end) % (1 << 32) < (1 << 31):
                acked = True
            if payload and seq == a:
                answer += payload
                a += len(payload)
            if flags & FIN and seq + len(payload) == a:
                a += 1
                fin = True
            if payload or flags & FIN:
                c.send(c.ip(c.seg(end, a, ACK)))
            if fin:
                break
            continue
        # No word from the server: resend what it has not acknowledged, plainly (a receiver
        # drops overlapping fragments whole, and a real client retransmits).
        if not acked and tries < 3 and time.time() - last_send > 1.0:
            tries += 1
            last_send = time.time()
            c.send(c.ip(c.seg(d, a, PSH | ACK, data)))
    c.send(c.ip(c.seg(end, a, FIN | ACK)))
    result["answer"] = answer.hex()
    result["acked"] = acked
    print(json.dumps(result))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--addr", required=True)
    s.add_argument("--dir", required=True)
    p = sub.add_parser("play")
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--iface", required=True)
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--kind", choices=("http", "ssh"), required=True)
    p.add_argument("--strategy", choices=STRATEGIES, required=True)
    p.add_argument("--timeout", type=float, default=4.0)
    layer = p.add_mutually_exclusive_group()
    layer.add_argument("--l2", dest="l2", action="store_true", default=True,
                       help="--iface hands up Ethernet frames (default)")
    layer.add_argument("--l3", dest="l2", action="store_false",
                       help="--iface is an IP tunnel's device: packets start at the IP header")
    a = ap.parse_args()
    serve(a) if a.cmd == "serve" else play(a)


if __name__ == "__main__":
    main()
