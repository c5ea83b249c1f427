#!/usr/bin/env bash
# The main job on a built-in default: build unmask, write the project's fixture capture, replay
# it in block mode, and show what was alerted and what would have been dropped.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cargo build --release --locked --quiet
bin=target/release/unmask
work=$(mktemp -d /tmp/unmask-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$bin" fixtures --out "$work/fixtures.pcap"
echo "== replaying $work/fixtures.pcap in block mode"
"$bin" replay --mode block --eve "$work/eve.json" "$work/fixtures.pcap"

echo
echo "== alerts"
python3 - "$work/eve.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event_type"] == "alert":
        a, u = r["alert"], r["unmask"]
        ev = ", ".join(f"{k}={v}" for k, v in u["evidence"].items())
        print(f'{r["src_ip"]}:{r["src_port"]} -> {r["dest_ip"]}:{r["dest_port"]} [{a["action"]}] '
              f'{u["finding"]} (confidence {u["confidence"]}, {u["mitre"]["technique_id"]} '
              f'{u["mitre"]["tunable"]}): {ev}')
    elif r["event_type"] == "drop":
        print(f'  first dropped packet: #{r["pcap_cnt"]} {r["src_ip"]}:{r["src_port"]} -> {r["dest_ip"]}:{r["dest_port"]}')
PY
echo
echo "== flows"
python3 - "$work/eve.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event_type"] == "flow":
        f = r["flow"]
        verdict = "BLOCKED" if f.get("action") == "drop" else ("alerted" if f["alerted"] else "passed")
        print(f'{r["src_ip"]}:{r["src_port"]} -> {r["dest_ip"]}:{r["dest_port"]} '
              f'{r.get("app_proto", "unknown"):8} {verdict:8} pkts {f["pkts_toserver"]}/{f["pkts_toclient"]}')
PY
