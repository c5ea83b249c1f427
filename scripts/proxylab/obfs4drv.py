#!/usr/bin/env python3
"""Runs obfs4proxy without Tor: speaks the pluggable-transport managed protocol (TOR_PT_*
environment in, VERSION/SMETHOD/CMETHOD lines out on its stdout) and keeps its stdin open
(obfs4proxy is started with TOR_PT_EXIT_ON_STDIN_CLOSE=1, so it ends when this driver ends).

    obfs4drv.py server --state DIR --bind IP:PORT --orport IP:PORT --cert-out FILE
        the bridge: obfs4 on IP:PORT, each deobfuscated stream goes to --orport as raw TCP;
        writes the bridge's "cert=...;iat-mode=N" argument string to FILE.
    obfs4drv.py client --state DIR --listen IP:PORT --bridge IP:PORT --cert-file FILE
        a plain TCP listener: each connection is carried through obfs4proxy's SOCKS5 port to the
        bridge, the bridge arguments going in the SOCKS5 username/password as the PT spec says.

Prints "READY ..." on stdout when the transport is up.
"""
import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import threading


def start_pt(env_extra, state):
    os.makedirs(state, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "TOR_PT_MANAGED_TRANSPORT_VER": "1",
        "TOR_PT_STATE_LOCATION": state,
        "TOR_PT_EXIT_ON_STDIN_CLOSE": "1",
    })
    env.update(env_extra)
    proc = subprocess.Popen(["obfs4proxy", "-enableLogging", "-logLevel", "INFO"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc


def read_methods(proc, done_word):
    """The PT's lines up to (and including) done_word; exits on an error line."""
    lines = []
    for line in proc.stdout:
        line = line.strip()
        lines.append(line)
        word = line.split(" ", 1)[0]
        if word in ("VERSION-ERROR", "ENV-ERROR", "SMETHOD-ERROR", "CMETHOD-ERROR", "PROXY-ERROR"):
            sys.exit("obfs4drv: obfs4proxy said: %s" % line)
        if word == done_word:
            return lines
    sys.exit("obfs4drv: obfs4proxy ended before %s (got %r)" % (done_word, lines))


def drain(proc):
    # Later lines (LOG, STATUS) must be read or the pipe fills.
    for line in proc.stdout:
        print("pt: " + line.rstrip(), file=sys.stderr, flush=True)


def server(args):
    proc = start_pt({
        "TOR_PT_SERVER_TRANSPORTS": "obfs4",
        "TOR_PT_SERVER_BINDADDR": "obfs4-" + args.bind,
        "TOR_PT_ORPORT": args.orport,
    }, args.state)
    lines = read_methods(proc, "SMETHODS")
    cert = None
    for line in lines:
        # SMETHOD obfs4 IP:PORT ARGS:cert=...,iat-mode=0
        if line.startswith("SMETHOD obfs4 "):
            for part in line.split(" "):
                if part.startswith("ARGS:"):
                    kv = part[len("ARGS:"):].split(",")
                    cert = ";".join(kv)
    if not cert:
        sys.exit("obfs4drv: no obfs4 SMETHOD with ARGS in %r" % lines)
    with open(args.cert_out, "w") as f:
        f.write(cert + "\n")
    print("READY server %s" % args.bind, flush=True)
    threading.Thread(target=drain, args=(proc,), daemon=True).start()
    return proc


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def socks5_connect(socks_addr, bridge, ptargs):
    s = socket.create_connection(socks_addr, timeout=20)
    s.sendall(b"\x05\x01\x02")
    if s.recv(2) != b"\x05\x02":
        raise OSError("SOCKS5: username/password method refused")
    raw = ptargs.encode()
    user, passwd = raw[:255], raw[255:]
    if not passwd:
        passwd = b"\x00"  # the PT spec: arguments that fit in the username, NUL password
    s.sendall(bytes([1, len(user)]) + user + bytes([len(passwd)]) + passwd)
    if s.recv(2) != b"\x01\x00":
        raise OSError("SOCKS5: authentication refused")
    ip, port = bridge.rsplit(":", 1)
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(ip) + struct.pack("!H", int(port)))
    rep = s.recv(10)
    if len(rep) < 2 or rep[1] != 0:
        raise OSError("SOCKS5: CONNECT to the bridge failed: %r" % rep)
    s.settimeout(None)
    return s


def handle(conn, socks_addr, bridge, ptargs):
    try:
        up = socks5_connect(socks_addr, bridge, ptargs)
    except OSError as e:
        print("obfs4drv: %s" % e, file=sys.stderr, flush=True)
        conn.close()
        return
    t = threading.Thread(target=pipe, args=(up, conn), daemon=True)
    t.start()
    pipe(conn, up)
    t.join()
    conn.close()
    up.close()


def client(args):
    proc = start_pt({"TOR_PT_CLIENT_TRANSPORTS": "obfs4"}, args.state)
    lines = read_methods(proc, "CMETHODS")
    socks_addr = None
    for line in lines:
        # CMETHOD obfs4 socks5 127.0.0.1:PORT
        f = line.split(" ")
        if len(f) >= 4 and f[0] == "CMETHOD" and f[1] == "obfs4":
            h, p = f[3].rsplit(":", 1)
            socks_addr = (h, int(p))
    if not socks_addr:
        sys.exit("obfs4drv: no obfs4 CMETHOD in %r" % lines)
    threading.Thread(target=drain, args=(proc,), daemon=True).start()
    with open(args.cert_file) as f:
        ptargs = f.read().strip()
    h, p = args.listen.rsplit(":", 1)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((h, int(p)))
    srv.listen(64)

    def accept_loop():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn, socks_addr, args.bridge, ptargs), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    print("READY client %s via socks5 %s:%d" % (args.listen, socks_addr[0], socks_addr[1]), flush=True)
    return proc


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--state", required=True)
    s.add_argument("--bind", required=True)
    s.add_argument("--orport", required=True)
    s.add_argument("--cert-out", required=True)
    c = sub.add_parser("client")
    c.add_argument("--state", required=True)
    c.add_argument("--listen", required=True)
    c.add_argument("--bridge", required=True)
    c.add_argument("--cert-file", required=True)
    args = ap.parse_args()

    proc = server(args) if args.cmd == "server" else client(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set() and proc.poll() is None:
        stop.wait(0.5)
    if proc.poll() is None:
        proc.stdin.close()  # obfs4proxy ends on stdin close
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
