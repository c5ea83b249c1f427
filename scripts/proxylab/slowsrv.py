#!/usr/bin/env python3
"""A slow origin for the proxy lab: an HTTPS server (HTTP/1.1 keep-alive, TLS 1.2 and 1.3)
that thinks before every answer for a time drawn afresh per request, not a relay. A benign
control for the relay check (unmask's `relayed`): its TLS handshakes are answered at once, its
requests after a variable think time.

    slowsrv.py --listen IP:PORT --cert CRT --key KEY --token T [--think-ms LO,HI] [--seed N]

GET /probe answers `proxylab-ok <token> <TLS version> HTTP/1.1`. Prints READY once listening.
"""
import argparse
import http.server
import random
import ssl
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--think-ms", default="5,200", help="think time range per request, uniform")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    lo, hi = (float(x) for x in args.think_ms.split(","))
    rng = random.Random(args.seed)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            with lock:
                think = rng.uniform(lo, hi) / 1000.0
            time.sleep(think)
            body = ("proxylab-ok %s %s HTTP/1.1 think=%.0fms\n"
                    % (args.token, self.connection.version(), think * 1000)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *a):
            sys.stderr.write("slowsrv: " + fmt % a + "\n")

    host, port = args.listen.rsplit(":", 1)
    srv = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("READY", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
