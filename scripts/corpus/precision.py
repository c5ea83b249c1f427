#!/usr/bin/env python3
"""Precision report: what unmask raises on benign traffic, next to what it raises on the
impersonation captures, per finding kind, per 10,000 flows.

    precision.py [--corpus DIR]... [--shared DIR] [--lab DIR]... [--unmask BIN] [--config FILE]
                 [--json FILE] [--max-benign-alerts N]

--corpus  a benign corpus (scripts/corpus.sh run --out DIR): every pcap of its manifest.
--shared  ../shared/pcaps: the nDPI captures whose MANIFEST category is benign (tls-benign,
          benign-cleartext, benign-mixed-tls, benign-tls-mail).
--lab     a proxy lab output (scripts/proxylab.sh run --out DIR): its proxy classes are the
          impersonation side; its benign class counts as benign.

Every capture is replayed with `unmask replay --mode block` (so `blocked` is what block mode
would drop) and the EVE records are counted: flows are `flow` records, an alert is an `alert`
record (unmask raises one per finding kind per flow), a block is an alert whose action is
`blocked`. Recall on the lab: flows to the proxy with a completed handshake that got at least
one alert (scripts/proxylab/compare.py's rule).

Exit status 1 when --max-benign-alerts is given and the benign side has more alerts, or when
any benign flow was blocked.
"""
import argparse
import collections
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "proxylab"))
import pcapstat  # noqa: E402
from compare import endpoints, replay_records  # noqa: E402

BENIGN_CATEGORIES = {"tls-benign", "benign-cleartext", "benign-mixed-tls", "benign-tls-mail"}


def find_unmask(arg):
    if arg:
        return arg
    tdir = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    for profile in ("release", "debug"):
        path = os.path.join(tdir, profile, "unmask")
        if os.access(path, os.X_OK):
            return path
    sys.exit("precision: no unmask binary; cargo build --release --bin unmask")


def replay(unmask, config, pcap):
    """(flows, alerts): flows = [(a, b)], alerts = [(a, b, finding, confidence, blocked, evidence)]."""
    args = ["--mode", "block"] + (["--config", config] if config else [])
    flows, alerts = [], []
    for rec in replay_records(unmask, pcap, args):
        a, b = endpoints(rec)
        if rec.get("event_type") == "flow" and rec.get("proto") == "TCP":
            flows.append((a, b))
        elif rec.get("event_type") == "alert":
            u = rec.get("unmask") or {}
            alerts.append((a, b, u.get("finding"), u.get("confidence"),
                           (rec.get("alert") or {}).get("action") == "blocked", u.get("evidence")))
    return flows, alerts


def benign_inputs(args):
    """(source, scenario, pcap) for every benign capture."""
    out = []
    for d in args.corpus:
        with open(os.path.join(d, "manifest.json")) as f:
            m = json.load(f)
        for s in m["scenarios"]:
            if s.get("pcap") and os.path.exists(os.path.join(d, s["pcap"])):
                out.append(("corpus", s["scenario"], os.path.join(d, s["pcap"])))
    if args.shared:
        man = os.path.join(args.shared, "ndpi", "MANIFEST.md")
        if os.path.exists(man):
            with open(man) as f:
                for line in f:
                    cells = [c.strip() for c in line.split("|")]
                    if len(cells) > 4 and cells[1].startswith("`") and cells[4] in BENIGN_CATEGORIES:
                        name = cells[1].strip("`")
                        out.append(("shared", name, os.path.join(args.shared, "ndpi", name)))
    for d in args.lab:
        with open(os.path.join(d, "manifest.json")) as f:
            for m in json.load(f):
                if m.get("class") == "benign" and m.get("pcap"):
                    out.append(("lab", "%s/%s/%s" % (m["scenario"], m.get("inner_client", "curl"), m["inner_tls"]),
                                os.path.join(d, m["pcap"])))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", default=[])
    ap.add_argument("--shared", default=None)
    ap.add_argument("--lab", action="append", default=[])
    ap.add_argument("--unmask", default=None)
    ap.add_argument("--config", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--max-benign-alerts", type=int, default=None)
    args = ap.parse_args()
    unmask = find_unmask(args.unmask)

    benign_flows = 0
    b_alerts, b_blocks = collections.Counter(), collections.Counter()
    explained = []
    per_source = collections.Counter()
    for source, scenario, pcap in benign_inputs(args):
        flows, alerts = replay(unmask, args.config, pcap)
        benign_flows += len(flows)
        per_source[source] += len(flows)
        for a, b, kind, conf, blocked, evidence in alerts:
            b_alerts[kind] += 1
            b_blocks[kind] += blocked
            explained.append({"source": source, "scenario": scenario, "flow": "%s -> %s" % (a, b), "finding": kind,
                              "confidence": conf, "blocked": blocked, "evidence": evidence})

    imp_flows, imp_flagged = 0, 0
    i_alerts, i_blocks = collections.Counter(), collections.Counter()
    recall = collections.OrderedDict()
    for d in args.lab:
        with open(os.path.join(d, "manifest.json")) as f:
            manifest = json.load(f)
        for m in manifest:
            if m.get("class") == "benign" or not m.get("pcap") or not m.get("proxy_addr"):
                continue
            pcap = os.path.join(d, m["pcap"])
            if not os.path.exists(pcap):
                continue
            want = {(fl["client"], fl["server"]) for fl in pcapstat.flows(pcap)
                    if fl["server"] == m["proxy_addr"] and fl["handshake"]}
            _flows, alerts = replay(unmask, args.config, pcap)
            hit = set()
            for a, b, kind, conf, blocked, _e in alerts:
                key = (a, b) if (a, b) in want else (b, a)
                if key in want:
                    hit.add(key)
                    i_alerts[kind] += 1
                    i_blocks[kind] += blocked
            imp_flows += len(want)
            imp_flagged += len(hit)
            k = "%s/%s" % (m["scenario"], m.get("inner_client", "curl"))
            r = recall.setdefault(k, {"class": m["class"], "flows": 0, "flagged": 0})
            r["flows"] += len(want)
            r["flagged"] += len(hit)

    def per10k(n, flows):
        return 10000.0 * n / flows if flows else 0.0

    kinds = sorted(set(b_alerts) | set(i_alerts))
    print("unmask: %s replay --mode block%s" % (unmask, " --config " + args.config if args.config else ""))
    print("benign flows: %d (%s)" % (benign_flows, ", ".join("%s %d" % kv for kv in sorted(per_source.items()))))
    if args.lab:
        print("impersonation flows (proxy lab, to the proxy): %d, flagged %d (%.1f%%)"
              % (imp_flows, imp_flagged, 100.0 * imp_flagged / imp_flows if imp_flows else 0))
    print()
    hdr = "%-32s %14s %14s %16s %16s" % ("finding", "benign alerts", "benign blocks", "impers. alerts",
                                           "impers. blocks")
    print(hdr + "\n" + " " * 33 + "%14s %14s %16s %16s" % ("(per 10k)", "(per 10k)", "(per 10k)", "(per 10k)"))
    print("-" * len(hdr))
    for k in kinds:
        print("%-32s %6d %7.2f %6d %7.2f %7d %8.1f %7d %8.1f" % (
            k, b_alerts[k], per10k(b_alerts[k], benign_flows), b_blocks[k], per10k(b_blocks[k], benign_flows),
            i_alerts[k], per10k(i_alerts[k], imp_flows), i_blocks[k], per10k(i_blocks[k], imp_flows)))
    tb, tbb = sum(b_alerts.values()), sum(b_blocks.values())
    print("-" * len(hdr))
    print("%-32s %6d %7.2f %6d %7.2f %7d %8.1f %7d %8.1f" % (
        "all", tb, per10k(tb, benign_flows), tbb, per10k(tbb, benign_flows), sum(i_alerts.values()),
        per10k(sum(i_alerts.values()), imp_flows), sum(i_blocks.values()), per10k(sum(i_blocks.values()), imp_flows)))
    if recall:
        print("\nrecall per impersonation scenario (flows with an alert / flows to the proxy):")
        for k, r in recall.items():
            print("  %-36s %-16s %4d/%-4d" % (k, r["class"], r["flagged"], r["flows"]))
    if explained:
        print("\nbenign alerts, each:")
        for e in explained:
            print("  %-7s %-30s %-44s %s %s%s" % (e["source"], e["scenario"], e["flow"], e["finding"], e["confidence"],
                                                 " BLOCKED" if e["blocked"] else ""))
            print("          %s" % json.dumps(e["evidence"])[:300])
    result = {"unmask": unmask, "config": args.config, "benign_flows": benign_flows,
              "benign_flows_by_source": dict(per_source), "impersonation_flows": imp_flows,
              "impersonation_flagged": imp_flagged,
              "kinds": {k: {"benign_alerts": b_alerts[k], "benign_blocks": b_blocks[k],
                            "benign_alerts_per_10k": round(per10k(b_alerts[k], benign_flows), 3),
                            "benign_blocks_per_10k": round(per10k(b_blocks[k], benign_flows), 3),
                            "impersonation_alerts": i_alerts[k], "impersonation_blocks": i_blocks[k]}
                        for k in kinds},
              "recall": recall, "benign_alerts": explained}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    if tbb:
        print("\nprecision: %d benign flow(s) blocked" % tbb, file=sys.stderr)
        return 1
    if args.max_benign_alerts is not None and tb > args.max_benign_alerts:
        print("\nprecision: %d benign alerts, more than %d" % (tb, args.max_benign_alerts), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
