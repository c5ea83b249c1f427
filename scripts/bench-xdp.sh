#!/usr/bin/env bash
# Raw AF_XDP loops in the lab: how many packets per second the datapath's sockets move.
#
#   scripts/bench-xdp.sh rx-drop|forward [runs] [seconds]
#
# Generator: `unmask-diag gen` (AF_XDP TX, 60-byte TCP frames over 64 flows) in the client
# namespace, pinned to CPU0. Receiver: `unmask-diag rx-drop` (port A, everything to the
# socket, dropped) or `forward` (A -> B, no parsing) in the appliance namespace, worker on
# CPU1. NAPI=threaded (default) threads port A's NAPI and pins it to CPU1 too, so CPU1 does
# all the receive work; NAPI=softirq leaves it in the generator's softirq on CPU0 (veth runs
# the peer's XDP in the sender's context), so CPU1 only runs the worker and its TX.
# Prints one line per run: generator pps, datapath rx pps, tx pps.
# Needs a release build: cargo build --release --bin unmask-diag
set -euo pipefail

MODE="${1:-rx-drop}"
RUNS="${2:-3}"
SECS="${3:-5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${UNMASK_DIAG:-${CARGO_TARGET_DIR:-$ROOT/target}/release/unmask-diag}"
export LAB_PREFIX="${LAB_PREFIX:-bx}"
P="$LAB_PREFIX"

[ -x "$BIN" ] || { echo "build first: cargo build --release --bin unmask-diag" >&2; exit 2; }
trap '"$ROOT/scripts/lab.sh" down >/dev/null 2>&1 || true' EXIT
"$ROOT/scripts/lab.sh" up >/dev/null
SMAC="$(ip netns exec "$P-server" cat "/sys/class/net/${P}s/address")"
OUT="$(mktemp -d)"

for run in $(seq "$RUNS"); do
	case "$MODE" in
	rx-drop) args=(rx-drop --iface "${P}a") ;;
	forward) args=(forward --a "${P}a" --b "${P}b") ;;
	*) echo "mode: rx-drop or forward" >&2; exit 2 ;;
	esac
	ip netns exec "$P-appliance" "$BIN" "${args[@]}" --seconds $((SECS + 2)) --first-core 1 \
		>"$OUT/app.json" 2>"$OUT/app.err" &
	app=$!
	sleep 0.7
	if [ "${NAPI:-threaded}" = threaded ]; then
		# veth creates its NAPI only with XDP attached: thread it now, on the worker's core.
		ip netns exec "$P-appliance" sh -c "echo 1 > /sys/class/net/${P}a/threaded" || true
		for pid in $(ps -eo pid,comm | awk -v n="napi/${P}a" 'index($2, n) == 1 {print $1}'); do
			taskset -pc 1 "$pid" >/dev/null
		done
	fi
	ip netns exec "$P-client" "$BIN" gen --iface "${P}c" --seconds "$SECS" --core 0 \
		--dst-mac "$SMAC" >"$OUT/gen.json" 2>/dev/null
	wait "$app"
	python3 - "$OUT/gen.json" "$OUT/app.json" "$run" "$MODE" <<'EOF'
import json, sys
g = json.loads(open(sys.argv[1]).read().splitlines()[-1])
a = json.loads(open(sys.argv[2]).read().splitlines()[-1])
w = a["workers"][0]
secs = g["seconds"]
fill_empty = sum(s[1]["rx_fill_ring_empty_descs"] for s in w["sockets"])
print(f"{sys.argv[4]} run {sys.argv[3]} (napi {__import__('os').environ.get('NAPI', 'threaded')}): gen {g['sent']/secs/1e6:.3f} Mpps, "
      f"rx {w['stats']['rx']/secs/1e6:.3f} Mpps, tx {w['stats']['tx']/secs/1e6:.3f} Mpps "
      f"(kernel fill-ring-empty drops {fill_empty}, {a['bind_mode']} mode)")
EOF
done
rm -rf "$OUT"
