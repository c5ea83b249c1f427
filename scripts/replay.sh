#!/usr/bin/env bash
# Sends a capture through the namespace lab with tcpreplay while unmask inspects it live: the
# benchmark habit of replaying captures into an IPS, without a NIC.
#
#   scripts/replay.sh CAPTURE
#
# Env: MODE=tap|inline (default tap: the capture arrives on a mirror port; inline: it enters
#      port A and leaves port B), VERDICT=monitor|block (default monitor),
#      SPEED=topspeed|real|<Mbps> (default topspeed), EVE=path (default ./replay-eve.json),
#      LAB_PREFIX (default umr, or umr<N> while another replay runs), WORKERS (default 1).
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
case "$MODE" in tap | inline) ;; *) echo "replay.sh: MODE=$MODE: accepted: tap, inline" >&2; exit 2 ;; esac
case "$VERDICT" in monitor | block) ;; *) echo "replay.sh: VERDICT=$VERDICT: accepted: monitor, block" >&2; exit 2 ;; esac
case "$SPEED" in
topspeed) speed=(--topspeed) ;;
real) speed=() ;;
*[!0-9.]* | "") echo "replay.sh: SPEED=$SPEED: accepted: topspeed, real, or a rate in Mbps" >&2; exit 2 ;;
*) speed=(--mbps "$SPEED") ;;
esac

# shellcheck source=scripts/lib/lab.sh
. scripts/lib/lab.sh
work=""
unmask_pid=""
lab_cleanup_on_exit
lab_kill_at_exit unmask_pid
# shellcheck disable=SC2016 # expanded at exit
lab_at_exit '[ -z "$work" ] || rm -rf "$work"'
lab_claim umr "$WORKERS"
P="$LAB_P"

bash scripts/deps.sh
cargo build --release --locked --quiet --bin unmask
bin=$(readlink -f "${CARGO_TARGET_DIR:-$PWD/target}")/release/unmask
work=$(mktemp -d /tmp/unmask-replay.XXXXXX)

lab_up >/dev/null
cat >"$work/replay.toml" <<TOML
[verdict]
mode = "$VERDICT"
[live]
topology = "$MODE"
ports = $(lab_ports "$MODE")
workers = $WORKERS
control_socket = "$work/control.sock"
TOML
ip netns exec "$P-appliance" "$bin" run --config "$work/replay.toml" --eve "$EVE" 2>"$work/unmask.log" &
unmask_pid=$!
lab_wait_ready "$unmask_pid" 100 "$work/unmask.log" || true
grep -q READY "$work/unmask.log" || { cat "$work/unmask.log" >&2; exit 1; }

echo "replay.sh: tcpreplay ${speed[*]:-(capture timing)} $capture -> ${P}c ($MODE mode, $VERDICT)" >&2
ip netns exec "$P-client" tcpreplay -q "${speed[@]}" --intf1="${P}c" "$capture" >&2
sleep 1
kill -TERM "$unmask_pid"
wait "$unmask_pid" || true
unmask_pid=""
sed -n '/unmask run:/,$p' "$work/unmask.log"
echo "replay.sh: EVE records in $EVE" >&2
