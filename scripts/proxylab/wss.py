#!/usr/bin/env python3
"""A small RFC 6455 WebSocket echo server and client (stdlib only), for the benign wss scenario.

    wss.py server --listen IP:PORT
        plain WebSocket (nginx in front terminates TLS and forwards the Upgrade); echoes every
        text or binary message, answers pings, closes on close.
    wss.py client --host NAME --connect IP:PORT --path /ws --cafile CA --tls 1.2|1.3
                  [--messages K] [--seed S]
        TLS to the site (ALPN http/1.1), the Upgrade handshake, K messages of varied sizes,
        each echo checked; prints "wss-ok <messages>" and exits 0 when all came back.
"""
import argparse
import base64
import hashlib
import os
import random
import socket
import ssl
import struct
import sys
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def read_http_head(sock):
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(1)
        if not chunk:
            raise EOFError("connection closed in the HTTP head")
        buf += chunk
        if len(buf) > 16384:
            raise ValueError("HTTP head too long")
    lines = buf.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


def send_frame(sock, opcode, payload, mask):
    head = bytearray([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head.append(mbit | n)
    elif n < 65536:
        head.append(mbit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mbit | 127)
        head += struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes(head) + payload)


def recv_frame(sock):
    """(fin, opcode, payload), unmasked."""
    b0, b1 = read_exact(sock, 2)
    fin, opcode = bool(b0 & 0x80), b0 & 0x0F
    masked, n = bool(b1 & 0x80), b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(sock, 8))[0]
    key = read_exact(sock, 4) if masked else None
    payload = read_exact(sock, n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return fin, opcode, payload


def recv_message(sock, mask_replies):
    """A whole message (fragments joined); answers pings on the way. (opcode, payload) or None on close."""
    parts, first_op = [], None
    while True:
        fin, op, payload = recv_frame(sock)
        if op == OP_PING:
            send_frame(sock, OP_PONG, payload, mask_replies)
            continue
        if op == OP_PONG:
            continue
        if op == OP_CLOSE:
            return None, payload
        if op != OP_CONT:
            first_op = op
        parts.append(payload)
        if fin:
            return first_op, b"".join(parts)


def serve_conn(conn):
    try:
        request, headers = read_http_head(conn)
        key = headers.get("sec-websocket-key")
        if not request.startswith("GET ") or headers.get("upgrade", "").lower() != "websocket" or not key:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n" % accept_key(key)).encode())
        while True:
            op, payload = recv_message(conn, mask_replies=False)
            if op is None:
                send_frame(conn, OP_CLOSE, payload[:2] if payload else b"", mask=False)
                return
            send_frame(conn, op, payload, mask=False)
    except (EOFError, OSError, ValueError):
        pass
    finally:
        conn.close()


def server(listen):
    host, port = listen.rsplit(":", 1)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(64)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve_conn, args=(conn,), daemon=True).start()


def client(args):
    ip, port = args.connect.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=args.cafile)
    ver = ssl.TLSVersion.TLSv1_2 if args.tls == "1.2" else ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = ver
    ctx.maximum_version = ver
    ctx.set_alpn_protocols(["http/1.1"])
    rnd = random.Random(args.seed)
    raw = socket.create_connection((ip, int(port)), timeout=20)
    sock = ctx.wrap_socket(raw, server_hostname=args.host)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                  "Origin: https://%s\r\nUser-Agent: proxylab-wss/1\r\n\r\n"
                  % (args.path, args.host, key, args.host)).encode())
    status, headers = read_http_head(sock)
    if " 101 " not in status + " " or headers.get("sec-websocket-accept") != accept_key(key):
        print("wss-fail handshake: %s" % status, file=sys.stderr)
        return 1
    for i in range(args.messages):
        if rnd.random() < 0.5:
            op, payload = OP_TEXT, ("msg %d " % i + "x" * rnd.randint(10, 400)).encode()
        else:
            op, payload = OP_BIN, os.urandom(rnd.randint(16, 3000))
        send_frame(sock, op, payload, mask=True)
        rop, echoed = recv_message(sock, mask_replies=True)
        if rop != op or echoed != payload:
            print("wss-fail echo %d" % i, file=sys.stderr)
            return 1
    send_frame(sock, OP_CLOSE, struct.pack("!H", 1000), mask=True)
    try:
        recv_message(sock, mask_replies=True)
    except (EOFError, OSError):
        pass
    sock.close()
    print("wss-ok %d" % args.messages)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--listen", required=True)
    c = sub.add_parser("client")
    c.add_argument("--host", required=True)
    c.add_argument("--connect", required=True)
    c.add_argument("--path", default="/ws")
    c.add_argument("--cafile", required=True)
    c.add_argument("--tls", choices=["1.2", "1.3"], required=True)
    c.add_argument("--messages", type=int, default=8)
    c.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    if args.cmd == "server":
        server(args.listen)
        return 0
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
