#!/usr/bin/env python3
"""Per scenario of a relaylab capture directory: flows flagged / flows for unmask's findings
40 (tls13_record_shape), 41 (service_profile_mismatch) and 42 (relayed), beside ndpiReader on the
same pcap.

`relayed` is recorded below its alert floor by default: a flow counts as flagged by it when its
flow record lists it in `unmask.recorded_findings` or an alert names it. The `42 alerts` column
counts `relayed` alerts under the built-in floor, i.e. alerts from it alone (goal: 0 on the benign
controls). Its evidence (extra leg, app and transport RTT medians) comes from a second replay
with its floor at 0.

Service profiles are learned first from the genuine flows (direct-h1, direct-h2) into a fresh
store in `mode = "learn"`; each scenario is then replayed against a copy of that store in
alert mode. A flow is a TCP flow unmask wrote a `flow` record for with server port 443.
nDPI counts a flow as flagged when it lists any flow risk or does not classify it as TLS.

usage: relaylab_compare.py DIR [--unmask BIN] [--ndpi ndpiReader] [--json FILE]
"""
import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

LEARN_FROM = ("direct-h1", "direct-h2")
FINDINGS = ("tls13_record_shape", "service_profile_mismatch", "relayed")
RELAYED = "relayed"
FLOW_RE = re.compile(r"^\s*\d+\s+TCP\s+(\S+)\s+<->\s+(\S+)\s+\[proto:\s*([^\]]+)\]")
RISK_RE = re.compile(r"\[Risk:\s*([^\]]*)\]")


def replay(unmask, pcap, state, config):
    with tempfile.TemporaryDirectory() as t:
        eve = os.path.join(t, "eve.json")
        argv = [unmask, "replay", "--no-progress", "--eve", eve, "--state", state]
        if config:
            argv += ["-c", config]
        r = subprocess.run(argv + [pcap], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"relaylab_compare: {' '.join(argv)} {pcap} failed: {r.stderr.strip()}")
        with open(eve) as f:
            return [json.loads(line) for line in f if line.strip()]


def tally(records):
    flows = {r["flow_id"] for r in records
             if r.get("event_type") == "flow" and 443 in (r.get("dest_port"), r.get("src_port"))}
    flagged = collections.defaultdict(set)
    evidence = {}
    for r in records:
        if r.get("event_type") != "alert" or r.get("flow_id") not in flows:
            continue
        name = (r.get("unmask") or {}).get("finding")
        if name in FINDINGS:
            flagged[name].add(r["flow_id"])
            evidence.setdefault(name, (r.get("unmask") or {}).get("evidence"))
    relayed_alerts = len(flagged[RELAYED])
    for r in records:
        if r.get("event_type") == "flow" and r["flow_id"] in flows and \
                RELAYED in ((r.get("unmask") or {}).get("recorded_findings") or []):
            flagged[RELAYED].add(r["flow_id"])
    shapes = collections.Counter()
    for r in records:
        h = (r.get("unmask") or {}).get("handshake_records") if r.get("event_type") == "tls" else None
        if h:
            shapes[f"server={h['server']} client_finished={h['client_finished']} post={h['post_handshake']}"] += 1
    return flows, flagged, evidence, shapes, relayed_alerts


def relayed_evidence(records):
    """Medians of the `relayed` alerts' evidence (replayed with its floor at 0)."""
    ev = [(r.get("unmask") or {}).get("evidence") or {} for r in records
          if r.get("event_type") == "alert" and (r.get("unmask") or {}).get("finding") == RELAYED]

    def med(key):
        vals = [float(e[key]) for e in ev if key in e]
        return round(statistics.median(vals), 1) if vals else None
    return {k: med(k) for k in ("extra_leg_ms", "app_rtt_ms", "transport_rtt_server_ms")}


def ndpi(ndpi_bin, pcap):
    r = subprocess.run([ndpi_bin, "-q", "-v", "2", "-i", pcap], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, errors="replace")
    flows, flagged, labels = 0, 0, collections.Counter()
    for line in r.stdout.splitlines():
        m = FLOW_RE.match(line)
        if not m or not (m.group(1).endswith(":443") or m.group(2).endswith(":443")):
            continue
        flows += 1
        proto = m.group(3).strip()
        risk = RISK_RE.search(line)
        label = proto + (f" risk: {risk.group(1).strip()}" if risk else "")
        labels[label] += 1
        if risk or "TLS" not in proto:
            flagged += 1
    return flows, flagged, labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--unmask", default=None)
    ap.add_argument("--ndpi", default="ndpiReader")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    unmask = a.unmask or os.path.join(repo, "target", "release", "unmask")
    if not os.access(unmask, os.X_OK):
        unmask = os.path.join(repo, "target", "debug", "unmask")
    names = [l.split()[0] for l in open(os.path.join(a.dir, "manifest.txt")) if l.strip()]
    work = tempfile.mkdtemp(prefix="relaylab-cmp.")
    try:
        learn_cfg = os.path.join(work, "learn.toml")
        with open(learn_cfg, "w") as f:
            f.write('[baseline]\nmode = "learn"\n')
        floor0_cfg = os.path.join(work, "relayed0.toml")
        with open(floor0_cfg, "w") as f:
            f.write("[detect.alert_min_confidence]\nrelayed = 0\n")
        learned = os.path.join(work, "learned")
        for n in LEARN_FROM:
            if n in names:
                replay(unmask, os.path.join(a.dir, n + ".pcap"), learned, learn_cfg)
        rows = []
        for n in names:
            state = os.path.join(work, "state-" + n)
            if os.path.isdir(learned):
                shutil.copytree(learned, state)
            recs = replay(unmask, os.path.join(a.dir, n + ".pcap"), state, None)
            flows, flagged, evidence, shapes, relayed_alerts = tally(recs)
            leg = relayed_evidence(replay(unmask, os.path.join(a.dir, n + ".pcap"),
                                          os.path.join(work, "state0-" + n), floor0_cfg))
            nf, nflag, labels = ndpi(a.ndpi, os.path.join(a.dir, n + ".pcap"))
            rows.append({
                "scenario": n, "flows": len(flows),
                **{k: len(flagged.get(k, ())) for k in FINDINGS},
                "relayed_alerts": relayed_alerts, "relayed_evidence": leg,
                "evidence": evidence, "shapes": dict(shapes),
                "ndpi_flows": nf, "ndpi_flagged": nflag, "ndpi_labels": dict(labels),
            })
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'scenario':<18} {'flows':>5} {'40 shape':>9} {'41 profile':>10} {'42 relayed':>10} {'42 alerts':>9}"
          f" {'leg/app/srv ms':>16}   nDPI flagged/flows  labels")
    for r in rows:
        f = r["flows"]
        e = r["relayed_evidence"]
        legs = "/".join("-" if e[k] is None else f"{e[k]:.0f}"
                        for k in ("extra_leg_ms", "app_rtt_ms", "transport_rtt_server_ms"))
        print(f"{r['scenario']:<18} {f:>5} {r[FINDINGS[0]]:>5}/{f:<3} {r[FINDINGS[1]]:>6}/{f:<3} "
              f"{r[FINDINGS[2]]:>6}/{f:<3} {r['relayed_alerts']:>9} {legs:>16}   "
              f"{r['ndpi_flagged']:>3}/{r['ndpi_flows']:<3}  {'; '.join(f'{k} x{v}' for k, v in r['ndpi_labels'].items())}")
    for r in rows:
        print(f"\n{r['scenario']}: handshake shapes {r['shapes']}")
        for k, v in r["evidence"].items():
            print(f"  {k}: {v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
