#!/usr/bin/env python3
"""Compares unmask with nDPI on the proxy lab's captures.

    compare.py DIR [--unmask BIN] [--ndpi BIN] [--json FILE]

For each capture in DIR/manifest.json:
  flows      TCP flows on the captured leg to the entry's proxy_addr whose three-way handshake
             completed (scripts/proxylab/pcapstat.py);
  unmask     of those, the flows with at least one EVE record event_type=alert from
             `unmask replay --eve FILE PCAP` (matched on src_ip/src_port/dest_ip/dest_port in
             either orientation);
  nDPI       of those, the flows ndpiReader flagged: see NDPI_RULE below.
Prints a table and writes DIR/compare.json (or --json FILE) with the same numbers.

The unmask binary: --unmask, else $CARGO_TARGET_DIR/release/unmask, else target/release/unmask
of this repository; built with `cargo build --release --bin unmask` only when missing.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import pcapstat  # noqa: E402

# nDPI 4.2 (Debian 12's libndpi-bin) has no `--cfg` and no dpi.heuristics: its TLS-in-TLS,
# TLS-over-WebSocket and "Fully Encrypted" heuristics came in later releases. What it has is
# its protocol dissectors, its guessing, and its flow risks, all on by default; so it runs
# with its defaults and this is what counts as flagged:
NDPI_PROXY_PROTOCOLS = {"Tor", "SOCKS", "HTTP_Proxy", "OpenVPN", "CiscoVPN", "WireGuard", "IPsec", "PPTP",
                        "HotspotShield", "TINC", "HTTP_Connect"}
NDPI_RULE = ("a flow counts as flagged by nDPI when ndpiReader reports at least one flow risk "
             "('[Risk: ...]', any risk), or classifies it (master or application protocol) as one of "
             + ", ".join(sorted(NDPI_PROXY_PROTOCOLS)) + ", or puts it in the VPN category. "
             "Unknown (proto 0) is not a flag; it is counted separately as ndpi_unknown.")

FLOW_RE = re.compile(r"^\s*\d+\s+TCP\s+(\S+)\s+<->\s+(\S+)\s+\[proto:\s*([^\]]+)\]")
CAT_RE = re.compile(r"\[cat:\s*([^/\]]+)")
RISK_RE = re.compile(r"\[Risk:\s*([^\]]*)\]")


def find_unmask(arg):
    if arg:
        if not os.access(arg, os.X_OK):
            sys.exit("compare: %s is not an executable" % arg)
        return arg
    tdir = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    path = os.path.join(tdir, "release", "unmask")
    if not os.access(path, os.X_OK):
        print("compare: %s missing; cargo build --release --bin unmask" % path, file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "--bin", "unmask"], cwd=REPO, check=True)
    return path


def ndpi_version(ndpi):
    r = subprocess.run([ndpi, "-h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = re.search(r"nDPI\s+(\d+\.\d+(?:\.\d+)?)", r.stdout)
    return m.group(1) if m else "unknown"


def ndpi_flows(ndpi, pcap):
    """{(a, b): {"proto", "cat", "risks"}} for every TCP flow ndpiReader lists, keyed both ways."""
    argv = [ndpi, "-q", "-v", "2", "-i", pcap]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    out = {}
    for line in r.stdout.splitlines():
        m = FLOW_RE.match(line)
        if not m:
            continue
        a, b, proto = m.group(1), m.group(2), m.group(3).strip()
        cat = CAT_RE.search(line)
        risks = []
        rm = RISK_RE.search(line)
        if rm:
            risks = [x.strip() for x in rm.group(1).split("**") if x.strip()]
        info = {"proto": proto, "cat": cat.group(1).strip() if cat else None, "risks": risks}
        out[(a, b)] = info
        out[(b, a)] = info
    return out


def ndpi_flagged(info):
    names = info["proto"].split("/", 1)[1] if "/" in info["proto"] else info["proto"]
    parts = set(names.split("."))
    return bool(info["risks"]) or bool(parts & NDPI_PROXY_PROTOCOLS) or info["cat"] == "VPN"


def ndpi_unknown(info):
    return info["proto"].startswith("0/") or info["proto"].startswith("0.0/")


def replay_records(unmask, pcap, args=()):
    """The EVE records of `unmask replay [args] --eve FILE PCAP`, parsed, in file order."""
    with tempfile.NamedTemporaryFile(prefix="proxylab-eve-", suffix=".json", delete=False) as tf:
        eve = tf.name
    try:
        r = subprocess.run([unmask, "replay", "--no-progress", "--eve", eve] + list(args) + [pcap],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("unmask replay %s failed: %s" % (pcap, r.stderr.strip()[-300:]))
        out = []
        with open(eve) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out
    finally:
        os.unlink(eve)


def endpoints(rec):
    """(src, dest) of an EVE record as "ip:port" strings."""
    return "%s:%s" % (rec.get("src_ip"), rec.get("src_port")), "%s:%s" % (rec.get("dest_ip"), rec.get("dest_port"))


def unmask_alerts(unmask, pcap):
    """{(a, b): [findings]} keyed both ways, from the EVE alerts of one replay."""
    out = collections.defaultdict(list)
    for rec in replay_records(unmask, pcap):
        if rec.get("event_type") != "alert":
            continue
        a, b = endpoints(rec)
        what = (rec.get("unmask") or {}).get("finding") or (rec.get("alert") or {}).get("signature")
        out[(a, b)].append(what)
        out[(b, a)].append(what)
    return out


def frac(k, n):
    return "%d/%d" % (k, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--unmask", default=None)
    ap.add_argument("--ndpi", default="ndpiReader")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    with open(os.path.join(args.dir, "manifest.json")) as f:
        manifest = json.load(f)
    unmask = find_unmask(args.unmask)
    ndpi = args.ndpi
    nver = ndpi_version(ndpi)

    rows = []
    for m in manifest:
        row = {"scenario": m["scenario"], "class": m["class"], "inner_tls": m["inner_tls"],
               "inner_client": m.get("inner_client", "curl"), "pcap": m.get("pcap"),
               "proxy_addr": m.get("proxy_addr"), "capture_status": m.get("status"), "flows": 0,
               "unmask_alerted": 0, "ndpi_flagged": 0, "ndpi_unknown": 0, "unmask_findings": {},
               "ndpi_risks": {}, "ndpi_protocols": {}}
        rows.append(row)
        if not m.get("pcap") or not m.get("proxy_addr"):
            continue
        pcap = os.path.join(args.dir, m["pcap"])
        if not os.path.exists(pcap):
            row["capture_status"] = "missing pcap"
            continue
        flows = [fl for fl in pcapstat.flows(pcap) if fl["server"] == m["proxy_addr"] and fl["handshake"]]
        row["flows"] = len(flows)
        alerts = unmask_alerts(unmask, pcap)
        nd = ndpi_flows(ndpi, pcap)
        findings, risks, protos = collections.Counter(), collections.Counter(), collections.Counter()
        for fl in flows:
            key = (fl["client"], fl["server"])
            if key in alerts:
                row["unmask_alerted"] += 1
                findings.update(set(alerts[key]))
            info = nd.get(key)
            if info is None:
                protos["(not listed)"] += 1
                continue
            protos[info["proto"]] += 1
            if ndpi_flagged(info):
                row["ndpi_flagged"] += 1
            if ndpi_unknown(info):
                row["ndpi_unknown"] += 1
            risks.update(info["risks"])
        row["unmask_findings"] = dict(findings)
        row["ndpi_risks"] = dict(risks)
        row["ndpi_protocols"] = dict(protos)

    # Totals per class: for proxies the share caught, for benign the share falsely flagged; and
    # per class and inner client when the captures have more than one client.
    totals, by_client = {}, {}
    for r in rows:
        for d, key in ((totals, r["class"]), (by_client, "%s/%s" % (r["class"], r["inner_client"]))):
            t = d.setdefault(key, {"flows": 0, "unmask_alerted": 0, "ndpi_flagged": 0, "ndpi_unknown": 0})
            for k in t:
                t[k] += r[k]
    clients = sorted(set(r["inner_client"] for r in rows))

    print("nDPI: ndpiReader %s, run as `%s -q -v 2 -i PCAP` (defaults: no heuristics option exists in 4.2)"
          % (nver, ndpi))
    print("nDPI flagged = " + NDPI_RULE)
    print("unmask: %s replay --no-progress --eve FILE PCAP (built-in default config)" % unmask)
    print()
    hdr = "%-22s %-15s %-8s %-5s %6s %8s %8s %8s  %s" % ("scenario", "class", "client", "tls", "flows", "unmask",
                                                         "nDPI", "nDPI-unk", "nDPI protocols / risks; unmask findings")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        n = r["flows"]
        detail = ", ".join("%s x%d" % kv for kv in sorted(r["ndpi_protocols"].items()))
        if r["ndpi_risks"]:
            detail += "; risks: " + ", ".join("%s x%d" % kv for kv in sorted(r["ndpi_risks"].items()))
        if r["unmask_findings"]:
            detail += "; unmask: " + ", ".join("%s x%d" % kv for kv in sorted(r["unmask_findings"].items()))
        if r["capture_status"] != "ok":
            detail = "[capture %s] " % r["capture_status"] + detail
        print("%-22s %-15s %-8s %-5s %6d %8s %8s %8s  %s" % (
            r["scenario"], r["class"], r["inner_client"], r["inner_tls"] or "-", n, frac(r["unmask_alerted"], n),
            frac(r["ndpi_flagged"], n), frac(r["ndpi_unknown"], n), detail))
    print("-" * len(hdr))
    tot = [(k, "", t) for k, t in sorted(totals.items())]
    if len(clients) > 1:
        tot += [(k.split("/")[0], k.split("/")[1], t) for k, t in sorted(by_client.items())]
    for klass, client, t in tot:
        print("%-22s %-15s %-8s %-5s %6d %8s %8s %8s" % (
            "total", klass, client, "", t["flows"], frac(t["unmask_alerted"], t["flows"]),
            frac(t["ndpi_flagged"], t["flows"]), frac(t["ndpi_unknown"], t["flows"])))

    result = {"ndpi": {"version": nver, "command": "%s -q -v 2 -i PCAP" % ndpi, "flagged_rule": NDPI_RULE},
              "unmask": {"binary": unmask, "command": "unmask replay --no-progress --eve FILE PCAP",
                         "alerted_rule": "a flow with at least one EVE event_type=alert record on its 4-tuple"},
              "flows_rule": "TCP flows to proxy_addr with a completed three-way handshake in the pcap",
              "rows": rows, "totals": totals, "totals_by_client": by_client}
    out = args.json or os.path.join(args.dir, "compare.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print("\nwrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
