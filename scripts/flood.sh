#!/usr/bin/env bash
# Flood benchmark: a capture of PACKETS 64-byte frames over random 5-tuples (SYN flood, RSTs,
# FINs and bare ACKs without handshakes, then completed handshakes that stay open) with the
# project's benign and flagged fixture flows spread through it, run through unmask with a flow
# table far smaller than the flood. Checks and prints:
#   - peak RSS (GNU time's maximum resident set size) against the bound the config promises:
#     the measured fixed overhead of the same command on a tiny config and tiny input, plus
#     every structure the flood config sizes counted full (`unmask fixtures --config` prints
#     it: flow table, stream windows and state, EVE queue), plus, live, the UMEM;
#   - evictions and refusals (packets that found the table full of established flows);
#   - findings on the fixture flows against their expectations and against a run over the
#     same fixture frames, at the same times, without the flood.
#
#   scripts/flood.sh [--live] [--inline] [--no-replay] [PACKETS]     (PACKETS default 10000000)
#
#   --live       also tcpreplay both captures through the namespace lab into `unmask run`
#                (tap mode: the frames arrive on a mirror port); --inline: inline instead
#   --no-replay  skip the offline replay
# Env: CAPACITY (flow.capacity, default 65536), MEMCAP (stream.memcap, default 32 MiB),
#      QUEUE (output.queue_capacity, default 65536), WORK (default /tmp/unmask-flood; the
#      captures are written there, never in the repository), LAB_PREFIX (default ufl, or
#      ufl<N> while another live flood runs), KEEP=1 keeps WORK afterwards.
# Exits non-zero when a peak exceeds its bound, a flagged flow goes uncaught or a benign one
# is flagged.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKETS=10000000
LIVE=""
REPLAY=1
usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d' >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--live) LIVE="${LIVE:-tap}" ;;
	--inline) LIVE=inline ;;
	--no-replay) REPLAY="" ;;
	-h | --help) usage ;;
	*[!0-9]* | "") echo "flood.sh: unknown argument '$1'" >&2; usage ;;
	*) PACKETS="$1" ;;
	esac
	shift
done
CAPACITY="${CAPACITY:-65536}"
MEMCAP="${MEMCAP:-33554432}"
QUEUE="${QUEUE:-65536}"
WORK="${WORK:-/tmp/unmask-flood}"

# shellcheck source=scripts/lib/lab.sh
. scripts/lib/lab.sh
unmask_pid=""
lab_cleanup_on_exit
lab_kill_at_exit unmask_pid
if [ -n "$LIVE" ]; then
	lab_claim ufl
	P="$LAB_P"
fi

bash scripts/deps.sh
cargo build --release --locked --quiet --bin unmask
bin=$(readlink -f "${CARGO_TARGET_DIR:-$PWD/target}")/release/unmask
mkdir -p "$WORK"
# shellcheck disable=SC2016 # expanded at exit
lab_at_exit '[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"'

cat >"$WORK/flood.toml" <<TOML
[flow]
capacity = $CAPACITY
[stream]
memcap = $MEMCAP
[output]
queue_capacity = $QUEUE
TOML
# The fixed overhead is measured with every sized structure as small as the config allows.
cat >"$WORK/tiny.toml" <<TOML
[flow]
capacity = 64
[stream]
memcap = 131072
[output]
queue_capacity = 64
TOML

echo "flood.sh: writing $PACKETS flood frames with the fixture flows to $WORK" >&2
"$bin" fixtures --flood "$PACKETS" --out "$WORK/flood.pcap" --config "$WORK/flood.toml" \
	>"$WORK/bound.txt" 2>"$WORK/fixtures.log"
"$bin" fixtures --flood "$PACKETS" --embedded-only --out "$WORK/alone.pcap" 2>>"$WORK/fixtures.log"
cat "$WORK/fixtures.log" >&2

# replay NAME CONFIG CAPTURE: unmask replay under GNU time.
replay() {
	rm -f "$WORK/$1.eve.json"
	/usr/bin/time -v -o "$WORK/$1.time" "$bin" replay --no-progress --config "$2" \
		--eve "$WORK/$1.eve.json" "$3" 2>"$WORK/$1.log" || {
		cat "$WORK/$1.log" >&2
		exit 1
	}
}

if [ -n "$REPLAY" ]; then
	echo "flood.sh: replay (baseline, fixture flows alone, flood)" >&2
	replay replay-baseline "$WORK/tiny.toml" "$WORK/alone.pcap"
	replay replay-alone "$WORK/flood.toml" "$WORK/alone.pcap"
	replay replay-flood "$WORK/flood.toml" "$WORK/flood.pcap"
fi

# live NAME CONFIG [CAPTURE]: unmask run in the lab under GNU time; tcpreplay CAPTURE into it
# (nothing when absent: the idle baseline).
live() {
	rm -f "$WORK/$1.eve.json" "$WORK/$1.report.json"
	ip netns exec "$P-appliance" /usr/bin/time -v -o "$WORK/$1.time" "$bin" run --config "$2" \
		--eve "$WORK/$1.eve.json" --report "$WORK/$1.report.json" 2>"$WORK/$1.log" &
	local time_pid=$!
	lab_wait_ready "$time_pid" 100 "$WORK/$1.log" || true
	grep -q READY "$WORK/$1.log" || { cat "$WORK/$1.log" >&2; exit 1; }
	unmask_pid=$(pgrep -P "$time_pid" -x unmask)
	if [ -n "${3:-}" ]; then
		# --no-flow-stats: tcpreplay's own flow table makes it crawl (~20 kpps) over 10M flows.
		ip netns exec "$P-client" tcpreplay --topspeed --no-flow-stats --intf1="${P}c" "$3" \
			>"$WORK/$1.tcpreplay" 2>&1
	else
		sleep 2
	fi
	sleep 1
	kill -TERM "$unmask_pid"
	wait "$time_pid" || { cat "$WORK/$1.log" >&2; exit 1; }
	unmask_pid=""
}

if [ -n "$LIVE" ]; then
	echo "flood.sh: live through the lab ($LIVE mode; baseline, fixture flows alone, flood)" >&2
	lab_up >/dev/null
	for c in flood tiny; do
		cat "$WORK/$c.toml" - >"$WORK/$c-live.toml" <<TOML
[live]
topology = "$LIVE"
ports = $(lab_ports "$LIVE")
workers = 1
control_socket = "$WORK/control.sock"
TOML
	done
	live live-baseline "$WORK/tiny-live.toml"
	live live-alone "$WORK/flood-live.toml" "$WORK/alone.pcap"
	live live-flood "$WORK/flood-live.toml" "$WORK/flood.pcap"
fi

python3 - "$WORK" "$REPLAY" "$LIVE" "$PACKETS" "$CAPACITY" "$MEMCAP" "$QUEUE" <<'PY'
import json, re, sys
work, replay, live, packets, capacity, memcap, queue = sys.argv[1:8]
MIB = 1024 * 1024

def maxrss(name):
    text = open(f"{work}/{name}.time").read()
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024

def client_port(a):
    return a["src_port"] if a["src_ip"] == "10.77.0.1" else a["dest_port"]

def findings(name):
    """Findings per fixture client port, and alerts on anything else."""
    out, other = {}, 0
    with open(f"{work}/{name}.eve.json") as f:
        for line in f:
            if '"event_type":"alert"' not in line:
                continue
            a = json.loads(line)
            if "10.77.0.1" in (a["src_ip"], a["dest_ip"]):
                out.setdefault(client_port(a), set()).add(a["unmask"]["finding"])
            else:
                other += 1
    return out, other

flows = []
for line in open(f"{work}/flood.flows.tsv").read().splitlines()[1:]:
    name, cport, sport, app, want, blocked = line.split("\t")
    flows.append((name, int(cport), set(w for w in want.split(",") if w)))
bound = int(open(f"{work}/bound.txt").read().split()[1])
bound_text = next(l for l in open(f"{work}/fixtures.log") if "memory bound " in l).split("memory bound ")[-1].strip()
umem = 8192 * 2048  # [datapath] frame_count x frame_size, defaults, one worker

def replay_numbers(name):
    s = open(f"{work}/{name}.log").read()
    n = lambda pat: int(re.search(pat, s).group(1))
    return dict(
        packets=n(r"packets\s+(\d+)"),
        pps=float(re.search(r"rate\s+([\d.]+) packets/s", s).group(1)),
        evicted=n(r"(\d+) evicted"),
        refused=n(r"(\d+) packets without a flow"),
        eve_dropped=n(r"\((\d+) dropped: queue full\)"),
        drops=0,
    )

def live_numbers(name):
    r = json.load(open(f"{work}/{name}.report.json"))
    t = open(f"{work}/{name}.tcpreplay").read()
    sent = int(re.search(r"Actual: (\d+) packets", t).group(1))
    secs = float(re.search(r"sent in ([\d.]+) seconds", t).group(1))
    failed = int(re.search(r"Failed packets:\s+(\d+)", t).group(1))
    c = r["counters"]
    sock = [s for w in r["datapath"]["workers"] for _, s in w["sockets"]]
    ring = sum(s["rx_dropped"] + s["rx_ring_full"] for s in sock)
    return dict(
        packets=c["packets"],
        pps=c["packets"] / secs if secs else 0.0,
        evicted=sum(x["evicted"] for x in r["table"]),
        refused=sum(x["refused"] for x in r["table"]),
        eve_dropped=c["eve_dropped"],
        drops=failed + ring + max(0, sent - c["packets"]),
        sent=sent,
    )

rows, problems, details = [], [], []
runs = []
if replay:
    runs.append(("replay", "replay", replay_numbers, 0))
if live:
    runs.append((f"live {live}", "live", live_numbers, umem))
for label, prefix, numbers, extra in runs:
    base = maxrss(f"{prefix}-baseline")
    peak = maxrss(f"{prefix}-flood")
    limit = base + bound + extra
    nums = numbers(f"{prefix}-flood")
    got, other = findings(f"{prefix}-flood")
    alone, alone_other = findings(f"{prefix}-alone")
    want_pairs = sum(len(w) for _, _, w in flows)
    found_pairs = sum(len(w & got.get(p, set())) for _, p, w in flows)
    flagged = [f for f in flows if f[2]]
    caught = sum(1 for _, p, w in flagged if w <= got.get(p, set()))
    benign_flagged = [n for n, p, w in flows if not w and got.get(p)]
    same = sum(1 for _, p, _ in flows if got.get(p, set()) == alone.get(p, set()))
    rows.append((label, nums["packets"], nums["pps"], peak, limit, nums["evicted"], nums["refused"],
                 nums["drops"], nums["eve_dropped"], f"{found_pairs}/{want_pairs}",
                 f"{caught}/{len(flagged)}", f"{same}/{len(flows)}"))
    details.append(f"{label}: fixed overhead {base / MIB:.1f} MiB (tiny config, tiny input)"
                   + (f" + UMEM {extra / MIB:.1f} MiB" if extra else "")
                   + f" + structures {bound_text}")
    if peak > limit:
        problems.append(f"{label}: peak RSS {peak} > bound {limit}")
    for n, p, w in flagged:
        if not w <= got.get(p, set()):
            problems.append(f"{label}: {n} (client port {p}): expected {sorted(w)}, got {sorted(got.get(p, set()))}")
    for n in benign_flagged:
        problems.append(f"{label}: benign {n} flagged: {sorted(got[[p for m, p, _ in flows if m == n][0]])}")
    for n, p, _ in flows:
        if got.get(p, set()) != alone.get(p, set()):
            details.append(f"{label}: {n}: {sorted(got.get(p, set()))} in the flood, {sorted(alone.get(p, set()))} alone")
    if other or alone_other:
        problems.append(f"{label}: {other} alerts on flood traffic ({alone_other} without the flood)")

print(f"flood: {int(packets):,} flood frames + the fixture flows ({len(flows)} flows, "
      f"{sum(1 for f in flows if f[2])} flagged); flow.capacity {capacity}, "
      f"stream.memcap {int(memcap) / MIB:.0f} MiB, output.queue_capacity {queue}")
head = ("run", "packets", "pps", "peak RSS", "bound", "evicted", "refused", "drops",
        "EVE dropped", "findings exp/found", "flagged caught", "same as alone")
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    label, pk, pps, peak, limit, ev, rf, dr, ed, pairs, caught, same = r
    print(f"| {label} | {pk:,} | {pps:,.0f} | {peak / MIB:.1f} MiB | {limit / MIB:.1f} MiB | "
          f"{ev:,} | {rf:,} | {dr:,} | {ed:,} | {pairs} | {caught} | {same} |")
for d in details:
    print("  " + d)
for p in problems:
    print("FAIL " + p)
sys.exit(1 if problems else 0)
PY
