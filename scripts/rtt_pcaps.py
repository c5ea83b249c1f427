#!/usr/bin/env python3
"""Writes the round-trip fixtures for the relay check: one HTTP/1.1 keep-alive connection per
pcap (Ethernet, IPv4), the same bytes in each, only the packet times differ:

  relayed.pcap      the server's TCP answers in 20 ms (SYN/ACK, ACKs), its HTTP answers
                    come 80 ms later than that on every request: a relay whose origin is
                    one 80 ms leg further (3 requests)
  direct.pcap       TCP and HTTP both answered in about 20 ms (3 requests)
  slow_origin.pcap  TCP in 20 ms, HTTP answers after a think time that varies from request
                    to request: 2, 120, 4, 60, 3, 200 ms (6 requests), not a relay

Client 10.1.0.1:40001 -> server 10.2.0.2:80, seen by an appliance 0.3 ms from the client
(client-side RTT 0.3 ms). Run from the repository root: `python3 scripts/rtt_pcaps.py
[OUTDIR]` (default fixtures/rtt). Standard library only, deterministic: tests/relay_rtt.rs
checks that the committed files are what this writes.
"""

import os
import struct
import sys

# The Internet checksum, from the evasion fixtures' writer beside this script.
from evasion_pcaps import checksum

CLIENT = bytes([10, 1, 0, 1])
SERVER = bytes([10, 2, 0, 2])
CPORT, SPORT = 40001, 80
MAC_C = bytes([2, 0, 0, 0, 0, 1])
MAC_S = bytes([2, 0, 0, 0, 0, 2])
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
BASE_US = 1_700_000_000 * 1_000_000

# Milliseconds: the server side's transport RTT, the client side's.
SERVER_RTT = 20.0
CLIENT_RTT = 0.3

BODY = b"<!doctype html><html><head><title>ok</title></head><body>ok</body></html>\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + BODY
)


def request(i):
    return (
        b"GET /page" + str(i).encode() + b".html HTTP/1.1\r\nHost: www.example.com\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        b"Accept: text/html\r\nAccept-Language: en-US,en;q=0.5\r\n"
        b"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n"
    )


def frame(from_client, seq, ack, flags, payload=b""):
    src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
    sport, dport = (CPORT, SPORT) if from_client else (SPORT, CPORT)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    csum = checksum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    macs = (MAC_S + MAC_C) if from_client else (MAC_C + MAC_S)
    return macs + b"\x08\x00" + ip + tcp + payload


def connection(answers_ms):
    """Frames (time in ms, bytes) of one keep-alive connection: request i leaves the client at
    100 + 200 i ms and is answered answers_ms[i] later (the server's ACK of it at 20 ms when
    the answer takes longer)."""
    out = []
    c, s = 1000, 50000
    out.append((0.0, frame(True, c, 0, SYN)))
    out.append((SERVER_RTT, frame(False, s, c + 1, SYN | ACK)))
    c, s = c + 1, s + 1
    out.append((SERVER_RTT + CLIENT_RTT, frame(True, c, s, ACK)))
    t = 0.0
    for i, answer in enumerate(answers_ms):
        t = 100.0 + 200.0 * i
        req = request(i)
        out.append((t, frame(True, c, s, PSH | ACK, req)))
        c += len(req)
        if answer > SERVER_RTT + 5:
            out.append((t + SERVER_RTT, frame(False, s, c, ACK)))
        out.append((t + answer, frame(False, s, c, PSH | ACK, RESPONSE)))
        s += len(RESPONSE)
        out.append((t + answer + CLIENT_RTT, frame(True, c, s, ACK)))
    t = out[-1][0] + 50.0
    out.append((t, frame(True, c, s, FIN | ACK)))
    out.append((t + SERVER_RTT, frame(False, s, c + 1, FIN | ACK)))
    out.append((t + SERVER_RTT + CLIENT_RTT, frame(True, c + 1, s + 1, ACK)))
    out.sort(key=lambda x: x[0])
    return out


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ms, data in frames:
            us = BASE_US + round(ms * 1000)
            f.write(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(data), len(data)))
            f.write(data)


FIXTURES = {
    "relayed.pcap": [SERVER_RTT + 81.0, SERVER_RTT + 82.0, SERVER_RTT + 80.5],
    "direct.pcap": [SERVER_RTT + 1.0, SERVER_RTT + 1.5, SERVER_RTT + 0.8],
    "slow_origin.pcap": [SERVER_RTT + think for think in (2.0, 120.0, 4.0, 60.0, 3.0, 200.0)],
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("fixtures", "rtt")
    os.makedirs(out, exist_ok=True)
    for name, answers in FIXTURES.items():
        write_pcap(os.path.join(out, name), connection(answers))


if __name__ == "__main__":
    main()
