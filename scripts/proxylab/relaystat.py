#!/usr/bin/env python3
"""The relay check (unmask's `relayed`) per proxy-lab capture: how many TCP flows to the
capture's proxy_addr it flagged, and whether it alerted on its own.

    relaystat.py DIR [--unmask BIN]

Replays every capture of DIR/manifest.json twice: with the built-in config (where `relayed` is
recorded below its alert floor: the flow record's unmask.recorded_findings; any `relayed` alert
there is counted as an alert from it alone), and with its alert floor at 0, for the evidence
(median extra leg and server-side transport RTT of the flagged flows). Writes
DIR/relaystat.json and prints a table.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def to_proxy(rec, proxy_addr):
    a, b = compare.endpoints(rec)
    return proxy_addr in (a, b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--unmask", default=None)
    args = ap.parse_args()
    unmask = compare.find_unmask(args.unmask)
    with open(os.path.join(args.dir, "manifest.json")) as f:
        manifest = json.load(f)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as tf:
        tf.write("[detect.alert_min_confidence]\nrelayed = 0\n")
        alerting = tf.name
    rows = []
    try:
        for m in manifest:
            if not m.get("pcap") or not m.get("proxy_addr"):
                continue
            pcap = os.path.join(args.dir, m["pcap"])
            recs = compare.replay_records(unmask, pcap)
            flows = [r for r in recs if r.get("event_type") == "flow" and to_proxy(r, m["proxy_addr"])
                     and (r.get("flow") or {}).get("pkts_toclient", 0) > 0]
            flagged = [r for r in flows if "relayed" in ((r.get("unmask") or {}).get("recorded_findings") or [])]
            alone = [r for r in recs if r.get("event_type") == "alert"
                     and (r.get("unmask") or {}).get("finding") == "relayed"]
            ev = [r["unmask"]["evidence"] for r in compare.replay_records(unmask, pcap, ["-c", alerting])
                  if r.get("event_type") == "alert" and (r.get("unmask") or {}).get("finding") == "relayed"
                  and to_proxy(r, m["proxy_addr"])]

            def med(key):
                vals = [float(e[key]) for e in ev if key in e]
                return round(statistics.median(vals), 1) if vals else None

            rows.append({"scenario": m["scenario"], "class": m["class"], "inner_tls": m.get("inner_tls"),
                         "pcap": m["pcap"], "flows": len(flows), "flagged": len(flagged),
                         "relayed_alerts_default": len(alone), "extra_leg_ms_median": med("extra_leg_ms"),
                         "server_rtt_ms_median": med("transport_rtt_server_ms"),
                         "app_rtt_ms_median": med("app_rtt_ms")})
    finally:
        os.unlink(alerting)
    with open(os.path.join(args.dir, "relaystat.json"), "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    print("%-22s %-16s %-4s %9s %7s %9s %9s %8s" % ("scenario", "class", "tls", "flagged", "alerts", "leg_ms",
                                                    "srv_ms", "app_ms"))
    for r in rows:
        print("%-22s %-16s %-4s %9s %7d %9s %9s %8s" % (
            r["scenario"], r["class"], r["inner_tls"] or "-", "%d/%d" % (r["flagged"], r["flows"]),
            r["relayed_alerts_default"], r["extra_leg_ms_median"], r["server_rtt_ms_median"], r["app_rtt_ms_median"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
