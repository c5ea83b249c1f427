#!/usr/bin/env bash
# Sends a capture through the namespace lab with tcpreplay while unmask inspects it live: the
# benchmark habit of replaying captures into an IPS, without a NIC.
#
#   scripts/replay.sh CAPTURE
#
# Env: MODE=tap|inline (default tap: the capture arrives on a mirror port; inline: it enters
#      port A and leaves port B), VERDICT=monitor|block (default monitor),
#      SPEED=topspeed|real|<Mbps> (default topspeed), EVE=path (default ./replay-eve.json),
#      LAB_PREFIX (default umr), WORKERS (default 1).
# Prints unmask's end-of-run summary; EVE records land in $EVE.
set -euo pipefail
cd "$(dirname "$0")/.."

capture="${1:?usage: scripts/replay.sh CAPTURE}"
[ -r "$capture" ] || { echo "replay.sh: $capture: not readable" >&2; exit 2; }
capture=$(readlink -f "$capture")
MODE="${MODE:-tap}"
VERDICT="${VERDICT:-monitor}"
SPEED="${SPEED:-topspeed}"
EVE=$(readlink -f "${EVE:-replay-eve.json}")
WORKERS="${WORKERS:-1}"
P="${LAB_PREFIX:-umr}"
case "$MODE" in tap | inline) ;; *) echo "replay.sh: MODE=$MODE: accepted: tap, inline" >&2; exit 2 ;; esac
case "$VERDICT" in monitor | block) ;; *) echo "replay.sh: VERDICT=$VERDICT: accepted: monitor, block" >&2; exit 2 ;; esac
case "$SPEED" in
topspeed) speed=(--topspeed) ;;
real) speed=() ;;
*[!0-9.]* | "") echo "replay.sh: SPEED=$SPEED: accepted: topspeed, real, or a rate in Mbps" >&2; exit 2 ;;
*) speed=(--mbps "$SPEED") ;;
esac

bash scripts/deps.sh
cargo build --release --locked --quiet --bin unmask
bin=$(readlink -f "${CARGO_TARGET_DIR:-$PWD/target}")/release/unmask
work=$(mktemp -d /tmp/unmask-replay.XXXXXX)
unmask_pid=""
cleanup() {
	[ -n "$unmask_pid" ] && kill -9 "$unmask_pid" 2>/dev/null || true
	LAB_PREFIX="$P" LAB_QUEUES="$WORKERS" bash scripts/lab.sh down >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

LAB_PREFIX="$P" LAB_QUEUES="$WORKERS" bash scripts/lab.sh up >/dev/null
if [ "$MODE" = tap ]; then ports="[\"${P}a\"]"; else ports="[\"${P}a\", \"${P}b\"]"; fi
cat >"$work/replay.toml" <<TOML
[verdict]
mode = "$VERDICT"
[live]
topology = "$MODE"
ports = $ports
workers = $WORKERS
control_socket = "$work/control.sock"
TOML
ip netns exec "$P-appliance" "$bin" run --config "$work/replay.toml" --eve "$EVE" 2>"$work/unmask.log" &
unmask_pid=$!
for _ in $(seq 100); do grep -q READY "$work/unmask.log" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$work/unmask.log" || { cat "$work/unmask.log" >&2; exit 1; }

echo "replay.sh: tcpreplay ${speed[*]:-(capture timing)} $capture -> ${P}c ($MODE mode, $VERDICT)" >&2
ip netns exec "$P-client" tcpreplay -q "${speed[@]}" --intf1="${P}c" "$capture" >&2
sleep 1
kill -TERM "$unmask_pid"
wait "$unmask_pid" || true
unmask_pid=""
sed -n '/unmask run:/,$p' "$work/unmask.log"
echo "replay.sh: EVE records in $EVE" >&2
