#!/usr/bin/env python3
"""Traffic peers for the namespace tests: a sink that counts what it receives, and a sender
that opens with chosen bytes and then streams more in chunks, so a test can tell how far a
flow got through the appliance.

  peer.py sink --listen ADDR:PORT --out FILE [--banner TEXT] [--reply-hex HEX]
  peer.py send --to ADDR:PORT [--hello-hex HEX | --hello TEXT] [--chunks N] [--chunk-size B]
               [--pause S] [--out FILE]

The sink accepts one connection, optionally sends a banner first (server-first protocols) and
a reply after the first bytes arrive, and writes the byte count it received to FILE when the
peer closes or goes quiet for 3 seconds. The sender writes the byte count it received.
"""
import argparse
import os
import socket
import sys
import time


def split_addr(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def drain(conn, quiet):
    total = 0
    conn.settimeout(quiet)
    while True:
        try:
            data = conn.recv(65536)
        except (socket.timeout, OSError):
            break
        if not data:
            break
        total += len(data)
    return total


def sink(args):
    host, port = split_addr(args.listen)
    srv = socket.socket(family(host), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(1)
    srv.settimeout(args.accept_timeout)
    if args.ready:
        open(args.ready, "w").write("ready\n")
    total = 0
    try:
        conn, _ = srv.accept()
        if args.banner:
            conn.sendall(args.banner.encode().decode("unicode_escape").encode("latin-1"))
        if args.reply_hex:
            conn.settimeout(3)
            try:
                first = conn.recv(65536)
                total += len(first)
                conn.sendall(bytes.fromhex(args.reply_hex))
            except (socket.timeout, OSError):
                pass
        total += drain(conn, 3)
        conn.close()
    except socket.timeout:
        pass
    with open(args.out, "w") as f:
        f.write(f"{total}\n")


def send(args):
    host, port = split_addr(args.to)
    received = 0
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.settimeout(0.2)
        if args.hello_hex:
            s.sendall(bytes.fromhex(args.hello_hex))
        elif args.hello:
            s.sendall(args.hello.encode().decode("unicode_escape").encode("latin-1"))
        for _ in range(args.chunks):
            time.sleep(args.pause)
            try:
                s.sendall(os.urandom(args.chunk_size))
            except OSError:
                break
            try:
                data = s.recv(65536)
                received += len(data)
            except (socket.timeout, OSError):
                pass
        received += drain(s, 1)
        s.close()
    except OSError as e:
        print(f"peer.py send: {e}", file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"{received}\n")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("sink")
    k.add_argument("--listen", required=True)
    k.add_argument("--out", required=True)
    k.add_argument("--banner")
    k.add_argument("--reply-hex")
    k.add_argument("--ready")
    k.add_argument("--accept-timeout", type=float, default=30)
    s = sub.add_parser("send")
    s.add_argument("--to", required=True)
    s.add_argument("--hello-hex")
    s.add_argument("--hello")
    s.add_argument("--chunks", type=int, default=10)
    s.add_argument("--chunk-size", type=int, default=1000)
    s.add_argument("--pause", type=float, default=0.05)
    s.add_argument("--out")
    args = p.parse_args()
    {"sink": sink, "send": send}[args.cmd](args)


if __name__ == "__main__":
    main()
