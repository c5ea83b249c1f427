#!/usr/bin/env python3
"""The proxy lab: real proxy and benign traffic across a delayed link, captured on one leg.

    client ns  ==[TAP pair + tapfwd.py delay line]==  proxy ns  ==[veth]==  site ns
    10.99.1.1 (${P}tc)                        10.99.1.2 (${P}tp)
                                               10.99.2.1 (${P}vp) ======== 10.99.2.2 (${P}vs)

With --site-delay-ms MS > 0 the proxy <-> site link is a second TAP pair and tapfwd.py delay
line (same device names) instead of the veth, so a relay in the proxy namespace has a real
leg to its origin (the relay check's extra round trip).

The site namespace runs nginx (HTTPS with HTTP/2 on 443 for TLS 1.2 and 1.3, TLS 1.2 only on
8443, plain HTTP on 80, a WebSocket echo and git http-backend behind it) and sshd. The proxy
namespace routes between the two and runs the proxy servers; the client namespace runs the
proxy clients and the inner clients. tcpdump captures the client <-> proxy leg on the client's
TAP: one pcap per scenario and inner TLS version.

    lab.py run --prefix P --out DIR [--quick] [--only A,B] [--delay-ms MS] [--site-delay-ms MS]
               [--client curl|chromium|curl,chromium]
    lab.py cleanup --prefix P
    lab.py list

Writes DIR/manifest.json (see scripts/proxylab/README.md). Every namespace, device, process and
/etc/netns/<ns> entry it made is removed on exit, also on failure or a signal.
"""
import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pcapstat  # noqa: E402

PY = sys.executable or "python3"

CLIENT_IP = "10.99.1.1"
PROXY_IP = "10.99.1.2"
PROXY_INNER_IP = "10.99.2.1"
SITE_IP = "10.99.2.2"
SITE12_IP = "10.99.2.3"  # a second site address whose port 443 speaks TLS 1.2 only
SITE = "site.lab"
PROXY = "proxy.lab"
SOCKS = "127.0.0.1:1080"


def log(msg):
    print("proxylab: " + msg, file=sys.stderr, flush=True)


def sh(argv, check=True, **kw):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


class Lab:
    def __init__(self, prefix, work, delay_ms, site_delay_ms=0.0):
        self.p = prefix
        self.work = work
        self.delay_ms = delay_ms
        self.site_delay_ms = site_delay_ms
        self.ns_c, self.ns_p, self.ns_s = prefix + "-c", prefix + "-p", prefix + "-s"
        self.tap_c, self.tap_p = prefix + "tc", prefix + "tp"
        self.veth_p, self.veth_s = prefix + "vp", prefix + "vs"
        self.procs = []
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        for n in (self.tap_c, self.veth_p):
            if len(n) > 15:
                raise SystemExit("proxylab: prefix %r too long for interface names" % prefix)

    # ---- processes -------------------------------------------------------------------
    def spawn(self, ns, argv, name, env=None, stdin=None, stdout=None):
        """A long-running process in namespace ns (None: the root one), logged to logs/name.log."""
        logf = open(os.path.join(self.logs, name + ".log"), "ab")
        full = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.Popen(full, stdout=stdout if stdout is not None else logf, stderr=logf,
                             stdin=stdin if stdin is not None else subprocess.DEVNULL, env=e,
                             start_new_session=True)
        p.lab_name = name
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=3.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def run(self, ns, argv, timeout=60, env=None, input=None):
        full = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
        e = dict(os.environ)
        if env:
            e.update(env)
        try:
            return subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                                  env=e, input=input)
        except subprocess.TimeoutExpired as ex:
            return subprocess.CompletedProcess(full, 124, ex.stdout or b"", (ex.stderr or b"") + b"\ntimeout")

    def kill_in_ns(self, ns, names):
        """SIGKILL to the processes of namespace ns whose command name starts with one of names."""
        for pid in sh(["ip", "netns", "pids", ns], check=False).stdout.split():
            try:
                with open("/proc/%s/comm" % pid) as f:
                    comm = f.read().strip()
                if comm.startswith(tuple(names)):
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def wait_listen(self, ns, port, proc=None, timeout=15.0, ip=None):
        """Waits until something listens on TCP port in ns; fails early if proc died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = sh(["ip", "netns", "exec", ns, "ss", "-Hltn", "sport = :%d" % port], check=False).stdout
            if out.strip():
                return True
            if proc is not None and proc.poll() is not None:
                raise RuntimeError("%s exited with %s (see logs/%s.log)" % (proc.lab_name, proc.returncode,
                                                                           proc.lab_name))
            time.sleep(0.05)
        raise RuntimeError("nothing listens on port %d in %s after %.0fs" % (port, ns, timeout))

    # ---- topology --------------------------------------------------------------------
    def up(self):
        self.down(quiet=True)
        for ns in (self.ns_c, self.ns_p, self.ns_s):
            sh(["ip", "netns", "add", ns])
            # `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts: names for the lab.
            d = os.path.join("/etc/netns", ns)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "hosts"), "w") as f:
                f.write("127.0.0.1 localhost\n%s %s\n%s %s\n" % (SITE_IP, SITE, PROXY_IP, PROXY))
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            sh(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            sh(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])
        fwd = self.spawn(None, [PY, os.path.join(HERE, "tapfwd.py"), "--dev-a", self.tap_c, "--ns-a", self.ns_c,
                                "--dev-b", self.tap_p, "--ns-b", self.ns_p, "--delay-ms", str(self.delay_ms)],
                         "tapfwd", stdout=subprocess.PIPE)
        line = fwd.stdout.readline().decode().strip()
        if line != "READY":
            raise RuntimeError("tapfwd did not start (see logs/tapfwd.log)")
        self.fwd = fwd
        if self.site_delay_ms > 0:
            # The proxy <-> site leg delayed too: a relay's extra leg to its origin.
            sfwd = self.spawn(None, [PY, os.path.join(HERE, "tapfwd.py"), "--dev-a", self.veth_p, "--ns-a",
                                     self.ns_p, "--dev-b", self.veth_s, "--ns-b", self.ns_s, "--delay-ms",
                                     str(self.site_delay_ms)], "tapfwd-site", stdout=subprocess.PIPE)
            if sfwd.stdout.readline().decode().strip() != "READY":
                raise RuntimeError("tapfwd (site leg) did not start (see logs/tapfwd-site.log)")
        else:
            sh(["ip", "link", "add", self.veth_p, "netns", self.ns_p, "type", "veth", "peer", "name", self.veth_s,
                "netns", self.ns_s])
        for ns, dev, a in ((self.ns_c, self.tap_c, CLIENT_IP), (self.ns_p, self.tap_p, PROXY_IP),
                           (self.ns_p, self.veth_p, PROXY_INNER_IP), (self.ns_s, self.veth_s, SITE_IP)):
            sh(["ip", "-n", ns, "addr", "add", a + "/24", "dev", dev])
            sh(["ip", "-n", ns, "link", "set", dev, "up"])
        sh(["ip", "-n", self.ns_s, "addr", "add", SITE12_IP + "/24", "dev", self.veth_s])
        # Permanent neighbour entries across the delay line: an ARP exchange in the middle of a
        # handshake would add a whole round trip to it (a router's gateway entry is always warm).
        mac_c, mac_p = self.mac(self.ns_c, self.tap_c), self.mac(self.ns_p, self.tap_p)
        sh(["ip", "-n", self.ns_c, "neigh", "replace", PROXY_IP, "lladdr", mac_p, "dev", self.tap_c, "nud", "permanent"])
        sh(["ip", "-n", self.ns_p, "neigh", "replace", CLIENT_IP, "lladdr", mac_c, "dev", self.tap_p, "nud", "permanent"])
        if self.site_delay_ms > 0:
            mac_vp, mac_vs = self.mac(self.ns_p, self.veth_p), self.mac(self.ns_s, self.veth_s)
            for ip in (SITE_IP, SITE12_IP):
                sh(["ip", "-n", self.ns_p, "neigh", "replace", ip, "lladdr", mac_vs, "dev", self.veth_p, "nud",
                    "permanent"])
            sh(["ip", "-n", self.ns_s, "neigh", "replace", PROXY_INNER_IP, "lladdr", mac_vp, "dev", self.veth_s,
                "nud", "permanent"])
        sh(["ip", "-n", self.ns_c, "route", "add", "default", "via", PROXY_IP])
        sh(["ip", "-n", self.ns_s, "route", "add", "default", "via", PROXY_INNER_IP])
        sh(["ip", "netns", "exec", self.ns_p, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        # veth offloads would hand the proxy's stack GSO super-frames it then splits anyway;
        # the TAPs have no offloads, so every frame on the captured leg is a real one.
        r = self.run(self.ns_c, ["ping", "-c", "3", "-i", "0.2", "-W", "2", SITE_IP], timeout=10)
        if r.returncode != 0:
            raise RuntimeError("client cannot reach the site across the delay link: %s" % r.stdout.decode())
        log("topology up: %s -> %s -> %s, one-way delay %s ms, site leg %s ms" % (
            self.ns_c, self.ns_p, self.ns_s, self.delay_ms, self.site_delay_ms))

    def mac(self, ns, dev):
        return json.loads(sh(["ip", "-j", "-n", ns, "link", "show", "dev", dev]).stdout)[0]["address"]

    def down(self, quiet=False):
        for p in list(reversed(self.procs)):
            self.stop(p, timeout=2.0)
        for ns in (self.ns_c, self.ns_p, self.ns_s):
            pids = sh(["ip", "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh(["ip", "netns", "del", ns], check=False)
            shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)
        for dev in (self.tap_c, self.tap_p, self.veth_p, self.veth_s):
            sh(["ip", "link", "del", dev], check=False)
        if not quiet:
            log("cleaned up %s-*" % self.p)

    # ---- capture ---------------------------------------------------------------------
    def capture_start(self, pcap, name, immediate=False):
        """tcpdump on the client's TAP. immediate: every packet is delivered at once; else a
        short capture's last packets may wait in a half-filled capture block that the stop
        never delivers (the proxy lab waits a second before it stops)."""
        errlog = os.path.join(self.logs, name + ".log")
        open(errlog, "wb").close()
        mode = ["--immediate-mode"] if immediate else []
        p = self.spawn(self.ns_c, ["tcpdump", "-Z", "root", "-i", self.tap_c] + mode + ["-s", "0", "-U", "-n", "-w",
                                                                                     pcap, "tcp or udp"], name)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(errlog, "rb") as f:
                if b"listening on" in f.read():
                    return p
            if p.poll() is not None:
                raise RuntimeError("tcpdump ended (see logs/%s.log)" % name)
            time.sleep(0.05)
        raise RuntimeError("tcpdump did not start")

    def capture_stop(self, p):
        self.stop(p, sig=signal.SIGINT, timeout=5.0)


# ---- certificates and site ---------------------------------------------------------------

def make_pki(work):
    d = os.path.join(work, "pki")
    os.makedirs(d, exist_ok=True)
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "3650",
        "-subj", "/O=proxylab/CN=proxylab test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    out = {"ca": ca, "ca_key": ca_key}
    for name, host, ip in (("site", SITE, SITE_IP), ("proxy", PROXY, PROXY_IP)):
        key, csr, crt = (os.path.join(d, name + s) for s in (".key", ".csr", ".pem"))
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,DNS:www.%s,IP:%s\n" % (host, host, ip))
        sh(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/O=proxylab/CN=" + host])
        # A year's validity, as public CAs issue (nDPI flags a certificate expiring within 30 days).
        sh(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
            "-days", "365", "-sha256", "-extfile", ext])
        out[name + "_key"], out[name + "_crt"] = key, crt
    return out


def png(w, h):
    """A w x h RGB PNG of noise (so it does not compress to nothing)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    raw = b"".join(b"\0" + os.urandom(w * 3) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_site_files(work, token):
    www = os.path.join(work, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("<!doctype html><title>proxylab</title><p>proxylab site %s</p>\n" % token)
        f.write("<p>" + "lorem ipsum dolor sit amet " * 200 + "</p>\n")
    # The browser's page (--client chromium): the page, a stylesheet, an image and a script, so
    # one page load is several requests; the script (nginx's /probe.js) writes the probe line
    # into the page before the load event, so --dump-dom shows it.
    with open(os.path.join(www, "page.html"), "w") as f:
        f.write("<!doctype html><html><head><title>proxylab</title><link rel=\"stylesheet\" href=\"/lab.css\">"
                "<link rel=\"icon\" href=\"data:,\"></head>\n<body><p id=\"site\">proxylab site %s</p>\n"
                "<p id=\"probe\">no script</p>\n<img src=\"/lab.png\" width=\"64\" height=\"64\" alt=\"\">\n"
                "<script src=\"/probe.js\"></script>\n<p>%s</p>\n</body></html>\n"
                % (token, "lorem ipsum dolor sit amet " * 200))
    with open(os.path.join(www, "lab.css"), "w") as f:
        f.write("body { font-family: sans-serif; margin: 2em; }\n#probe { font-weight: bold; }\n"
                + "".join(".c%d { color: #%06x; }\n" % (i, i * 2654435 & 0xffffff) for i in range(120)))
    with open(os.path.join(www, "lab.png"), "wb") as f:
        f.write(png(64, 64))
    big = os.path.join(www, "big.bin")
    with open(big, "wb") as f:
        for _ in range(20):
            f.write(os.urandom(1 << 20))
    with open(os.path.join(www, "blob4m.bin"), "wb") as f:
        f.write(os.urandom(4 << 20))
    # A small git repository for git-https.
    gitroot = os.path.join(work, "git")
    src = os.path.join(work, "gitsrc")
    os.makedirs(src, exist_ok=True)
    genv = dict(os.environ, HOME=work, GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="proxylab",
                GIT_AUTHOR_EMAIL="lab@proxylab", GIT_COMMITTER_NAME="proxylab", GIT_COMMITTER_EMAIL="lab@proxylab")
    sh(["git", "init", "-q", "-b", "main", src], env=genv)
    for i in range(3):
        with open(os.path.join(src, "file%d.txt" % i), "w") as f:
            f.write(("line %d of file %d %s\n" % (0, i, token)) + "".join("line %d\n" % j for j in range(2000)))
        sh(["git", "-C", src, "add", "."], env=genv)
        sh(["git", "-C", src, "commit", "-q", "-m", "commit %d" % i], env=genv)
    sh(["git", "clone", "-q", "--bare", src, os.path.join(gitroot, "small.git")], env=genv)
    shutil.rmtree(src)
    return www, gitroot


NGINX_LOCATIONS = """
        location = /probe {
            default_type text/plain;
            return 200 "proxylab-ok %(token)s $ssl_protocol $server_protocol\\n";
        }
        location = /probe.js {
            default_type application/javascript;
            add_header Cache-Control no-store;
            return 200 "document.getElementById('probe').textContent = 'proxylab-ok %(token)s $ssl_protocol $server_protocol';\\n";
        }
        location / {
            root %(www)s;
        }
        location /ws {
            proxy_pass http://127.0.0.1:8081;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 60s;
        }
        location ~ ^/git(/.*)$ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
            fastcgi_param GIT_PROJECT_ROOT %(gitroot)s;
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param PATH_INFO $1;
            fastcgi_pass unix:%(fcgi)s;
        }
"""

NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
user root;
pid %(work)s/nginx.pid;
error_log %(logs)s/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log %(logs)s/nginx-access.log;
    client_body_temp_path %(work)s/nginx-tmp/body;
    proxy_temp_path %(work)s/nginx-tmp/proxy;
    fastcgi_temp_path %(work)s/nginx-tmp/fastcgi;
    uwsgi_temp_path %(work)s/nginx-tmp/uwsgi;
    scgi_temp_path %(work)s/nginx-tmp/scgi;
    types { text/html html; text/plain txt; text/css css; image/png png; application/octet-stream bin; }
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 15;
    server_tokens off;
    ssl_certificate %(crt)s;
    ssl_certificate_key %(key)s;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen %(ip)s:443 ssl http2;
        server_name %(site)s;
        ssl_protocols TLSv1.2 TLSv1.3;
%(locations)s
    }
    server {
        # TLS 1.2 only, for clients that cannot cap the version themselves (git over GnuTLS):
        # a second address, so that it is still port 443.
        listen %(ip12)s:443 ssl http2;
        server_name %(site)s;
        ssl_protocols TLSv1.2;
%(locations)s
    }
    server {
        listen %(ip)s:80;
        server_name %(site)s;
%(locations)s
    }
}
"""

SSHD_CONF = """
Port 22
ListenAddress %(ip)s
HostKey %(hostkey)s
PidFile %(work)s/sshd.pid
AuthorizedKeysFile %(authkeys)s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
UseDNS no
Subsystem sftp internal-sftp
"""


def start_site(lab, pki, token):
    work = lab.work
    www, gitroot = make_site_files(work, token)
    for t in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(work, "nginx-tmp", t), exist_ok=True)
    fcgi = os.path.join(work, "fcgiwrap.sock")
    locs = NGINX_LOCATIONS % {"token": token, "www": www, "gitroot": gitroot, "fcgi": fcgi}
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"work": work, "logs": lab.logs, "crt": pki["site_crt"], "key": pki["site_key"],
                              "ip": SITE_IP, "ip12": SITE12_IP, "site": SITE, "locations": locs})
    r = lab.run(lab.ns_s, ["nginx", "-t", "-c", conf, "-e", os.path.join(lab.logs, "nginx-error.log")])
    if r.returncode != 0:
        raise RuntimeError("nginx config: %s" % r.stderr.decode())
    fc = lab.spawn(lab.ns_s, ["fcgiwrap", "-c", "2", "-s", "unix:" + fcgi], "fcgiwrap",
                   env={"HOME": work, "GIT_CONFIG_NOSYSTEM": "1"})
    ws = lab.spawn(lab.ns_s, [PY, os.path.join(HERE, "wss.py"), "server", "--listen", "127.0.0.1:8081"], "wss-server")
    ng = lab.spawn(lab.ns_s, ["nginx", "-c", conf, "-e", os.path.join(lab.logs, "nginx-error.log")], "nginx")
    # sshd for the ssh scenario.
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    hostkey = os.path.join(work, "ssh_host_ed25519_key")
    ckey = os.path.join(work, "client_ed25519")
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey])
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ckey])
    authkeys = os.path.join(work, "authorized_keys")
    shutil.copy(ckey + ".pub", authkeys)
    sconf = os.path.join(work, "sshd_config")
    with open(sconf, "w") as f:
        f.write(SSHD_CONF % {"ip": SITE_IP, "hostkey": hostkey, "work": work, "authkeys": authkeys})
    sd = lab.spawn(lab.ns_s, ["/usr/sbin/sshd", "-D", "-e", "-f", sconf], "sshd")
    for port, p in ((443, ng), (80, ng), (22, sd), (8081, ws)):
        lab.wait_listen(lab.ns_s, port, p)
    deadline = time.monotonic() + 10
    while not os.path.exists(fcgi):
        if fc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("fcgiwrap did not start")
        time.sleep(0.05)
    log("site up: nginx (%s:443 TLS1.2+1.3 h2, %s:443 TLS1.2, :80), sshd, wss echo, git http-backend"
        % (SITE_IP, SITE12_IP))
    return {"client_key": ckey}


# ---- inner clients ----------------------------------------------------------------------

def tls_flags(tls):
    return ["--tlsv1.2", "--tls-max", "1.2"] if tls == "1.2" else ["--tlsv1.3", "--tls-max", "1.3"]


CHROMIUM = "/usr/lib/chromium/chromium"  # the browser itself, without Debian's launcher script
# Every chromium run: headless, as root, a fresh profile, nothing in the background; QUIC off so
# that everything is TCP on the captured leg. --host-resolver-rules: only the lab's names resolve
# (no DNS query leaves the client namespace); a scenario may prepend a MAP rule of its own.
# Even so Chromium 156 asks, at start, clients2.google.com for the network time and
# update.googleapis.com for a component (--disable-component-update notwithstanding); through a
# proxy those names resolve at the proxy, so they would add failed tunnels to the capture:
# NetworkTimeServiceQuerying off, and Google's domains bypass the proxy (and then resolve nowhere).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-default-apps", "--no-default-browser-check", "--disable-pings",
                  "--disable-breakpad", "--disable-dev-shm-usage", "--metrics-recording-only",
                  "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate"]
CHROMIUM_RESOLVER = "EXCLUDE %s, EXCLUDE 127.0.0.1, MAP * ~NOTFOUND" % PROXY
CHROMIUM_BYPASS = "*.google.com;*.googleapis.com;*.gstatic.com;*.gvt1.com;*.googleusercontent.com"


def chromium_tls_flags(tls):
    # --ssl-version-max still exists (checked on Chromium 156: tls1.2 gives a TLS 1.2
    # handshake); the default range is 1.2..1.3, so 1.3 needs no flag (the body checks it).
    return ["--ssl-version-max=tls1.2"] if tls == "1.2" else []


def chromium_nssdb(work, ca):
    """A HOME whose ~/.pki/nssdb trusts the lab CA (Chromium on Linux reads user trust there)."""
    home = os.path.join(work, "chromium-home")
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db, exist_ok=True)
    sh(["certutil", "-d", "sql:" + db, "-N", "--empty-password"])
    sh(["certutil", "-d", "sql:" + db, "-A", "-n", "proxylab-ca", "-t", "C,,", "-i", ca])
    return home


class Ctx:
    """What a scenario's connections need: the lab, the pki, the token, a scratch dir, and which
    inner client (curl or chromium) the capture uses."""

    def __init__(self, lab, pki, token, site_extra):
        self.lab, self.pki, self.token = lab, pki, token
        self.site_extra = site_extra
        self.scratch = os.path.join(lab.work, "scratch")
        os.makedirs(self.scratch, exist_ok=True)
        self.client = "curl"
        self.chromium_home = None
        self.chromium_runs = 0

    def chromium_probe(self, tls, proxy=None, map_rule=None, url="https://%s/page.html" % SITE, expect_http=None,
                       extra=(), timeout=30):
        """One page load in a fresh headless Chromium: ok when the dumped DOM has the probe line
        (the token, and the asked-for TLS and HTTP versions) that /probe.js wrote into the page."""
        lab = self.lab
        if self.chromium_home is None:
            self.chromium_home = chromium_nssdb(lab.work, self.pki["ca"])
        self.chromium_runs += 1
        udd = os.path.join(self.scratch, "chromium-profile-%d" % self.chromium_runs)
        shutil.rmtree(udd, ignore_errors=True)
        os.makedirs(udd)
        # EXCLUDE wins over every MAP, so site.lab is either excluded or mapped by the scenario.
        rules = "%s, %s" % (map_rule or "EXCLUDE " + SITE, CHROMIUM_RESOLVER)
        argv = [CHROMIUM] + CHROMIUM_FLAGS + ["--user-data-dir=" + udd, "--host-resolver-rules=" + rules]
        if proxy:
            argv += ["--proxy-server=" + proxy, "--proxy-bypass-list=" + CHROMIUM_BYPASS]
        if tls:
            argv += chromium_tls_flags(tls)
        argv += list(extra) + ["--timeout=%d" % ((timeout - 5) * 1000), "--dump-dom", url]
        env = dict(os.environ, HOME=self.chromium_home)
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
        errf = os.path.join(lab.logs, "chromium.log")
        with open(errf, "ab") as logf:
            logf.write(("\n== %s\n" % " ".join(argv)).encode())
            logf.flush()
            p = subprocess.Popen(["ip", "netns", "exec", lab.ns_c] + argv, stdout=subprocess.PIPE, stderr=logf,
                                 stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            try:
                out, _ = p.communicate(timeout=timeout)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                out, rc = b"", 124
            finally:
                # Chromium leaves children (zygotes, renderers, the network service) behind in its
                # process group, and the crash handler in a session of its own: the group goes,
                # then whatever Chromium process is still in the client namespace.
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
                lab.kill_in_ns(lab.ns_c, ("chromium", "chrome_crashpad"))
        shutil.rmtree(udd, ignore_errors=True)
        body = out.decode(errors="replace")
        want = "proxylab-ok %s" % self.token
        ok = rc == 0 and want in body
        if ok and tls:
            ok = ("TLSv%s" % tls) in body
        if ok and expect_http:
            ok = expect_http in body
        if ok:
            return True, ""
        probe = body[body.find('id="probe"'):][:120] if 'id="probe"' in body else body.strip()[:120]
        err = ""
        with open(errf, "rb") as f:
            for line in f.read().decode(errors="replace").splitlines()[-20:]:
                if "net::ERR" in line or "Page load failed" in line:
                    err = line.strip()[-160:]
        return False, "chromium rc=%d %s %s" % (rc, probe, err)

    def probe(self, tls, route, curl_args=(), url_path="/probe", expect_http=None, chromium_http=None):
        """One connection with the capture's inner client. route: ("socks",), ("https-proxy", url),
        ("direct", scheme) or ("map", rule); curl_args: curl's way to the same place."""
        scheme = route[1] if route[0] == "direct" else "https"
        if self.client == "chromium":
            proxy = map_rule = None
            if route[0] == "socks":
                proxy = "socks5://" + SOCKS
            elif route[0] == "https-proxy":
                proxy = route[1]
            elif route[0] == "map":
                map_rule = route[1]
            extra = ["--disable-http2"] if chromium_http == "HTTP/1.1" else []
            return self.chromium_probe(tls, proxy=proxy, map_rule=map_rule, url="%s://%s/page.html" % (scheme, SITE),
                                       expect_http=chromium_http, extra=extra)
        return self.curl_probe(tls, curl_args, url="%s://%s%s" % (scheme, SITE, url_path), expect_http=expect_http)

    def curl_probe(self, tls, proxy_args, url="https://%s/probe" % SITE, expect_http=None, timeout=15):
        argv = ["curl", "-sS", "--max-time", str(timeout), "--cacert", self.pki["ca"], "--no-keepalive"]
        if tls:
            argv += tls_flags(tls)
        argv += list(proxy_args) + [url]
        r = self.lab.run(self.lab.ns_c, argv, timeout=timeout + 5)
        body = r.stdout.decode(errors="replace")
        want = "proxylab-ok %s" % self.token
        ok = r.returncode == 0 and want in body
        if ok and tls:
            ok = ("TLSv%s" % tls) in body
        if ok and expect_http:
            ok = expect_http in body
        err = "" if ok else "curl rc=%d %s %s" % (r.returncode, body.strip()[:120], r.stderr.decode(errors="replace").strip()[:200])
        return ok, err


def socks_args():
    return ["--socks5-hostname", SOCKS]


# ---- scenarios --------------------------------------------------------------------------
# Each scenario: name, class, whether it carries inner TLS (tls12/tls13 pcaps), a setup that
# starts its servers and clients and returns {"proxy_addr", "conn": fn(ctx, tls, i) -> (ok, err)}.

def v2ray_stream(network, tls, server, pki):
    s = {"network": network, "security": "tls" if tls else "none"}
    if tls:
        if server:
            s["tlsSettings"] = {"certificates": [{"certificateFile": pki["proxy_crt"], "keyFile": pki["proxy_key"]}]}
        else:
            s["tlsSettings"] = {"serverName": PROXY, "allowInsecure": False,
                                "certificates": [{"usage": "verify", "certificateFile": pki["ca"]}]}
    if network == "ws":
        s["wsSettings"] = {"path": "/ray", "headers": {} if server else {"Host": PROXY}}
    return s


def v2ray_setup(protocol, network, tls, port):
    def setup(ctx):
        lab, pki = ctx.lab, ctx.pki
        uid, pw = str(uuid.uuid4()), secrets.token_hex(12)
        if protocol == "vmess":
            sset = {"clients": [{"id": uid, "alterId": 0}]}
            cset = {"vnext": [{"address": PROXY, "port": port,
                               "users": [{"id": uid, "alterId": 0, "security": "auto"}]}]}
        elif protocol == "vless":
            sset = {"clients": [{"id": uid}], "decryption": "none"}
            cset = {"vnext": [{"address": PROXY, "port": port, "users": [{"id": uid, "encryption": "none"}]}]}
        else:  # trojan
            sset = {"clients": [{"password": pw}]}
            cset = {"servers": [{"address": PROXY, "port": port, "password": pw}]}
        server = {"log": {"loglevel": "warning"},
                  "inbounds": [{"listen": PROXY_IP, "port": port, "protocol": protocol, "settings": sset,
                                "streamSettings": v2ray_stream(network, tls, True, pki)}],
                  "outbounds": [{"protocol": "freedom", "settings": {}}]}
        client = {"log": {"loglevel": "warning"},
                  "inbounds": [{"listen": "127.0.0.1", "port": 1080, "protocol": "socks",
                                "settings": {"auth": "noauth", "udp": False}}],
                  "outbounds": [{"protocol": protocol, "settings": cset,
                                 "streamSettings": v2ray_stream(network, tls, False, pki)}]}
        d = ctx.scratch
        sp, cp = os.path.join(d, "v2ray-server.json"), os.path.join(d, "v2ray-client.json")
        for path, obj in ((sp, server), (cp, client)):
            with open(path, "w") as f:
                json.dump(obj, f, indent=1)
        s = lab.spawn(lab.ns_p, ["v2ray", "-config", sp], "v2ray-server")
        lab.wait_listen(lab.ns_p, port, s)
        c = lab.spawn(lab.ns_c, ["v2ray", "-config", cp], "v2ray-client")
        lab.wait_listen(lab.ns_c, 1080, c)
        return {"proxy_addr": "%s:%d" % (PROXY_IP, port),
                "conn": lambda ctx, tls_v, i: ctx.probe(tls_v, ("socks",), socks_args())}
    return setup


def ss_setup(method, port, plugin=None, splugin_opts=None, cplugin_opts=None):
    def setup(ctx):
        lab, pki = ctx.lab, ctx.pki
        pw = secrets.token_urlsafe(12)
        sargs = ["ss-server", "-s", PROXY_IP, "-p", str(port), "-k", pw, "-m", method, "-t", "60"]
        cargs = ["ss-local", "-s", PROXY if plugin else PROXY_IP, "-p", str(port), "-b", "127.0.0.1", "-l", "1080",
                 "-k", pw, "-m", method, "-t", "60"]
        if plugin:
            sargs += ["--plugin", plugin[0], "--plugin-opts", splugin_opts(pki)]
            cargs += ["--plugin", plugin[1], "--plugin-opts", cplugin_opts(pki)]
        s = lab.spawn(lab.ns_p, sargs, "ss-server")
        lab.wait_listen(lab.ns_p, port, s)
        c = lab.spawn(lab.ns_c, cargs, "ss-local")
        lab.wait_listen(lab.ns_c, 1080, c)
        return {"proxy_addr": "%s:%d" % (PROXY_IP, port),
                "conn": lambda ctx, tls_v, i: ctx.probe(tls_v, ("socks",), socks_args())}
    return setup


def obfs4_setup(ctx):
    lab = ctx.lab
    port = 9443
    certf = os.path.join(ctx.scratch, "obfs4-bridge-args")
    if os.path.exists(certf):
        os.unlink(certf)
    s = lab.spawn(lab.ns_p, [PY, os.path.join(HERE, "obfs4drv.py"), "server",
                             "--state", os.path.join(ctx.scratch, "obfs4-server"),
                             "--bind", "%s:%d" % (PROXY_IP, port), "--orport", "%s:443" % SITE_IP,
                             "--cert-out", certf], "obfs4-server")
    lab.wait_listen(lab.ns_p, port, s)
    deadline = time.monotonic() + 10
    while not os.path.exists(certf):
        if time.monotonic() > deadline:
            raise RuntimeError("obfs4 server wrote no bridge cert")
        time.sleep(0.05)
    c = lab.spawn(lab.ns_c, [PY, os.path.join(HERE, "obfs4drv.py"), "client",
                             "--state", os.path.join(ctx.scratch, "obfs4-client"),
                             "--listen", "127.0.0.1:4443", "--bridge", "%s:%d" % (PROXY_IP, port),
                             "--cert-file", certf], "obfs4-client")
    lab.wait_listen(lab.ns_c, 4443, c)
    # The bridge forwards every stream to the site's HTTPS port: curl (--connect-to) and chromium
    # (a resolver MAP rule) talk to the local end, with site.lab as the TLS name.
    return {"proxy_addr": "%s:%d" % (PROXY_IP, port),
            "conn": lambda ctx, tls_v, i: ctx.probe(tls_v, ("map", "MAP %s 127.0.0.1:4443" % SITE),
                                                    ["--connect-to", "%s:443:127.0.0.1:4443" % SITE])}


def trojan_setup(ctx):
    lab, pki = ctx.lab, ctx.pki
    port = 443
    pw = secrets.token_hex(12)
    server = {"run_type": "server", "local_addr": PROXY_IP, "local_port": port,
              "remote_addr": SITE_IP, "remote_port": 80, "password": [pw], "log_level": 2,
              "ssl": {"cert": pki["proxy_crt"], "key": pki["proxy_key"], "key_password": "",
                      "prefer_server_cipher": True, "alpn": ["http/1.1"], "reuse_session": True,
                      "session_ticket": False, "session_timeout": 600, "plain_http_response": "",
                      "curves": "", "dhparam": ""},
              "tcp": {"prefer_ipv4": True, "no_delay": True, "keep_alive": True, "reuse_port": False,
                      "fast_open": False, "fast_open_qlen": 20}}
    client = {"run_type": "client", "local_addr": "127.0.0.1", "local_port": 1080,
              "remote_addr": PROXY, "remote_port": port, "password": [pw], "log_level": 2,
              "ssl": {"verify": True, "verify_hostname": True, "cert": pki["ca"], "sni": PROXY,
                      "alpn": ["h2", "http/1.1"], "reuse_session": True, "session_ticket": False, "curves": ""},
              "tcp": {"no_delay": True, "keep_alive": True, "reuse_port": False, "fast_open": False,
                      "fast_open_qlen": 20}}
    sp, cp = os.path.join(ctx.scratch, "trojan-server.json"), os.path.join(ctx.scratch, "trojan-client.json")
    for path, obj in ((sp, server), (cp, client)):
        with open(path, "w") as f:
            json.dump(obj, f, indent=1)
    s = lab.spawn(lab.ns_p, ["trojan", "-c", sp], "trojan-server")
    lab.wait_listen(lab.ns_p, port, s)
    c = lab.spawn(lab.ns_c, ["trojan", "-c", cp], "trojan-client")
    lab.wait_listen(lab.ns_c, 1080, c)
    return {"proxy_addr": "%s:%d" % (PROXY_IP, port),
            "conn": lambda ctx, tls_v, i: ctx.probe(tls_v, ("socks",), socks_args())}


def https_connect_setup(ctx):
    lab, pki = ctx.lab, ctx.pki
    port = 443
    tp = os.path.join(ctx.scratch, "tinyproxy.conf")
    with open(tp, "w") as f:
        f.write("Port 8888\nListen 127.0.0.1\nTimeout 60\nMaxClients 64\nAllow 127.0.0.1\nConnectPort 443\n"
                "DisableViaHeader Yes\nLogLevel Warning\nUser nobody\nGroup nogroup\n"
                "PidFile \"%s\"\n" % os.path.join(ctx.scratch, "tinyproxy.pid"))
    st = os.path.join(ctx.scratch, "stunnel.conf")
    with open(st, "w") as f:
        f.write("foreground = yes\npid =\n[https-proxy]\naccept = %s:%d\nconnect = 127.0.0.1:8888\n"
                "cert = %s\nkey = %s\n" % (PROXY_IP, port, pki["proxy_crt"], pki["proxy_key"]))
    t = lab.spawn(lab.ns_p, ["tinyproxy", "-d", "-c", tp], "tinyproxy")
    lab.wait_listen(lab.ns_p, 8888, t)
    s = lab.spawn(lab.ns_p, ["stunnel4", st], "stunnel")
    lab.wait_listen(lab.ns_p, port, s)
    url = "https://%s:%d" % (PROXY, port)
    args = ["--proxy", url, "--proxy-cacert", pki["ca"]]
    # Chromium's HTTPS proxy: the proxy's certificate is the lab CA's, trusted in its NSS db.
    return {"proxy_addr": "%s:%d" % (PROXY_IP, port),
            "conn": lambda ctx, tls_v, i: ctx.probe(tls_v, ("https-proxy", url), args)}


def direct(scheme, expect_http=None, extra=()):
    """Straight to the site: curl fetches /probe; chromium loads /page.html (HTTP/1.1 with
    --disable-http2, else it negotiates h2 itself)."""
    def setup(ctx):
        return {"proxy_addr": "%s:%d" % (SITE_IP, 443 if scheme == "https" else 80),
                "conn": lambda ctx, tls_v, i: ctx.probe(tls_v, ("direct", scheme), list(extra),
                                                        expect_http=expect_http, chromium_http=expect_http)}
    return setup


def large_download_setup(ctx):
    expect = os.path.getsize(os.path.join(ctx.lab.work, "www", "big.bin"))

    def conn(ctx, tls_v, i):
        out = os.path.join(ctx.scratch, "big.dl")
        argv = ["curl", "-sS", "--max-time", "120", "--cacert", ctx.pki["ca"], "--http1.1", "-o", out,
                "-w", "%{size_download}"] + tls_flags(tls_v) + ["https://%s/big.bin" % SITE]
        r = ctx.lab.run(ctx.lab.ns_c, argv, timeout=130)
        got = r.stdout.decode().strip()
        ok = r.returncode == 0 and got == str(expect)
        if os.path.exists(out):
            os.unlink(out)
        return ok, "" if ok else "curl rc=%d size=%s %s" % (r.returncode, got, r.stderr.decode()[:200])
    return {"proxy_addr": "%s:443" % SITE_IP, "conn": conn}


def wss_setup(ctx):
    def conn(ctx, tls_v, i):
        r = ctx.lab.run(ctx.lab.ns_c, [PY, os.path.join(HERE, "wss.py"), "client", "--host", SITE,
                                       "--connect", "%s:443" % SITE_IP, "--path", "/ws", "--cafile", ctx.pki["ca"],
                                       "--tls", tls_v, "--messages", "8", "--seed", str(i)], timeout=30)
        ok = r.returncode == 0 and b"wss-ok" in r.stdout
        return ok, "" if ok else "wss rc=%d %s" % (r.returncode, r.stderr.decode()[-200:])
    return {"proxy_addr": "%s:443" % SITE_IP, "conn": conn}


def ssh_setup(ctx):
    key = ctx.site_extra["client_key"]
    base = ["-F", "/dev/null", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=15"]

    def conn(ctx, tls_v, i):
        n = ctx.n_conns
        if i == n - 1:
            # The last connection of the capture: an scp of a few megabytes.
            out = os.path.join(ctx.scratch, "blob.scp")
            r = ctx.lab.run(ctx.lab.ns_c, ["scp", "-q"] + base + ["root@%s:%s" % (SITE_IP, os.path.join(
                ctx.lab.work, "www", "blob4m.bin")), out], timeout=60)
            ok = r.returncode == 0 and os.path.exists(out) and os.path.getsize(out) == 4 << 20
            if os.path.exists(out):
                os.unlink(out)
            return ok, "" if ok else "scp rc=%d %s" % (r.returncode, r.stderr.decode()[:200])
        cmd = "uname -sr; id -u; ls / | head -5; head -3 /etc/os-release; echo proxylab-ssh-%s" % ctx.token
        r = ctx.lab.run(ctx.lab.ns_c, ["ssh"] + base + ["root@%s" % SITE_IP, cmd], timeout=30)
        ok = r.returncode == 0 and ("proxylab-ssh-%s" % ctx.token).encode() in r.stdout
        return ok, "" if ok else "ssh rc=%d %s" % (r.returncode, r.stderr.decode()[:200])
    return {"proxy_addr": "%s:22" % SITE_IP, "conn": conn}


def git_setup(ctx):
    def conn(ctx, tls_v, i):
        dest = os.path.join(ctx.scratch, "clone")
        shutil.rmtree(dest, ignore_errors=True)
        # git's libcurl here is GnuTLS: no TLS ceiling of its own, so for TLS 1.2 site.lab
        # resolves to the site's TLS-1.2-only address, and TLS 1.3 gets a 1.3 floor.
        ip = SITE12_IP if tls_v == "1.2" else SITE_IP
        # A committer identity of its own: without one git looks the host name up in DNS for the
        # clone's reflog, and the lab has no DNS (a 5 s time-out per clone).
        env = {"HOME": ctx.scratch, "GIT_CONFIG_NOSYSTEM": "1", "GIT_SSL_CAINFO": ctx.pki["ca"],
               "GIT_TERMINAL_PROMPT": "0", "GIT_COMMITTER_NAME": "proxylab", "GIT_COMMITTER_EMAIL": "lab@proxylab",
               "GIT_AUTHOR_NAME": "proxylab", "GIT_AUTHOR_EMAIL": "lab@proxylab"}
        argv = ["git", "-c", "http.sslVersion=tlsv1.%s" % tls_v[-1], "-c", "http.curloptResolve=%s:443:%s" % (SITE, ip),
                "clone", "-q", "https://%s/git/small.git" % SITE, dest]
        r = ctx.lab.run(ctx.lab.ns_c, argv, timeout=60, env=env)
        ok = r.returncode == 0 and os.path.exists(os.path.join(dest, "file2.txt"))
        if ok:
            with open(os.path.join(dest, "file0.txt")) as f:
                ok = ctx.token in f.readline()
        shutil.rmtree(dest, ignore_errors=True)
        return ok, "" if ok else "git rc=%d %s" % (r.returncode, r.stderr.decode()[:200])
    return {"proxy_addr": "%s:443" % SITE_IP, "conn": conn, "proxy_addr_tls12": "%s:443" % SITE12_IP}


# ---- benign controls for the relay check (unmask's `relayed`) ------------------------------

def curl_keepalive(ctx, tls_v, url, n, check_tls=True):
    """n requests over one connection (curl reuses it for the same origin): ok when every answer
    carries the token (and, with check_tls, the asked-for TLS version)."""
    argv = ["curl", "-sS", "--max-time", "20", "--cacert", ctx.pki["ca"], "--http1.1"] + tls_flags(tls_v)
    r = ctx.lab.run(ctx.lab.ns_c, argv + [url] * n, timeout=25)
    body = r.stdout.decode(errors="replace")
    ok = r.returncode == 0 and body.count("proxylab-ok %s" % ctx.token) == n
    if ok and check_tls:
        ok = body.count("TLSv%s" % tls_v) == n
    return ok, "" if ok else "curl rc=%d %s %s" % (r.returncode, body.strip()[:120], r.stderr.decode()[:200])


def slow_origin_setup(ctx):
    """An origin that thinks 5-200 ms (uniform, per request) before each answer; three requests
    per connection."""
    lab = ctx.lab
    p = lab.spawn(lab.ns_s, [PY, os.path.join(HERE, "slowsrv.py"), "--listen", "%s:8444" % SITE_IP, "--cert",
                             ctx.pki["site_crt"], "--key", ctx.pki["site_key"], "--token", ctx.token,
                             "--think-ms", "5,200"], "slowsrv", stdout=subprocess.PIPE)
    if p.stdout.readline().decode().strip() != "READY":
        raise RuntimeError("slowsrv did not start (see logs/slowsrv.log)")
    url = "https://%s:8444/probe" % SITE
    return {"proxy_addr": "%s:8444" % SITE_IP, "conn": lambda ctx, tls_v, i: curl_keepalive(ctx, tls_v, url, 3)}


REVERSE_PROXY_CONF = """
daemon off;
master_process on;
worker_processes 1;
user root;
pid %(dir)s/nginx.pid;
error_log %(logs)s/%(name)s-error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    upstream origin { server %(origin)s; keepalive 4; }
    server {
        listen %(listen)s ssl;
        server_name %(site)s;
        ssl_certificate %(crt)s;
        ssl_certificate_key %(key)s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host %(site)s;
        }
    }
}
"""


def reverse_proxy_setup(where):
    """nginx as a reverse proxy in front of the site's plain-HTTP nginx: a benign relay. "near":
    in the site namespace, beside its origin; "far": in the proxy namespace, one site leg away
    (with --site-delay-ms, the relay check should see that leg: reverse proxies relay too)."""
    def setup(ctx):
        lab = ctx.lab
        ns, ip, port = (lab.ns_s, SITE_IP, 9443) if where == "near" else (lab.ns_p, PROXY_IP, 8443)
        name = "reverse-" + where
        d = os.path.join(ctx.scratch, name)
        for t in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, t), exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        crt, key = (ctx.pki["site_crt"], ctx.pki["site_key"])
        with open(conf, "w") as f:
            f.write(REVERSE_PROXY_CONF % {"dir": d, "logs": lab.logs, "name": name, "origin": "%s:80" % SITE_IP,
                                          "listen": "%s:%d" % (ip, port), "site": SITE, "crt": crt, "key": key})
        p = lab.spawn(ns, ["nginx", "-c", conf, "-e", os.path.join(lab.logs, name + "-error.log")], name)
        lab.wait_listen(ns, port, p)
        # The site's name points at the reverse proxy for curl (its certificate names site.lab).
        url = "https://%s:%d/probe" % (SITE, port)
        resolve = ["--resolve", "%s:%d:%s" % (SITE, port, ip)]

        def conn(ctx, tls_v, i):
            argv = ["curl", "-sS", "--max-time", "15", "--cacert", ctx.pki["ca"], "--http1.1"] + resolve
            r = ctx.lab.run(ctx.lab.ns_c, argv + tls_flags(tls_v) + [url], timeout=20)
            body = r.stdout.decode(errors="replace")
            ok = r.returncode == 0 and ("proxylab-ok %s" % ctx.token) in body
            return ok, "" if ok else "curl rc=%d %s %s" % (r.returncode, body.strip()[:120], r.stderr.decode()[:200])
        return {"proxy_addr": "%s:%d" % (ip, port), "conn": conn}
    return setup


def v2plugin_server_opts(pki):
    return "server;tls;host=%s;cert=%s;key=%s" % (PROXY, pki["proxy_crt"], pki["proxy_key"])


def v2plugin_client_opts(pki):
    return "tls;host=%s;cert=%s" % (PROXY, pki["ca"])


# name, class, inner TLS?, setup, note
SCENARIOS = [
    ("ss-aead", "fully_encrypted", True, ss_setup("chacha20-ietf-poly1305", 8388),
     "shadowsocks-libev AEAD chacha20-ietf-poly1305"),
    ("ss-aead-aes256gcm", "fully_encrypted", True, ss_setup("aes-256-gcm", 8389),
     "shadowsocks-libev AEAD aes-256-gcm"),
    ("vmess-tcp", "fully_encrypted", True, v2ray_setup("vmess", "tcp", False, 10086),
     "v2ray 4.34 VMess (AEAD header, alterId 0) over plain TCP"),
    ("obfs4", "fully_encrypted", True, obfs4_setup,
     "obfs4proxy 0.0.14 bridge -> site:443, iat-mode=0, driven through the PT protocol"),
    ("ss-obfs-http", "fully_encrypted", True,
     ss_setup("chacha20-ietf-poly1305", 80, plugin=("obfs-server", "obfs-local"),
              splugin_opts=lambda pki: "obfs=http",
              cplugin_opts=lambda pki: "obfs=http;obfs-host=www.bing.com"),
     "shadowsocks-libev + simple-obfs obfs=http (fake HTTP upgrade request, then ss stream)"),
    ("trojan", "tls_in_tls", True, trojan_setup, "trojan-gfw 1.16 server and client"),
    ("vless-tls", "tls_in_tls", True, v2ray_setup("vless", "tcp", True, 443), "v2ray 4.34 VLESS over TLS"),
    ("vmess-tls", "tls_in_tls", True, v2ray_setup("vmess", "tcp", True, 443), "v2ray 4.34 VMess over TLS"),
    ("trojan-v2ray", "tls_in_tls", True, v2ray_setup("trojan", "tcp", True, 443),
     "v2ray 4.34 trojan inbound/outbound over TLS"),
    ("vmess-ws-tls", "tls_in_tls", True, v2ray_setup("vmess", "ws", True, 443),
     "v2ray 4.34 VMess over WebSocket over TLS"),
    ("vmess-ws", "tls_in_tls", True, v2ray_setup("vmess", "ws", False, 80),
     "v2ray 4.34 VMess over WebSocket over cleartext HTTP (upgrade in the clear)"),
    ("https-connect", "tls_in_tls", True, https_connect_setup,
     "stunnel4 TLS in front of tinyproxy; curl --proxy https://"),
    ("ss-v2ray-plugin-tls", "tls_in_tls", True,
     ss_setup("chacha20-ietf-poly1305", 443, plugin=("ss-v2ray-plugin", "ss-v2ray-plugin"),
              splugin_opts=v2plugin_server_opts, cplugin_opts=v2plugin_client_opts),
     "shadowsocks-libev + v2ray-plugin websocket over TLS; the plugin's default mux=1 carries every "
     "connection of a capture over one TCP connection (its server always expects mux framing: "
     "a client with mux=0 gets no answer, so mux cannot be turned off)"),
    ("https-direct", "benign", True, direct("https", "HTTP/1.1", ["--http1.1"]),
     "curl HTTPS HTTP/1.1 straight to nginx"),
    ("h2-direct", "benign", True, direct("https", "HTTP/2.0", ["--http2"]),
     "curl HTTPS HTTP/2 straight to nginx"),
    ("wss-direct", "benign", True, wss_setup, "WebSocket over TLS (python client, nginx -> echo server)"),
    ("ssh", "benign", False, ssh_setup, "OpenSSH: commands on each connection, the last one an scp of 4 MiB"),
    ("large-download", "benign", True, large_download_setup, "curl HTTPS download of a 20 MiB file"),
    ("git-https", "benign", True, git_setup,
     "git clone over HTTPS (git http-backend via fcgiwrap); TLS 1.2 through the site's 1.2-only address"),
    ("http-plain", "benign", False, direct("http", "HTTP/1.1", ["--http1.1"]),
     "curl plain HTTP/1.1"),
    ("slow-origin", "benign", True, slow_origin_setup,
     "python HTTPS origin thinking 5-200 ms (uniform) per request; 3 keep-alive requests per connection"),
    ("reverse-near", "benign", True, reverse_proxy_setup("near"),
     "nginx reverse proxy beside its origin (site namespace; a benign relay with no extra leg)"),
    ("reverse-far", "benign", True, reverse_proxy_setup("far"),
     "nginx reverse proxy in the proxy namespace, its origin one site leg away (a benign relay)"),
]

# The scenarios whose connections go through Ctx.probe, so Chromium can be their inner client
# (the others drive a client of their own: wss.py, ssh/scp, git, a curl download).
CHROMIUM_SCENARIOS = {"ss-aead", "ss-aead-aes256gcm", "vmess-tcp", "obfs4", "ss-obfs-http", "trojan", "vless-tls",
                      "vmess-tls", "trojan-v2ray", "vmess-ws-tls", "vmess-ws", "https-connect",
                      "ss-v2ray-plugin-tls", "https-direct", "h2-direct", "http-plain"}
CLIENT_NOTES = {"chromium": "; inner client: headless Chromium (page load: page, css, image, script)"}


def run(args):
    prefix = args.prefix
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    names = [s[0] for s in SCENARIOS]
    only = None
    if args.only:
        only = [x.strip() for x in args.only.split(",") if x.strip()]
        bad = [x for x in only if x not in names]
        if bad:
            raise SystemExit("proxylab: unknown scenario(s) %s; known: %s" % (", ".join(bad), ", ".join(names)))
    n = 3 if args.quick else 10
    clients = [x.strip() for x in args.client.split(",") if x.strip()]
    if not clients or [c for c in clients if c not in ("curl", "chromium")]:
        raise SystemExit("proxylab: --client takes curl, chromium or curl,chromium")
    if "chromium" in clients:
        for b in (CHROMIUM, "certutil"):
            if not shutil.which(b):
                raise SystemExit("proxylab: --client chromium needs %s (bash scripts/deps.sh proxylab)" % b)
        if only and clients == ["chromium"]:
            bad = [x for x in only if x not in CHROMIUM_SCENARIOS]
            if bad:
                raise SystemExit("proxylab: no chromium variant for %s; chromium runs: %s"
                                 % (", ".join(bad), ", ".join(x for x in names if x in CHROMIUM_SCENARIOS)))
    # The work dir only once the arguments are known to be good (an error above leaves nothing).
    work = tempfile.mkdtemp(prefix="proxylab-%s-" % prefix)
    os.chmod(work, 0o755)
    lab = Lab(prefix, work, args.delay_ms, args.site_delay_ms)

    def on_signal(sig, _f):
        raise KeyboardInterrupt("signal %d" % sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    manifest = []
    t0 = time.monotonic()
    try:
        pki = make_pki(work)
        lab.up()
        token = secrets.token_hex(8)
        site_extra = start_site(lab, pki, token)
        ctx = Ctx(lab, pki, token, site_extra)
        for name, klass, has_tls, setup, note in SCENARIOS:
            if only and name not in only:
                continue
            for client in clients:
                if client == "chromium" and name not in CHROMIUM_SCENARIOS:
                    continue
                ctx.client = client
                manifest.extend(run_scenario(ctx, out, name, klass, has_tls, setup, note + CLIENT_NOTES.get(client, ""),
                                             n))
                write_manifest(out, manifest, args, t0)
    finally:
        lab.down()
        if args.keep_work:
            log("work dir kept: %s" % work)
        else:
            # logs go next to the manifest, the rest (keys, site files) away
            shutil.rmtree(os.path.join(out, "logs"), ignore_errors=True)
            if os.path.isdir(lab.logs):
                shutil.copytree(lab.logs, os.path.join(out, "logs"))
            shutil.rmtree(work, ignore_errors=True)
    write_manifest(out, manifest, args, t0)
    bad = [m for m in manifest if m["status"] != "ok"]
    log("done in %.0fs: %d captures, %d not ok (%s)" % (time.monotonic() - t0, len(manifest), len(bad), ", ".join(
        "%s/%s/%s" % (m["scenario"], m["inner_client"], m["inner_tls"]) for m in bad)))
    return 0


def write_manifest(out, manifest, args, t0):
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def run_scenario(ctx, out, name, klass, has_tls, setup, note, n):
    """One capture per inner TLS version. The scenario's servers and clients are started afresh
    for each capture, so a client that keeps (or multiplexes over) a connection to its server
    starts every capture with a new one, and each pcap stands on its own."""
    lab = ctx.lab
    versions = ["1.2", "1.3"] if has_tls else [None]
    n_conns = n
    if name == "large-download":
        n_conns = max(1, n // 5)
    ctx.n_conns = n_conns
    entries = []
    # curl's pcaps keep their names; another inner client's carry it: <scenario>-chromium-tls13.pcap
    stem = name if ctx.client == "curl" else "%s-%s" % (name, ctx.client)
    for tls in versions:
        t_start = time.monotonic()
        fname = "%s-tls%s.pcap" % (stem, tls.replace(".", "")) if tls else "%s.pcap" % stem
        pcap = os.path.join(out, fname)
        if os.path.exists(pcap):
            os.unlink(pcap)
        entry = {"scenario": name, "class": klass, "inner_tls": tls, "inner_client": ctx.client, "pcap": fname,
                 "connections_attempted": 0, "connections_ok": 0, "proxy_addr": None, "rtt_ms": None,
                 "rtt_ms_range": None, "flows_to_proxy": 0, "status": "failed", "note": note}
        entries.append(entry)
        started = list(lab.procs)
        try:
            try:
                info = setup(ctx)
            except Exception as e:  # a scenario that cannot start is recorded, not dropped
                entry["note"] = "%s; setup failed: %s" % (note, e)
                entry["pcap"] = None
                log("%s tls=%s: setup failed: %s" % (name, tls, e))
                continue
            proxy_addr = info["proxy_addr"]
            if tls == "1.2" and info.get("proxy_addr_tls12"):
                proxy_addr = info["proxy_addr_tls12"]
            entry["proxy_addr"] = proxy_addr
            cap = lab.capture_start(pcap, "tcpdump-%s" % fname[:-5])
            errors = []
            try:
                for i in range(n_conns):
                    entry["connections_attempted"] += 1
                    try:
                        ok, err = info["conn"](ctx, tls, i)
                    except Exception as e:
                        ok, err = False, "client error: %s" % e
                    if ok:
                        entry["connections_ok"] += 1
                    else:
                        errors.append(err)
                        if i == 1 and entry["connections_ok"] == 0:
                            # Two failures and no success: the rest would only burn time-outs.
                            entry["note"] += "; stopped after the first two connections failed"
                            break
                    time.sleep(0.15)
                time.sleep(1.0)  # the closing handshakes cross the delay line
            finally:
                lab.capture_stop(cap)
        finally:
            # Stop everything this capture's setup started.
            for p in list(lab.procs):
                if p not in started:
                    lab.stop(p)
        st = pcapstat.summary(pcap, proxy_addr)
        entry["rtt_ms"] = st["rtt_ms"]
        entry["rtt_ms_range"] = [st["rtt_ms_min"], st["rtt_ms_max"]]
        entry["flows_to_proxy"] = st["flows"]
        if entry["connections_ok"] == entry["connections_attempted"] and st["flows"] > 0:
            entry["status"] = "ok"
        elif entry["connections_ok"] > 0:
            entry["status"] = "partial"
        if errors:
            entry["errors"] = sorted(set(errors))[:5]
        entry["seconds"] = round(time.monotonic() - t_start, 1)
        log("%-22s %-8s tls=%-4s ok %d/%d flows=%d rtt=%s ms %s" % (
            name, ctx.client, tls or "-", entry["connections_ok"], entry["connections_attempted"], st["flows"],
            entry["rtt_ms"], entry["status"]))
    return entries


def cleanup(args):
    lab = Lab.__new__(Lab)
    lab.p = args.prefix
    lab.ns_c, lab.ns_p, lab.ns_s = args.prefix + "-c", args.prefix + "-p", args.prefix + "-s"
    lab.tap_c, lab.tap_p = args.prefix + "tc", args.prefix + "tp"
    lab.veth_p, lab.veth_s = args.prefix + "vp", args.prefix + "vs"
    lab.procs = []
    lab.down(quiet=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--prefix", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--quick", action="store_true")
    r.add_argument("--only", default=None)
    r.add_argument("--delay-ms", type=float, default=15.0, help="one-way delay of the client<->proxy link")
    r.add_argument("--site-delay-ms", type=float, default=0.0,
                   help="one-way delay of the proxy<->site link (0: a plain veth)")
    r.add_argument("--keep-work", action="store_true")
    r.add_argument("--client", default="curl", help="inner client(s): curl (default), chromium, or curl,chromium")
    c = sub.add_parser("cleanup")
    c.add_argument("--prefix", required=True)
    sub.add_parser("list")
    args = ap.parse_args()
    if os.geteuid() != 0 and args.cmd != "list":
        raise SystemExit("proxylab: needs root (network namespaces)")
    if args.cmd == "run":
        try:
            return run(args)
        except KeyboardInterrupt as e:
            log("interrupted (%s); the lab is cleaned up, the manifest has the captures so far" % (e or "SIGINT"))
            return 130
    if args.cmd == "cleanup":
        return cleanup(args)
    for s in SCENARIOS:
        print("%-20s %-16s %s" % (s[0], s[1], s[4]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
