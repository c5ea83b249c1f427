"""The benign corpus's servers: one address (and name) per server implementation in the site
namespace, each on its standard ports, each with a certificate from the corpus CA that looks like
a public one (a year's validity, SAN with the name and www., the name as subject CN).

Every server is started from a config written into the work dir; nothing of the host's own
service configuration is read or changed (the Debian packages' services stay stopped).
"""
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "proxylab"))
from lab import PY, sh  # noqa: E402

# name -> address in the site namespace. site.lab (10.99.2.2, nginx of the proxy lab's site,
# sshd, git http-backend, the WebSocket echo) is the proxy lab's own.
HOSTS = {
    "web.lab": "10.99.2.20",       # nginx with the rich site (media, API, beacons, WebSocket)
    "h2c.lab": "10.99.2.21",       # nginx speaking cleartext HTTP/2 with prior knowledge on 80
    "apache.lab": "10.99.2.10",    # apache2 (mod_http2, h2c upgrade)
    "lighttpd.lab": "10.99.2.11",  # lighttpd (mod_openssl, h2)
    "h2o.lab": "10.99.2.12",       # h2o
    "py.lab": "10.99.2.13",        # python http.server (+ ssl)
    "node.lab": "10.99.2.14",      # node http / http2 (allowHTTP1)
    "db.lab": "10.99.2.15",        # postgresql, TLS optional
    "redis.lab": "10.99.2.16",     # redis-server, plain 6379 and TLS 6380
    "mail.lab": "10.99.2.17",      # dovecot imap/imaps, postfix smtp/submission/smtps
}


def make_certs(pki_dir, ca, ca_key, names):
    """A leaf certificate per name, signed by the corpus CA: 365 days, SAN name + www.name + IP."""
    out = {}
    for name, ip in names.items():
        stem = os.path.join(pki_dir, name)
        ext = stem + ".ext"
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,DNS:www.%s,IP:%s\n" % (name, name, ip))
        sh(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", stem + ".key", "-out",
            stem + ".csr", "-subj", "/CN=" + name])
        sh(["openssl", "x509", "-req", "-in", stem + ".csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", stem + ".pem", "-days", "365", "-sha256", "-extfile", ext])
        os.chmod(stem + ".key", 0o644)  # servers that drop privileges read it as another user
        out[name] = (stem + ".pem", stem + ".key")
    return out


def make_web(work, token):
    """The rich site: a page that loads styles, images, a script doing fetch/XHR, a beacon, a
    WebSocket, a service worker, a video and an audio element (range requests), a download; HLS
    segments and an MP4 for the media players; a flat apt repository."""
    web = os.path.join(work, "web")
    for d in ("img", "api", "media", "hls", "files", "debian"):
        os.makedirs(os.path.join(web, d), exist_ok=True)
    from lab import png
    for i in range(6):
        with open(os.path.join(web, "img", "p%d.png" % i), "wb") as f:
            f.write(png(48 + 8 * i, 48))
    with open(os.path.join(web, "api", "data.json"), "w") as f:
        f.write('{"token": "%s", "items": [%s]}\n' % (token, ",".join(str(i) for i in range(200))))
    with open(os.path.join(web, "style.css"), "w") as f:
        f.write("body{font-family:sans-serif}\n" + "".join(".k%d{margin:%dpx}\n" % (i, i % 9) for i in range(200)))
    with open(os.path.join(web, "app.js"), "w") as f:
        f.write("""
fetch('/api/data.json').then(r => r.json()).then(j => { document.getElementById('api').textContent = 'api ' + j.token; });
var x = new XMLHttpRequest(); x.open('GET', '/api/data.json?xhr=1'); x.send();
try { navigator.sendBeacon('/beacon', JSON.stringify({t: Date.now(), page: location.pathname})); } catch (e) {}
try {
  var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  ws.onopen = function () { ws.send('hello corpus'); ws.send(new Uint8Array(300)); };
  ws.onmessage = function (m) { document.getElementById('ws').textContent = 'ws ok'; };
} catch (e) {}
if ('serviceWorker' in navigator) { navigator.serviceWorker.register('/sw.js').catch(function () {}); }
""")
    with open(os.path.join(web, "sw.js"), "w") as f:
        f.write("self.addEventListener('install', e => e.waitUntil(caches.open('c1').then(c => c.addAll(['/style.css']))));\n"
                "self.addEventListener('fetch', e => e.respondWith(caches.match(e.request).then(r => r || fetch(e.request))));\n")
    imgs = "".join('<img src="/img/p%d.png" alt="">' % i for i in range(6))
    with open(os.path.join(web, "index.html"), "w") as f:
        f.write('<!doctype html><html><head><meta charset="utf-8"><title>corpus</title>'
                '<link rel="stylesheet" href="/style.css"><link rel="icon" href="data:,"></head><body>'
                '<h1>corpus %s</h1>%s<p id="api">no api</p><p id="ws">no ws</p>'
                '<video src="/media/clip.mp4" autoplay muted preload="auto" width="320"></video>'
                '<audio src="/media/tone.m4a" autoplay preload="auto"></audio>'
                '<a href="/files/report.pdf" download>report</a>'
                '<p>%s</p><script src="/app.js"></script></body></html>\n'
                % (token, imgs, "benign text " * 300))
    with open(os.path.join(web, "video.html"), "w") as f:
        f.write('<!doctype html><html><head><meta charset="utf-8"><title>video</title></head><body>'
                '<video src="/media/clip.mp4" autoplay muted preload="auto"></video></body></html>\n')
    # Media: generated by ffmpeg, so the bytes are real MP4/AAC/MPEG-TS.
    media = os.path.join(web, "media")
    ff = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    sh(ff + ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=12", "-c:v", "libx264", "-preset",
             "veryfast", "-b:v", "600k", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
             os.path.join(media, "clip.mp4")])
    sh(ff + ["-f", "lavfi", "-i", "sine=frequency=440:duration=8", "-c:a", "aac", "-b:a", "96k",
             os.path.join(media, "tone.m4a")])
    sh(ff + ["-i", os.path.join(media, "clip.mp4"), "-c", "copy", "-f", "hls", "-hls_time", "2",
             "-hls_playlist_type", "vod", "-hls_segment_filename", os.path.join(web, "hls", "seg%03d.ts"),
             os.path.join(web, "hls", "index.m3u8")])
    with open(os.path.join(web, "files", "report.pdf"), "wb") as f:
        f.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 2000 + b"%%EOF\n")
    with open(os.path.join(web, "files", "archive.tar.gz"), "wb") as f:
        import gzip
        f.write(gzip.compress(("corpus archive %s\n" % token).encode() * 20000))
    with open(os.path.join(web, "files", "blob.bin"), "wb") as f:
        f.write(os.urandom(2 << 20))
    make_apt_repo(work, os.path.join(web, "debian"), token)
    for root, dirs, files in os.walk(web):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for fn in files:
            os.chmod(os.path.join(root, fn), 0o644)
    return web


def make_apt_repo(work, repo, token):
    """A flat apt repository (deb [trusted=yes] http://web.lab/debian ./) with one package."""
    import gzip
    import hashlib
    pkg = os.path.join(work, "aptpkg")
    os.makedirs(os.path.join(pkg, "DEBIAN"), exist_ok=True)
    os.makedirs(os.path.join(pkg, "usr", "share", "corpus"), exist_ok=True)
    with open(os.path.join(pkg, "DEBIAN", "control"), "w") as f:
        f.write("Package: corpus-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: corpus <corpus@lab>\n"
                "Description: benign corpus package\n")
    with open(os.path.join(pkg, "usr", "share", "corpus", "hello.txt"), "w") as f:
        f.write("hello %s\n" % token * 500)
    deb = os.path.join(repo, "corpus-hello_1.0_all.deb")
    sh(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", pkg, deb])
    with open(deb, "rb") as f:
        data = f.read()
    stanza = ("Package: corpus-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: corpus <corpus@lab>\n"
              "Filename: ./corpus-hello_1.0_all.deb\nSize: %d\nMD5sum: %s\nSHA256: %s\n"
              "Description: benign corpus package\n\n" % (len(data), hashlib.md5(data).hexdigest(),
                                                          hashlib.sha256(data).hexdigest()))
    with open(os.path.join(repo, "Packages"), "w") as f:
        f.write(stanza)
    with open(os.path.join(repo, "Packages.gz"), "wb") as f:
        f.write(gzip.compress(stanza.encode()))


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
user root;
pid %(work)s/nginx-web.pid;
error_log %(logs)s/nginx-web-error.log warn;
events { worker_connections 1024; }
http {
    access_log %(logs)s/nginx-web-access.log;
    client_body_temp_path %(work)s/nginx-web-tmp/body;
    proxy_temp_path %(work)s/nginx-web-tmp/proxy;
    fastcgi_temp_path %(work)s/nginx-web-tmp/fastcgi;
    uwsgi_temp_path %(work)s/nginx-web-tmp/uwsgi;
    scgi_temp_path %(work)s/nginx-web-tmp/scgi;
    include /etc/nginx/mime.types;
    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; audio/mp4 m4a; }
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 15;
    client_max_body_size 50m;
    ssl_certificate %(crt)s;
    ssl_certificate_key %(key)s;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen %(web)s:443 ssl http2;
        listen %(web)s:80;
        server_name web.lab www.web.lab;
        root %(root)s;
        location = /beacon { return 204; }
        location = /upload { client_body_buffer_size 1m; proxy_pass http://127.0.0.1:8091/; }
        location /ws {
            proxy_pass http://127.0.0.1:8081;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
    }
    server {
        listen %(h2c)s:80 http2;
        server_name h2c.lab;
        root %(root)s;
    }
    # The upload sink: nginx answers a POST to a static location with 405, so it goes here.
    server {
        listen 127.0.0.1:8091;
        location / { return 200 "stored\\n"; }
    }
}
"""

APACHE_CONF = """
ServerRoot /etc/apache2
ServerName apache.lab
PidFile %(work)s/apache.pid
DefaultRuntimeDir %(work)s/apache-run
Mutex file:%(work)s/apache-run default
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LoadModule http2_module /usr/lib/apache2/modules/mod_http2.so
User www-data
Group www-data
Listen %(ip)s:80
Listen %(ip)s:443
ErrorLog %(logs)s/apache-error.log
LogLevel warn
TypesConfig /etc/mime.types
DocumentRoot %(root)s
DirectoryIndex index.html
<Directory />
    Require all granted
</Directory>
Protocols h2 h2c http/1.1
SSLSessionCache shmcb:%(work)s/apache-run/ssl_scache(512000)
<VirtualHost %(ip)s:443>
    SSLEngine on
    SSLCertificateFile %(crt)s
    SSLCertificateKeyFile %(key)s
</VirtualHost>
"""

LIGHTTPD_CONF = """
server.modules = ("mod_openssl")
server.document-root = "%(root)s"
server.bind = "%(ip)s"
server.port = 80
server.errorlog = "%(logs)s/lighttpd-error.log"
server.username = "www-data"
server.groupname = "www-data"
index-file.names = ("index.html")
include_shell "/usr/share/lighttpd/create-mime.conf.pl"
$SERVER["socket"] == "%(ip)s:443" {
    ssl.engine = "enable"
    ssl.pemfile = "%(crt)s"
    ssl.privkey = "%(key)s"
}
"""

H2O_CONF = """
user: nobody
pid-file: %(run)s/h2o.pid
error-log: %(logs)s/h2o-error.log
hosts:
  "h2o.lab:443":
    listen:
      host: %(ip)s
      port: 443
      ssl:
        certificate-file: %(crt)s
        key-file: %(key)s
    paths:
      /:
        file.dir: %(root)s
  "h2o.lab:80":
    listen:
      host: %(ip)s
      port: 80
    paths:
      /:
        file.dir: %(root)s
"""

PY_SERVER = r"""
import functools, http.server, ssl, sys, threading
root, ip, crt, key = sys.argv[1:5]
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
h = functools.partial(H, directory=root)
plain = http.server.ThreadingHTTPServer((ip, 80), h)
tls = http.server.ThreadingHTTPServer((ip, 443), h)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(crt, key)
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=plain.serve_forever, daemon=True).start()
tls.serve_forever()
"""

NODE_SERVER = r"""
const fs = require('fs'), path = require('path'), http = require('http'), http2 = require('http2');
const [root, ip, crt, key] = process.argv.slice(2);
const types = {'.html': 'text/html', '.json': 'application/json', '.png': 'image/png', '.css': 'text/css',
               '.js': 'text/javascript', '.mp4': 'video/mp4'};
function serve(req, res) {
  let p = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  if (p.endsWith('/')) p += 'index.html';
  const f = path.join(root, path.normalize(p));
  fs.readFile(f, (err, data) => {
    if (err) { res.writeHead(404, {'content-type': 'text/plain'}); res.end('not found\n'); return; }
    res.writeHead(200, {'content-type': types[path.extname(f)] || 'application/octet-stream'});
    res.end(data);
  });
}
http2.createSecureServer({cert: fs.readFileSync(crt), key: fs.readFileSync(key), allowHTTP1: true}, serve).listen(443, ip);
http.createServer(serve).listen(80, ip);
"""

DOVECOT_CONF = """
protocols = imap
listen = %(ip)s
base_dir = %(work)s/dovecot-run
state_dir = %(work)s/dovecot-state
log_path = %(logs)s/dovecot.log
ssl = yes
ssl_cert = <%(crt)s
ssl_key = <%(key)s
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
passdb {
  driver = static
  args = password=corpus
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=%(work)s/mail/%%u
}
mail_location = maildir:~/Maildir
"""

POSTFIX_MAIN = """
compatibility_level = 3.6
queue_directory = %(work)s/postfix-queue
data_directory = %(work)s/postfix-data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
myhostname = mail.lab
mydomain = lab
mydestination = mail.lab, localhost
# Every local part is accepted (and discarded): the corpus sends to made-up users.
local_recipient_maps =
inet_interfaces = %(ip)s
inet_protocols = ipv4
mynetworks = 10.99.0.0/16 127.0.0.0/8
smtpd_tls_cert_file = %(crt)s
smtpd_tls_key_file = %(key)s
smtpd_tls_security_level = may
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
local_transport = discard:
default_transport = discard:
maillog_file = %(logs)s/postfix.log
# postfix only writes its log below a listed prefix.
maillog_file_prefixes = %(logs)s
smtputf8_enable = no
alias_maps =
alias_database =
"""

POSTFIX_MASTER = """
smtp      inet  n       -       n       -       -       smtpd
submission inet n       -       n       -       -       smtpd -o smtpd_tls_security_level=encrypt
smtps     inet  n       -       n       -       -       smtpd -o smtpd_tls_wrappermode=yes
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Servers:
    """Starts every corpus server in the site namespace; records which came up."""

    def __init__(self, lab, pki, certs, web):
        self.lab, self.pki, self.certs, self.web = lab, pki, certs, web
        self.up = {}
        self.failed = {}
        # Servers that drop root write their logs and pid files here.
        os.chmod(lab.logs, 0o777)
        self.run_dir = os.path.join(lab.work, "run")
        os.makedirs(self.run_dir, exist_ok=True)
        os.chmod(self.run_dir, 0o777)

    # Servers started again when found dead before a scenario; the others (initdb, postfix's
    # own supervisor) are reported.
    RESTARTABLE = ("nginx-web", "apache2", "lighttpd", "h2o", "python-http", "node-http", "redis", "dovecot")

    def start_all(self):
        self.starters = {"nginx-web": self.nginx, "apache2": self.apache, "lighttpd": self.lighttpd, "h2o": self.h2o,
                         "python-http": self.python, "node-http": self.node, "postgresql": self.postgres,
                         "redis": self.redis, "dovecot": self.dovecot, "postfix": self.postfix}
        self.procs = {}
        self.restarts = {}
        for name, fn in self.starters.items():
            try:
                fn()
                self.procs[name] = self.last
                self.up[name] = True
            except Exception as e:  # a server that cannot start costs its scenarios, not the corpus
                self.failed[name] = str(e)[:300]
                print("corpus: server %s failed: %s" % (name, e), file=sys.stderr, flush=True)
        return self.up

    def _conf(self, name, text):
        path = os.path.join(self.lab.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _vars(self, host):
        crt, key = self.certs[host]
        return {"work": self.lab.work, "logs": self.lab.logs, "root": self.web, "ip": HOSTS[host], "crt": crt,
                "key": key, "run": self.run_dir}

    def ensure(self, name):
        """Before a scenario: a server that died since is started again (counted in the
        manifest), so one crash costs the sessions that met it, not every later scenario."""
        p = self.procs.get(name)
        if p is None or p.poll() is None:
            return True
        print("corpus: server %s exited (%s); %s" % (name, p.returncode, "restarting" if name in self.RESTARTABLE
                                                      else "not restartable"), file=sys.stderr, flush=True)
        self.restarts[name] = self.restarts.get(name, 0) + 1
        if name not in self.RESTARTABLE:
            return False
        try:
            self.starters[name]()
            self.procs[name] = self.last
            return True
        except Exception as e:
            print("corpus: server %s did not come back: %s" % (name, e), file=sys.stderr, flush=True)
            return False

    def _wait(self, host, ports, proc):
        self.last = proc
        for port in ports:
            self.lab.wait_listen(self.lab.ns_s, port, proc, timeout=20)

    def nginx(self):
        v = self._vars("web.lab")
        v.update(web=HOSTS["web.lab"], h2c=HOSTS["h2c.lab"])
        for t in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.lab.work, "nginx-web-tmp", t), exist_ok=True)
        conf = self._conf("nginx-web.conf", NGINX_CONF % v)
        p = self.lab.spawn(self.lab.ns_s, ["nginx", "-c", conf, "-e", os.path.join(self.lab.logs, "nginx-web-error.log")],
                           "nginx-web")
        self._wait("web.lab", (443, 80, 8091), p)

    def apache(self):
        v = self._vars("apache.lab")
        os.makedirs(os.path.join(self.lab.work, "apache-run"), exist_ok=True)
        os.chmod(os.path.join(self.lab.work, "apache-run"), 0o777)
        conf = self._conf("apache.conf", APACHE_CONF % v)
        p = self.lab.spawn(self.lab.ns_s, ["apache2", "-f", conf, "-DFOREGROUND"], "apache2")
        self._wait("apache.lab", (443, 80), p)

    def lighttpd(self):
        conf = self._conf("lighttpd.conf", LIGHTTPD_CONF % self._vars("lighttpd.lab"))
        p = self.lab.spawn(self.lab.ns_s, ["lighttpd", "-D", "-f", conf], "lighttpd")
        self._wait("lighttpd.lab", (443,), p)

    def h2o(self):
        conf = self._conf("h2o.conf", H2O_CONF % self._vars("h2o.lab"))
        p = self.lab.spawn(self.lab.ns_s, ["h2o", "-c", conf], "h2o")
        self._wait("h2o.lab", (443,), p)

    def python(self):
        v = self._vars("py.lab")
        script = self._conf("pyserver.py", PY_SERVER)
        p = self.lab.spawn(self.lab.ns_s, [PY, script, v["root"], v["ip"], v["crt"], v["key"]], "python-http")
        self._wait("py.lab", (443, 80), p)

    def node(self):
        v = self._vars("node.lab")
        script = self._conf("nodeserver.js", NODE_SERVER)
        p = self.lab.spawn(self.lab.ns_s, ["node", script, v["root"], v["ip"], v["crt"], v["key"]], "node-http")
        self._wait("node.lab", (443, 80), p)

    def postgres(self):
        v = self._vars("db.lab")
        bindir = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
        bindir = os.path.join("/usr/lib/postgresql", bindir, "bin")
        data = os.path.join(self.lab.work, "pgdata")
        sock = os.path.join(self.lab.work, "pgsock")
        for d in (data, sock):
            os.makedirs(d, mode=0o700, exist_ok=True)
            shutil.chown(d, "postgres", "postgres")
        sh(["runuser", "-u", "postgres", "--", os.path.join(bindir, "initdb"), "-A", "trust", "-N", "-D", data])
        with open(os.path.join(data, "pg_hba.conf"), "a") as f:
            f.write("host all all 10.99.0.0/16 trust\n")
        for src, dst in ((v["crt"], "server.crt"), (v["key"], "server.key")):
            shutil.copy(src, os.path.join(data, dst))
            shutil.chown(os.path.join(data, dst), "postgres", "postgres")
            os.chmod(os.path.join(data, dst), 0o600)
        p = self.lab.spawn(self.lab.ns_s, ["runuser", "-u", "postgres", "--", os.path.join(bindir, "postgres"), "-D",
                                           data, "-k", sock, "-c", "listen_addresses=" + v["ip"], "-c", "ssl=on"],
                           "postgres")
        self._wait("db.lab", (5432,), p)

    def redis(self):
        v = self._vars("redis.lab")
        p = self.lab.spawn(self.lab.ns_s, ["redis-server", "--bind", v["ip"], "--port", "6379", "--tls-port", "6380",
                                           "--tls-cert-file", v["crt"], "--tls-key-file", v["key"],
                                           "--tls-ca-cert-file", self.pki["ca"], "--tls-auth-clients", "no",
                                           "--save", "", "--appendonly", "no", "--protected-mode", "no",
                                           "--dir", self.lab.work], "redis")
        self._wait("redis.lab", (6379, 6380), p)

    def dovecot(self):
        v = self._vars("mail.lab")
        for d in ("dovecot-run", "dovecot-state", "mail"):
            os.makedirs(os.path.join(self.lab.work, d), exist_ok=True)
        os.chmod(os.path.join(self.lab.work, "mail"), 0o777)
        conf = self._conf("dovecot.conf", DOVECOT_CONF % v)
        p = self.lab.spawn(self.lab.ns_s, ["dovecot", "-F", "-c", conf], "dovecot")
        self._wait("mail.lab", (143, 993), p)

    def postfix(self):
        v = self._vars("mail.lab")
        cdir = os.path.join(self.lab.work, "postfix")
        os.makedirs(cdir, exist_ok=True)
        for d in ("postfix-queue", "postfix-data"):
            os.makedirs(os.path.join(self.lab.work, d), exist_ok=True)
        shutil.chown(os.path.join(self.lab.work, "postfix-data"), "postfix", "postfix")
        self._conf("postfix/main.cf", POSTFIX_MAIN % v)
        self._conf("postfix/master.cf", POSTFIX_MASTER.replace("1000?", "1000"))
        r = self.lab.run(self.lab.ns_s, ["postfix", "-c", cdir, "set-permissions"], timeout=60)
        if r.returncode != 0:
            r = self.lab.run(self.lab.ns_s, ["postfix", "-c", cdir, "check"], timeout=60)
        p = self.lab.spawn(self.lab.ns_s, ["postfix", "-c", cdir, "start-fg"], "postfix")
        self._wait("mail.lab", (25, 587, 465), p)

    def stop_extra(self):
        """Services that leave daemons outside the spawned process group."""
        cdir = os.path.join(self.lab.work, "postfix")
        if self.up.get("postfix"):
            self.lab.run(self.lab.ns_s, ["postfix", "-c", cdir, "stop"], timeout=20)
        time.sleep(0.2)
        subprocess.run(["true"])
