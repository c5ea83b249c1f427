#!/usr/bin/env python3
"""The benign corpus: real clients talking to real servers in the namespace lab, captured on the
client's leg, one pcap per scenario; the traffic every finding is calibrated on.

    client ns  ==[TAP pair + delay line]==  router ns  ==[veth]==  site ns (every server)

The topology, the delay line and the proxy lab's site (nginx on site.lab, sshd, git
http-backend, a WebSocket echo) come from scripts/proxylab/lab.py; servers.py adds one address
per server implementation. Nothing here is a proxy: every flow is what it claims to be.

    corpus.py run --prefix P --out DIR [--quick] [--only A,B] [--reps N] [--delay-ms MS]
    corpus.py list
    corpus.py cleanup --prefix P

Writes DIR/<scenario>.pcap and DIR/manifest.json: per scenario the client implementation, the
server, what it exercises, sessions attempted/ok and the TCP flows in its capture (three-way
handshake completed). A scenario whose server or client is missing is recorded as skipped.
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

HERE = os.path.dirname(os.path.abspath(__file__))
LABDIR = os.path.join(os.path.dirname(HERE), "proxylab")
sys.path.insert(0, LABDIR)
sys.path.insert(0, HERE)
import pcapstat  # noqa: E402
from lab import (CHROMIUM, CHROMIUM_FLAGS, PY, SITE, SITE_IP, Lab, chromium_nssdb, cleanup, make_pki,  # noqa: E402
                 sh, start_site)
from servers import HOSTS, Servers, make_certs, make_web  # noqa: E402


# The Python clients use the distribution's interpreter: their libraries (requests, httpx, h2,
# aiohttp) are Debian packages.
SYS_PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else PY


def log(msg):
    print("corpus: " + msg, file=sys.stderr, flush=True)


ALL_HOSTS = dict(HOSTS)
ALL_HOSTS[SITE] = SITE_IP

PY_CLIENT = r"""
import json, ssl, sys
mode, ca, n, urls = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
ok = 0
if mode == "requests":
    import requests
    for i in range(n):
        with requests.Session() as s:
            ok += all(s.get(u, verify=ca, timeout=20).status_code == 200 for u in urls)
elif mode in ("httpx", "httpx-h2", "httpx-h2c"):
    import httpx
    for i in range(n):
        # httpx-h2c: HTTP/2 only, so http:// URLs get the prior-knowledge preface.
        with httpx.Client(verify=ca, http1=(mode != "httpx-h2c"), http2=(mode != "httpx"), timeout=20) as c:
            ok += all(c.get(u).status_code == 200 for u in urls)
elif mode == "aiohttp":
    import asyncio, aiohttp
    async def main():
        global ok
        sslctx = ssl.create_default_context(cafile=ca)
        for i in range(n):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=sslctx, limit=2)) as s:
                rs = await asyncio.gather(*[s.get(u) for u in urls])
                for r in rs:
                    await r.read()
                ok += all(r.status == 200 for r in rs)
    asyncio.run(main())
elif mode == "urllib":
    import urllib.request
    ctx = ssl.create_default_context(cafile=ca)
    for i in range(n):
        ok += all(urllib.request.urlopen(u, context=ctx, timeout=20).status == 200 for u in urls)
elif mode == "smtplib":
    import smtplib
    for i in range(n):
        with smtplib.SMTP(urls[0], 25, timeout=20) as s:
            s.ehlo("client.lab")
            s.starttls(context=ssl.create_default_context(cafile=ca))
            s.ehlo("client.lab")
            s.sendmail("alice@client.lab", ["bob@mail.lab"], "Subject: corpus %d\r\n\r\nhello from the corpus\r\n" % i)
            ok += 1
elif mode == "imaplib":
    import imaplib
    for i in range(n):
        m = imaplib.IMAP4_SSL(urls[0], 993, ssl_context=ssl.create_default_context(cafile=ca))
        m.login("user%d" % (i % 3), "corpus")
        m.select("INBOX")
        m.list()
        m.logout()
        ok += 1
print("py-ok %d/%d" % (ok, n))
sys.exit(0 if ok == n else 1)
"""

GO_CLIENT = r"""
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	ok := 0
	for i := 0; i < n; i++ {
		c := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true}}
		good := true
		for _, u := range os.Args[2:] {
			r, err := c.Get(u)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				good = false
				continue
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			good = good && r.StatusCode == 200
		}
		c.CloseIdleConnections()
		if good {
			ok++
		}
	}
	fmt.Printf("go-ok %d/%d\n", ok, n)
	if ok != n {
		os.Exit(1)
	}
}
"""

NODE_CLIENT = r"""
const https = require('https'), http = require('http');
const [mode, n, ...urls] = process.argv.slice(2);
async function viaFetch() { for (const u of urls) { const r = await fetch(u); await r.arrayBuffer(); if (r.status !== 200) throw new Error(u + ' ' + r.status); } }
function get(u, agent) {
  return new Promise((res, rej) => {
    (u.startsWith('https:') ? https : http).get(u, {agent}, r => { r.resume(); r.on('end', () => r.statusCode === 200 ? res() : rej(new Error(u))); }).on('error', rej);
  });
}
(async () => {
  let ok = 0;
  for (let i = 0; i < +n; i++) {
    if (mode === 'fetch') { await viaFetch(); }
    else { const agent = new (urls[0].startsWith('https:') ? https : http).Agent({keepAlive: true}); for (const u of urls) await get(u, agent); agent.destroy(); }
    ok++;
  }
  console.log('node-ok ' + ok + '/' + n);
})().catch(e => { console.error(String(e)); process.exit(1); });
"""

JAVA_CLIENT = r"""
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class CorpusClient {
    public static void main(String[] a) throws Exception {
        HttpClient.Version v = a[0].equals("h2") ? HttpClient.Version.HTTP_2 : HttpClient.Version.HTTP_1_1;
        HttpClient c = HttpClient.newBuilder().version(v).build();
        for (int i = 1; i < a.length; i++) {
            HttpResponse<byte[]> r = c.send(HttpRequest.newBuilder(URI.create(a[i])).build(),
                                            HttpResponse.BodyHandlers.ofByteArray());
            if (r.statusCode() != 200) { System.err.println(a[i] + " " + r.statusCode()); System.exit(1); }
        }
        System.out.println("java-ok");
    }
}
"""

FIREFOX_PREFS = """
user_pref("app.update.enabled", false);
user_pref("app.update.auto", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.search.update", false);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.prefetch-next", false);
user_pref("network.http.speculative-parallel-limit", 0);
user_pref("media.autoplay.default", 0);
user_pref("security.OCSP.enabled", 0);
user_pref("network.trr.mode", 5);
user_pref("network.http.http3.enable", false);
user_pref("browser.newtabpage.enabled", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
"""


class Ctx:
    def __init__(self, lab, pki, token, site_extra, up):
        self.lab, self.pki, self.token, self.up = lab, pki, token, up
        self.ca = pki["ca"]
        self.client_key = site_extra["client_key"]
        self.scratch = os.path.join(lab.work, "scratch")
        os.makedirs(self.scratch, exist_ok=True)
        self.tools = {}
        self.runs = 0

    def run(self, argv, timeout=60, env=None, expect=None, input=None):
        r = self.lab.run(self.lab.ns_c, argv, timeout=timeout, env=env, input=input)
        ok = r.returncode == 0 and (expect is None or expect.encode() in r.stdout)
        err = "" if ok else "%s rc=%d %s %s" % (os.path.basename(argv[0]), r.returncode,
                                                 r.stdout.decode(errors="replace")[-120:],
                                                 r.stderr.decode(errors="replace")[-200:])
        return ok, err

    def tool(self, name):
        """Client programs that need writing (and building) once per run."""
        if name in self.tools:
            return self.tools[name]
        d = os.path.join(self.lab.work, "clients")
        os.makedirs(d, exist_ok=True)
        if name == "py":
            path = os.path.join(d, "pyclient.py")
            with open(path, "w") as f:
                f.write(PY_CLIENT)
        elif name == "node":
            path = os.path.join(d, "nodeclient.js")
            with open(path, "w") as f:
                f.write(NODE_CLIENT)
        elif name == "go":
            src = os.path.join(d, "goclient.go")
            with open(src, "w") as f:
                f.write(GO_CLIENT)
            path = os.path.join(d, "goclient")
            env = dict(os.environ, GOCACHE=os.path.join(d, "gocache"), GO111MODULE="off", GOPATH=os.path.join(d, "gopath"),
                       HOME=d)
            subprocess.run(["go", "build", "-o", path, src], check=True, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        elif name == "java":
            src = os.path.join(d, "CorpusClient.java")
            with open(src, "w") as f:
                f.write(JAVA_CLIENT)
            subprocess.run(["javac", "-d", d, src], check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            store = os.path.join(d, "ca.jks")
            if os.path.exists(store):
                os.unlink(store)
            subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "corpus", "-file", self.ca, "-keystore",
                            store, "-storepass", "changeit"], check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            path = (d, store)
        elif name == "chromium":
            path = chromium_nssdb(os.path.join(self.lab.work, "chromium"), self.ca)
        elif name == "firefox":
            prof = os.path.join(d, "firefox-profile")
            os.makedirs(prof, exist_ok=True)
            sh(["certutil", "-d", "sql:" + prof, "-N", "--empty-password"])
            sh(["certutil", "-d", "sql:" + prof, "-A", "-n", "corpus-ca", "-t", "C,,", "-i", self.ca])
            with open(os.path.join(prof, "user.js"), "w") as f:
                f.write(FIREFOX_PREFS)
            path = prof
        else:
            raise KeyError(name)
        self.tools[name] = path
        return path


def U(host, path="/", scheme="https"):
    return "%s://%s%s" % (scheme, host, path)


PAGE_SET = ["/index.html", "/style.css", "/img/p0.png", "/api/data.json"]


def urls(host, scheme="https", paths=PAGE_SET):
    return [U(host, p, scheme) for p in paths]


# ---- scenario kinds ------------------------------------------------------------------------

def curl(*extra, host="web.lab", scheme="https", paths=PAGE_SET, expect=None):
    def conn(ctx, i):
        argv = ["curl", "-sS", "--fail", "--max-time", "30", "--cacert", ctx.ca, "-o", "/dev/null"] + list(extra)
        for u in urls(host, scheme, paths):
            argv += [u, "-o", "/dev/null"]
        return ctx.run(argv, expect=expect)
    return conn


def wget(*extra, host="web.lab", scheme="https"):
    def conn(ctx, i):
        d = os.path.join(ctx.scratch, "wget")
        shutil.rmtree(d, ignore_errors=True)
        ok, err = ctx.run(["wget", "-q", "-e", "robots=off", "--ca-certificate", ctx.ca, "-P", d] + list(extra)
                          + [U(host, "/index.html", scheme)])
        shutil.rmtree(d, ignore_errors=True)
        return ok, err
    return conn


def pyclient(mode, host="web.lab", scheme="https", per=5):
    def conn(ctx, i):
        return ctx.run([SYS_PY, ctx.tool("py"), mode, ctx.ca, str(per)] + (urls(host, scheme) if host else []),
                       timeout=120, expect="py-ok")
    conn.flows_per_session = per
    return conn


def pymail(mode, per=5):
    def conn(ctx, i):
        return ctx.run([SYS_PY, ctx.tool("py"), mode, ctx.ca, str(per), "mail.lab"], timeout=120, expect="py-ok")
    conn.flows_per_session = per
    return conn


def goclient(host="web.lab", scheme="https", per=5):
    def conn(ctx, i):
        return ctx.run([ctx.tool("go"), str(per)] + urls(host, scheme), timeout=120, expect="go-ok",
                       env={"SSL_CERT_FILE": ctx.ca})
    conn.flows_per_session = per
    return conn


def nodeclient(mode, host="web.lab", scheme="https", per=3):
    def conn(ctx, i):
        return ctx.run(["node", ctx.tool("node"), mode, str(per)] + urls(host, scheme), timeout=120,
                       expect="node-ok", env={"NODE_EXTRA_CA_CERTS": ctx.ca})
    conn.flows_per_session = per
    return conn


def javaclient(version, host="web.lab", scheme="https"):
    def conn(ctx, i):
        d, store = ctx.tool("java")
        return ctx.run(["java", "-Djavax.net.ssl.trustStore=" + store, "-Djavax.net.ssl.trustStorePassword=changeit",
                        "-cp", d, "CorpusClient", version] + urls(host, scheme), timeout=60, expect="java-ok")
    return conn


def git(scheme):
    def conn(ctx, i):
        dest = os.path.join(ctx.scratch, "clone")
        shutil.rmtree(dest, ignore_errors=True)
        env = {"HOME": ctx.scratch, "GIT_CONFIG_NOSYSTEM": "1", "GIT_SSL_CAINFO": ctx.ca, "GIT_TERMINAL_PROMPT": "0",
               "GIT_COMMITTER_NAME": "corpus", "GIT_COMMITTER_EMAIL": "corpus@lab", "GIT_AUTHOR_NAME": "corpus",
               "GIT_AUTHOR_EMAIL": "corpus@lab"}
        ok, err = ctx.run(["git", "clone", "-q", "%s://%s/git/small.git" % (scheme, SITE), dest], env=env)
        if ok:
            ok = os.path.exists(os.path.join(dest, "file2.txt"))
            if ok and i % 2 == 1:
                ok, err = ctx.run(["git", "-C", dest, "fetch", "-q", "origin"], env=env)
        shutil.rmtree(dest, ignore_errors=True)
        return ok, err
    return conn


def apt(scheme):
    def conn(ctx, i):
        root = os.path.join(ctx.scratch, "apt")
        shutil.rmtree(root, ignore_errors=True)
        for d in ("state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d", "dl"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        with open(os.path.join(root, "etc/sources.list"), "w") as f:
            f.write("deb [trusted=yes] %s://web.lab/debian ./\n" % scheme)
        opts = ["-o", "Dir::Etc::sourcelist=" + os.path.join(root, "etc/sources.list"),
                "-o", "Dir::Etc::sourceparts=" + os.path.join(root, "etc/apt.conf.d"),
                "-o", "Dir::Etc::parts=" + os.path.join(root, "etc/apt.conf.d"),
                "-o", "Dir::Etc::preferencesparts=" + os.path.join(root, "etc/preferences.d"),
                "-o", "Dir::State=" + os.path.join(root, "state"), "-o", "Dir::Cache=" + os.path.join(root, "cache"),
                "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1", "-o", "Acquire::Languages=none",
                "-o", "Acquire::https::CAInfo=" + ctx.ca, "-o", "Acquire::Retries=0", "-q"]
        ok, err = ctx.run(["apt-get"] + opts + ["update"], timeout=60)
        if ok:
            r = ctx.lab.run(ctx.lab.ns_c, ["sh", "-c", "cd %s && apt-get %s download corpus-hello"
                                           % (os.path.join(root, "dl"), " ".join("'%s'" % o for o in opts))],
                            timeout=60)
            ok = r.returncode == 0 and any(n.endswith(".deb") for n in os.listdir(os.path.join(root, "dl")))
            err = "" if ok else "apt download rc=%d %s" % (r.returncode, r.stderr.decode()[-200:])
        shutil.rmtree(root, ignore_errors=True)
        return ok, err
    return conn


def ffmpeg(path, scheme="https"):
    def conn(ctx, i):
        tls = ["-tls_verify", "1", "-ca_file", ctx.ca] if scheme == "https" else []
        return ctx.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"] + tls + [
            "-i", U("web.lab", path, scheme), "-c", "copy", "-f", "null", "-"], timeout=90)
    return conn


def s_client(version):
    def conn(ctx, i):
        req = b"GET /api/data.json HTTP/1.1\r\nHost: web.lab\r\nConnection: close\r\n\r\n"
        return ctx.run(["openssl", "s_client", "-quiet", "-connect", "web.lab:443", "-servername", "web.lab",
                        "-CAfile", ctx.ca, "-verify_return_error", "-" + version], input=req, expect=ctx.token)
    return conn


SSH_OPTS = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=15"]


def ssh(kind):
    def conn(ctx, i):
        base = SSH_OPTS + ["-i", ctx.client_key]
        if kind == "exec":
            return ctx.run(["ssh"] + base + ["root@" + SITE, "uname -sr; ls / | head -3; echo corpus-ssh"],
                           expect="corpus-ssh")
        src = os.path.join(ctx.lab.work, "web", "files", "blob.bin")
        out = os.path.join(ctx.scratch, "blob.copy")
        if kind == "sftp":
            ok, err = ctx.run(["sftp", "-q", "-b", "-"] + base + ["root@" + SITE],
                              input=("get %s %s\nls /\n" % (src, out)).encode())
        else:
            ok, err = ctx.run(["scp", "-q"] + base + [src, "root@%s:%s" % (SITE, out + ".up")])
            out = out + ".up"
        ok = ok and os.path.exists(out) and os.path.getsize(out) == os.path.getsize(src)
        for p in (out,):
            if os.path.exists(p):
                os.unlink(p)
        return ok, err
    return conn


def curl_mail(url, *extra):
    def conn(ctx, i):
        if url.startswith(("smtp", "smtps")):
            msg = os.path.join(ctx.scratch, "msg.txt")
            with open(msg, "w") as f:
                f.write("From: alice@client.lab\r\nTo: bob@mail.lab\r\nSubject: corpus %d\r\n\r\n%s\r\n"
                        % (i, "hello from the corpus " * 40))
            return ctx.run(["curl", "-sS", "--max-time", "30", "--cacert", ctx.ca, "--mail-from", "alice@client.lab",
                            "--mail-rcpt", "bob@mail.lab", "-T", msg] + list(extra) + [url])
        return ctx.run(["curl", "-sS", "--max-time", "30", "--cacert", ctx.ca, "-u", "user%d:corpus" % (i % 3)]
                       + list(extra) + [url])
    return conn


def psql(sslmode):
    def conn(ctx, i):
        dsn = "host=db.lab user=postgres dbname=postgres sslmode=%s sslrootcert=%s" % (sslmode, ctx.ca)
        return ctx.run(["psql", dsn, "-Atc", "select count(*) from pg_class; select now(); select '%s'" % ctx.token],
                       expect=ctx.token)
    return conn


def redis(tls):
    def conn(ctx, i):
        argv = ["redis-cli", "-h", "redis.lab"] + (["-p", "6380", "--tls", "--cacert", ctx.ca] if tls else
                                                     ["-p", "6379"])
        cmds = "SET corpus:%d %s\nGET corpus:%d\nINCR corpus:n\nLPUSH corpus:l a b c\nLRANGE corpus:l 0 -1\nPING\n" % (
            i, ctx.token, i)
        return ctx.run(argv, input=cmds.encode(), expect=ctx.token)
    return conn


def wss(ctx, i):
    return ctx.run([PY, os.path.join(LABDIR, "wss.py"), "client", "--host", SITE, "--connect", "%s:443" % SITE_IP,
                    "--path", "/ws", "--cafile", ctx.ca, "--tls", "1.3" if i % 2 else "1.2", "--messages", "12",
                    "--seed", str(i)], timeout=30, expect="wss-ok")


RESOLVER = ", ".join("EXCLUDE %s" % h for h in ALL_HOSTS) + ", MAP * ~NOTFOUND"


def chromium(host="web.lab", path="/index.html", extra=(), expect=None):
    def conn(ctx, i):
        home = ctx.tool("chromium")
        ctx.runs += 1
        udd = os.path.join(ctx.scratch, "chromium-profile-%d" % ctx.runs)
        os.makedirs(udd, exist_ok=True)
        argv = [CHROMIUM] + CHROMIUM_FLAGS + ["--user-data-dir=" + udd, "--host-resolver-rules=" + RESOLVER,
                                              "--autoplay-policy=no-user-gesture-required",
                                              "--virtual-time-budget=4000"] + list(extra) + [
            "--timeout=25000", "--dump-dom", U(host, path)]
        env = {"HOME": home}
        try:
            ok, err = ctx.run(argv, timeout=40, env=env, expect=expect or ctx.token)
        finally:
            ctx.lab.kill_in_ns(ctx.lab.ns_c, ("chromium", "chrome_crashpad"))
            shutil.rmtree(udd, ignore_errors=True)
        return ok, err
    return conn


def firefox(host="web.lab", path="/index.html"):
    def conn(ctx, i):
        prof = ctx.tool("firefox")
        shot = os.path.join(ctx.scratch, "ff.png")
        if os.path.exists(shot):
            os.unlink(shot)
        try:
            ok, err = ctx.run(["firefox-esr", "--headless", "--no-remote", "--profile", prof, "--screenshot", shot,
                               U(host, path)], timeout=60, env={"HOME": ctx.scratch, "MOZ_DISABLE_AUTO_SAFE_MODE": "1"})
        finally:
            ctx.lab.kill_in_ns(ctx.lab.ns_c, ("firefox", "Web Content", "WebExtensions", "Privileged", "RDD", "Socket",
                                              "Utility", "forkserver"))
        ok = ok and os.path.exists(shot)
        return ok, err
    return conn


# ---- the scenarios -------------------------------------------------------------------------
# name, client implementation, server implementation(s), what it exercises, sessions in a full run,
# session function. A session may make several TCP flows.
SCENARIOS = [
    ("curl-h2-nginx", "curl", "nginx", "HTTP/2 over TLS 1.3, page + assets on one connection", 150,
     curl("--http2")),
    ("curl-h11-tls12-nginx", "curl", "nginx", "HTTP/1.1 over TLS 1.2, keep-alive", 150,
     curl("--http1.1", "--tlsv1.2", "--tls-max", "1.2")),
    ("curl-http-nginx", "curl", "nginx", "cleartext HTTP/1.1 on 80", 150, curl(scheme="http")),
    # curl 7.88 fails a second request on a reused cleartext HTTP/2 connection ("Error in the
    # HTTP2 framing layer"), so its h2c sessions fetch one resource each.
    ("curl-h2c-prior-nginx", "curl", "nginx", "cleartext HTTP/2 with prior knowledge (PRI preface) on 80", 150,
     curl("--http2-prior-knowledge", host="h2c.lab", scheme="http", paths=["/index.html"])),
    ("python-httpx-h2c-prior-nginx", "python-httpx", "nginx", "httpx, cleartext HTTP/2 with prior knowledge", 25,
     pyclient("httpx-h2c", host="h2c.lab", scheme="http")),
    ("curl-h2c-upgrade-apache", "curl", "apache2", "HTTP/1.1 Upgrade: h2c on 80", 120,
     curl("--http2", host="apache.lab", scheme="http", paths=["/index.html"])),
    ("curl-range-nginx", "curl", "nginx", "Range requests on an MP4 (video seeking)", 120,
     curl("-r", "0-65535", host="web.lab", paths=["/media/clip.mp4"])),
    ("curl-upload-nginx", "curl", "nginx", "POST of a 2 MiB multipart upload (client sends most)", 80,
     lambda ctx, i: ctx.run(["curl", "-sS", "--fail", "--max-time", "30", "--cacert", ctx.ca, "-F",
                             "file=@%s" % os.path.join(ctx.lab.work, "web", "files", "blob.bin"),
                             "https://web.lab/upload"], expect="stored")),
    ("curl-download-nginx", "curl", "nginx", "downloads: tar.gz, PDF, binary", 100,
     curl(paths=["/files/archive.tar.gz", "/files/report.pdf", "/files/blob.bin"])),
    ("curl-h2-apache", "curl", "apache2", "HTTP/2 over TLS to apache2 (mod_http2)", 120,
     curl("--http2", host="apache.lab")),
    ("curl-http-apache", "curl", "apache2", "cleartext HTTP/1.1 to apache2", 100,
     curl("--http1.1", host="apache.lab", scheme="http")),
    ("curl-h2-lighttpd", "curl", "lighttpd", "HTTP/2 over TLS to lighttpd", 120, curl("--http2", host="lighttpd.lab")),
    ("curl-h11-lighttpd", "curl", "lighttpd", "HTTP/1.1 over TLS 1.2 to lighttpd", 100,
     curl("--http1.1", "--tlsv1.2", "--tls-max", "1.2", host="lighttpd.lab")),
    ("curl-h2-h2o", "curl", "h2o", "HTTP/2 over TLS to h2o", 120, curl("--http2", host="h2o.lab")),
    ("curl-h2c-upgrade-h2o", "curl", "h2o", "HTTP/1.1 Upgrade: h2c to h2o", 100,
     curl("--http2", host="h2o.lab", scheme="http")),
    ("curl-https-python", "curl", "python-http", "HTTPS to Python's http.server", 100, curl(host="py.lab")),
    ("curl-h2-node", "curl", "node-http", "HTTP/2 over TLS to Node's http2 server", 100,
     curl("--http2", host="node.lab")),
    ("wget-https-nginx", "wget", "nginx", "wget page requisites over HTTPS", 100, wget("-p")),
    ("wget-http-apache", "wget", "apache2", "wget over cleartext HTTP", 80, wget("-p", host="apache.lab", scheme="http")),
    ("python-requests-nginx", "python-requests", "nginx", "requests sessions over HTTPS", 30, pyclient("requests")),
    ("python-httpx-h2-nginx", "python-httpx", "nginx", "httpx with HTTP/2 (h2 library)", 30, pyclient("httpx-h2")),
    ("python-httpx-lighttpd", "python-httpx", "lighttpd", "httpx HTTP/1.1 over TLS", 25,
     pyclient("httpx", host="lighttpd.lab")),
    ("python-aiohttp-h2o", "python-aiohttp", "h2o", "aiohttp, concurrent requests over TLS", 30,
     pyclient("aiohttp", host="h2o.lab")),
    ("python-urllib-apache", "python-urllib", "apache2", "urllib over HTTPS, a connection per request", 15,
     pyclient("urllib", host="apache.lab")),
    ("python-urllib-http-py", "python-urllib", "python-http", "urllib over cleartext HTTP", 15,
     pyclient("urllib", host="py.lab", scheme="http")),
    ("go-nethttp-h2-nginx", "go-net/http", "nginx", "Go's net/http, HTTP/2 over TLS", 30, goclient()),
    ("go-nethttp-apache", "go-net/http", "apache2", "Go's net/http to apache2", 25, goclient(host="apache.lab")),
    ("go-nethttp-http-node", "go-net/http", "node-http", "Go's net/http over cleartext HTTP", 25,
     goclient(host="node.lab", scheme="http")),
    ("node-fetch-nginx", "node-fetch", "nginx", "Node's fetch (undici) over HTTPS", 40, nodeclient("fetch")),
    ("node-https-lighttpd", "node-https", "lighttpd", "Node's https module", 40,
     nodeclient("https", host="lighttpd.lab")),
    ("java-httpclient-h2-nginx", "java-httpclient", "nginx", "Java's HttpClient, HTTP/2 over TLS", 40,
     javaclient("h2")),
    ("java-httpclient-h11-apache", "java-httpclient", "apache2", "Java's HttpClient, HTTP/1.1 over TLS", 30,
     javaclient("h11", host="apache.lab")),
    ("git-https-clone", "git", "nginx+git-http-backend", "git clone and fetch over HTTPS (smart HTTP)", 40,
     git("https")),
    ("git-http-clone", "git", "nginx+git-http-backend", "git clone and fetch over cleartext HTTP", 30, git("http")),
    ("apt-http-repo", "apt", "nginx", "apt-get update and download from a local repository (HTTP)", 25, apt("http")),
    ("apt-https-repo", "apt", "nginx", "apt-get update and download over HTTPS", 25, apt("https")),
    ("ffmpeg-hls", "ffmpeg", "nginx", "ffmpeg reading an HLS stream (playlist + segments) over HTTPS", 20,
     ffmpeg("/hls/index.m3u8")),
    ("ffmpeg-mp4-http", "ffmpeg", "nginx", "ffmpeg reading an MP4 over HTTP (range reads)", 20,
     ffmpeg("/media/clip.mp4", scheme="http")),
    ("openssl-s_client-tls12", "openssl", "nginx", "openssl s_client, TLS 1.2", 100, s_client("tls1_2")),
    ("openssl-s_client-tls13", "openssl", "nginx", "openssl s_client, TLS 1.3", 100, s_client("tls1_3")),
    ("ssh-exec", "openssh", "openssh", "SSH command execution", 100, ssh("exec")),
    ("sftp-get", "openssh", "openssh", "SFTP download of 2 MiB", 60, ssh("sftp")),
    ("scp-put", "openssh", "openssh", "scp upload of 2 MiB (client sends most)", 60, ssh("scp")),
    ("smtp-submission-curl", "curl", "postfix", "SMTP submission on 587 with STARTTLS", 80,
     curl_mail("smtp://mail.lab:587", "--ssl-reqd")),
    ("smtps-curl", "curl", "postfix", "SMTP over implicit TLS on 465", 60, curl_mail("smtps://mail.lab:465")),
    ("smtp-starttls-python", "python-smtplib", "postfix", "SMTP on 25 with STARTTLS (smtplib)", 15, pymail("smtplib")),
    ("imap-starttls-curl", "curl", "dovecot", "IMAP on 143 with STARTTLS", 80,
     curl_mail("imap://mail.lab/INBOX", "--ssl-reqd")),
    ("imaps-python", "python-imaplib", "dovecot", "IMAP over TLS on 993 (imaplib)", 15, pymail("imaplib")),
    ("psql-tls", "psql", "postgresql", "PostgreSQL with TLS (SSLRequest, then TLS)", 80, psql("verify-full")),
    ("psql-plain", "psql", "postgresql", "PostgreSQL without TLS", 60, psql("disable")),
    ("redis-plain", "redis-cli", "redis", "Redis RESP commands", 80, redis(False)),
    ("redis-tls", "redis-cli", "redis", "Redis over TLS", 60, redis(True)),
    ("websocket-wss", "python-websocket", "nginx", "WebSocket upgrade over TLS, echo of mixed messages", 60, wss),
    ("chromium-page-nginx", "chromium", "nginx",
     "page load: images, CSS, script, fetch/XHR, beacon, WebSocket, service worker, video/audio ranges", 25,
     chromium()),
    ("chromium-h11-apache", "chromium", "apache2", "page load over HTTP/1.1 (--disable-http2)", 15,
     chromium(host="apache.lab", extra=["--disable-http2"])),
    ("chromium-page-h2o", "chromium", "h2o", "page load over HTTP/2 to h2o", 15, chromium(host="h2o.lab")),
    ("chromium-video-lighttpd", "chromium", "lighttpd", "video element with range requests", 15,
     chromium(host="lighttpd.lab", path="/video.html", expect="video")),
    ("firefox-page-nginx", "firefox-esr", "nginx", "Firefox page load with all the subresources", 12, firefox()),
    ("firefox-page-apache", "firefox-esr", "apache2", "Firefox page load from apache2", 8, firefox(host="apache.lab")),
]

NEEDS = {"postfix": "postfix", "dovecot": "dovecot", "postgresql": "postgresql", "redis": "redis",
         "apache2": "apache2", "lighttpd": "lighttpd", "h2o": "h2o", "python-http": "python-http",
         "node-http": "node-http", "nginx": "nginx-web"}
CLIENT_BINS = {"firefox-esr": "firefox-esr", "chromium": CHROMIUM, "go-net/http": "go", "java-httpclient": "javac",
               "node-fetch": "node", "node-https": "node", "ffmpeg": "ffmpeg", "psql": "psql", "redis-cli": "redis-cli",
               "wget": "wget", "apt": "apt-get", "git": "git"}


def run(args):
    names = [s[0] for s in SCENARIOS]
    only = None
    if args.only:
        only = [x.strip() for x in args.only.split(",") if x.strip()]
        bad = [x for x in only if x not in names]
        if bad:
            raise SystemExit("corpus: unknown scenario(s) %s; known: %s" % (", ".join(bad), ", ".join(names)))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="corpus-%s-" % args.prefix)
    os.chmod(work, 0o755)
    lab = Lab(args.prefix, work, args.delay_ms)

    def on_signal(sig, _f):
        raise KeyboardInterrupt("signal %d" % sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    manifest = {"scenarios": [], "servers": {}, "quick": args.quick}
    t0 = time.monotonic()
    servers = None
    try:
        pki = make_pki(work)
        certs = make_certs(os.path.join(work, "pki"), pki["ca"], pki["ca_key"], HOSTS)
        token = secrets.token_hex(8)
        lab.up()
        name_lines = "".join("%s %s www.%s\n" % (ip, h, h) for h, ip in ALL_HOSTS.items())
        for ns in (lab.ns_c, lab.ns_p, lab.ns_s):
            d = os.path.join("/etc/netns", ns)
            with open(os.path.join(d, "hosts"), "w") as f:
                f.write("127.0.0.1 localhost\n" + name_lines)
            # No resolver reachable from the lab: names outside it fail at once, nothing leaves.
            with open(os.path.join(d, "resolv.conf"), "w") as f:
                f.write("nameserver 127.0.0.1\n")
        for ip in HOSTS.values():
            sh(["ip", "-n", lab.ns_s, "addr", "add", ip + "/24", "dev", lab.veth_s])
        site_extra = start_site(lab, {"ca": pki["ca"], "site_crt": pki["site_crt"], "site_key": pki["site_key"]},
                                token)
        web = make_web(work, token)
        servers = Servers(lab, pki, certs, web)
        up = servers.start_all()
        up["nginx-site"] = True
        manifest["servers"] = {"up": sorted(up), "failed": servers.failed}
        ctx = Ctx(lab, pki, token, site_extra, up)
        ctx.servers = servers
        if args.hold:
            log("holding %ds: ip netns exec %s ..." % (args.hold, lab.ns_c))
            time.sleep(args.hold)
        for name, client, server, what, reps, fn in SCENARIOS:
            if only and name not in only:
                continue
            n = args.reps if args.reps else (2 if args.quick else reps)
            if args.quick and client in ("chromium", "firefox-esr"):
                n = 1
            manifest["scenarios"].append(run_scenario(ctx, out, name, client, server, what, n, fn))
            write_manifest(out, manifest)
    finally:
        if servers is not None:
            servers.stop_extra()
        lab.down()
        shutil.rmtree(os.path.join(out, "logs"), ignore_errors=True)
        if os.path.isdir(lab.logs):
            shutil.copytree(lab.logs, os.path.join(out, "logs"))
        shutil.rmtree(work, ignore_errors=True)
    manifest["seconds"] = round(time.monotonic() - t0)
    if servers is not None:
        manifest["servers"]["restarts"] = servers.restarts
    sc = manifest["scenarios"]
    manifest["totals"] = {"scenarios": len(sc), "scenarios_ok": sum(1 for s in sc if s["status"] == "ok"),
                          "flows": sum(s["flows"] for s in sc),
                          "client_implementations": len({s["client"] for s in sc if s["flows"]}),
                          "server_implementations": len({s["server"] for s in sc if s["flows"]})}
    write_manifest(out, manifest)
    log("done in %ds: %s" % (manifest["seconds"], json.dumps(manifest["totals"])))
    return 0


def write_manifest(out, manifest):
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def run_scenario(ctx, out, name, client, server, what, n, fn):
    lab = ctx.lab
    entry = {"scenario": name, "client": client, "server": server, "exercises": what, "pcap": name + ".pcap",
             "sessions_attempted": 0, "sessions_ok": 0, "flows": 0, "status": "failed"}
    need = NEEDS.get(server)
    if need and ctx.up.get(need) and not ctx.servers.ensure(need):
        ctx.up[need] = False
    if need and not ctx.up.get(need):
        entry.update(status="skipped", note="server %s did not start" % need, pcap=None)
        log("%-28s skipped: server %s did not start" % (name, need))
        return entry
    binary = CLIENT_BINS.get(client)
    if binary and not shutil.which(binary):
        entry.update(status="skipped", note="client %s missing" % binary, pcap=None)
        log("%-28s skipped: %s missing" % (name, binary))
        return entry
    pcap = os.path.join(out, name + ".pcap")
    if os.path.exists(pcap):
        os.unlink(pcap)
    t = time.monotonic()
    errors = []
    cap = lab.capture_start(pcap, "tcpdump-" + name, immediate=True)
    try:
        for i in range(n):
            entry["sessions_attempted"] += 1
            try:
                ok, err = fn(ctx, i)
            except Exception as e:
                ok, err = False, "client error: %s" % e
            if ok:
                entry["sessions_ok"] += 1
            else:
                errors.append(err)
                if i == 1 and entry["sessions_ok"] == 0:
                    break
        time.sleep(0.5)
    finally:
        lab.capture_stop(cap)
    entry["flows"] = sum(1 for f in pcapstat.flows(pcap) if f.get("handshake"))
    if entry["sessions_ok"] == entry["sessions_attempted"] and entry["flows"]:
        entry["status"] = "ok"
    elif entry["sessions_ok"]:
        entry["status"] = "partial"
    if errors:
        entry["errors"] = sorted(set(e[:300] for e in errors))[:3]
    entry["seconds"] = round(time.monotonic() - t, 1)
    log("%-28s %-16s ok %d/%d flows=%d %.0fs %s" % (name, client, entry["sessions_ok"], entry["sessions_attempted"],
                                                    entry["flows"], entry["seconds"], entry["status"]))
    return entry


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--prefix", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--quick", action="store_true", help="2 sessions per scenario (browsers 1)")
    r.add_argument("--reps", type=int, default=0, help="sessions per scenario (overrides the table)")
    r.add_argument("--only", default=None)
    r.add_argument("--delay-ms", type=float, default=5.0)
    r.add_argument("--hold", type=int, default=0, help="seconds to wait with every server up, for debugging")
    c = sub.add_parser("cleanup")
    c.add_argument("--prefix", required=True)
    sub.add_parser("list")
    args = ap.parse_args()
    if args.cmd == "run":
        return run(args)
    if args.cmd == "cleanup":
        return cleanup(args)
    for name, client, server, what, reps, _ in SCENARIOS:
        print("%-28s %-18s %-24s %4d  %s" % (name, client, server, reps, what))
    return 0


if __name__ == "__main__":
    sys.exit(main())
