#!/usr/bin/env bash
# Soak test (issue 6): `unmask run` inline in the namespace lab, block mode, a small flow table
# (flow.capacity 65536, stream.memcap 32 MiB, short flow timeouts), for a bounded time while
# mixed traffic loops through it:
#   - the fixture capture (`unmask fixtures --out`: benign flows and impersonations) and a
#     handful of the real captures in ../shared/pcaps (when present), looped by
#     `tcpreplay --loop 0 --unique-ip` at --pps (new addresses every loop, so flows keep
#     arriving, filling the table and getting evicted or expiring);
#   - and a burst of `unmask-diag gen` (64-byte TCP over 64 flows, AF_XDP at full speed) for
#     one second every --gen-every seconds (the generator has no rate control).
# It samples unmask's resident memory (VmRSS in /proc/PID/status) every --interval seconds and
# prints at the end: RSS over time, growth over the first and the second half, growth between
# the end of the warm-up (the first 20% of the run) and the end, the config's memory bound,
# packets, findings, and drops (XDP reasons, socket ring drops, fill ring empty, EVE records
# dropped, tcpreplay failures).
#
#   scripts/soak.sh [--minutes M] [--interval S] [--pps N] [--gen-every S] [--no-gen] [--no-build]
#
#   --minutes M     length of the run (default 10; 1 for a quick check)
#   --interval S    RSS sample period (default: 10 s, or less so that there are >= 12 samples)
#   --pps N         tcpreplay rate (default 20000)
#   --gen-every S   a one-second generator burst every S seconds (default 30); --no-gen: none
# Flow timeouts are cut to half the warm-up (5-60 s) so the table reaches its steady state
# (flows expiring as fast as they come) within it.
# Env: LAB_PREFIX (default sk, or sk<N> while another soak runs), CAPACITY (flow.capacity,
#      default 65536), SOAK_PCAPS (space-separated captures to loop; default: a handful of
#      ../shared/pcaps/ndpi ones that exist; folder override UNMASK_PCAPS),
#      GROWTH_PCT (default 10) and GROWTH_MIB (default 16): the allowed growth after the
#      warm-up is the larger of the two; KEEP=1 keeps the work directory (EVE, report, logs);
#      CARGO_TARGET_DIR (binaries from $CARGO_TARGET_DIR/release).
# Exits non-zero when RSS grows more than allowed after the warm-up, or unmask dies or fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=("$@")

MINUTES=10
INTERVAL=""
PPS=20000
GEN_EVERY=30
BUILD=1
usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d' >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--minutes) MINUTES="${2:?}"; shift ;;
	--interval) INTERVAL="${2:?}"; shift ;;
	--pps) PPS="${2:?}"; shift ;;
	--gen-every) GEN_EVERY="${2:?}"; shift ;;
	--no-gen) GEN_EVERY=0 ;;
	--no-build) BUILD="" ;;
	-h | --help) usage ;;
	*) echo "soak.sh: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done
case "$MINUTES" in *[!0-9.]* | "") echo "soak.sh: --minutes $MINUTES: a number of minutes" >&2; exit 2 ;; esac
case "$PPS" in *[!0-9]* | "" | 0) echo "soak.sh: --pps $PPS: a positive integer" >&2; exit 2 ;; esac
case "$GEN_EVERY" in *[!0-9]* | "") echo "soak.sh: --gen-every $GEN_EVERY: whole seconds" >&2; exit 2 ;; esac
TOTAL=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')
[ "$TOTAL" -ge 10 ] || { echo "soak.sh: --minutes $MINUTES: at least 10 seconds" >&2; exit 2; }
if [ -z "$INTERVAL" ]; then
	INTERVAL=$((TOTAL / 12))
	[ "$INTERVAL" -gt 10 ] && INTERVAL=10
	[ "$INTERVAL" -lt 1 ] && INTERVAL=1
fi
case "$INTERVAL" in *[!0-9]* | "" | 0) echo "soak.sh: --interval $INTERVAL: whole seconds, at least 1" >&2; exit 2 ;; esac

CAPACITY="${CAPACITY:-65536}"
# Half the warm-up (the first 20% of the run), between 5 s and 60 s.
EST_TIMEOUT=$((TOTAL / 10))
[ "$EST_TIMEOUT" -gt 60 ] && EST_TIMEOUT=60
[ "$EST_TIMEOUT" -lt 5 ] && EST_TIMEOUT=5
NEW_TIMEOUT=$((EST_TIMEOUT < 10 ? EST_TIMEOUT : 10))
PCAP_DIR="${UNMASK_PCAPS:-$PWD/../shared/pcaps}"
GROWTH_PCT="${GROWTH_PCT:-10}"
GROWTH_MIB="${GROWTH_MIB:-16}"

# shellcheck source=scripts/lib/lab.sh
. scripts/lib/lab.sh
W=""
unmask_pid=""
replay_pid=""
gen_pid=""
lab_cleanup_on_exit
lab_kill_at_exit replay_pid gen_pid unmask_pid
# shellcheck disable=SC2016 # expanded at exit
lab_at_exit '[ -z "$W" ] || { [ "${KEEP:-0}" = 1 ] && echo "soak.sh: work directory kept: $W" >&2 || rm -rf "$W"; }'
lab_claim sk 1
P="$LAB_P"

bash scripts/deps.sh
if [ -n "$BUILD" ]; then
	cargo build --release --locked --quiet --bins
fi
BIN_DIR=$(readlink -f "${CARGO_TARGET_DIR:-$PWD/target}/release")
UNMASK="$BIN_DIR/unmask"
DIAG="$BIN_DIR/unmask-diag"
for b in "$UNMASK" "$DIAG"; do
	[ -x "$b" ] || { echo "soak.sh: $b missing: cargo build --release --bins" >&2; exit 2; }
done

W=$(mktemp -d /tmp/unmask-soak.XXXXXX)

# The captures: the fixtures, and real ones when the shared folder is there.
"$UNMASK" fixtures --out "$W/fixtures.pcap" 2>"$W/fixtures.log"
captures=("$W/fixtures.pcap")
if [ -n "${SOAK_PCAPS:-}" ]; then
	read -r -a extra <<<"$SOAK_PCAPS"
else
	extra=()
	# Ethernet captures with TLS (browsers, certificates, a huge ClientHello), SSH, Tor,
	# OpenVPN, malware C2 over HTTP/TLS: the engine's main paths, a few thousand frames.
	for f in chrome.pcap firefox.pcap 443-curl.pcap teams.pcap tls_with_huge_ch.pcapng ssh.pcap \
		tor.pcap openvpn.pcap emotet.pcap trickbot.pcap; do
		[ -r "$PCAP_DIR/ndpi/$f" ] && extra+=("$PCAP_DIR/ndpi/$f")
	done
	[ "${#extra[@]}" -gt 0 ] || echo "soak.sh: $PCAP_DIR/ndpi absent: looping the fixture capture only" >&2
fi
for f in "${extra[@]}"; do
	[ -r "$f" ] || { echo "soak.sh: $f: not readable" >&2; exit 2; }
	captures+=("$(readlink -f "$f")")
done

cat >"$W/soak.toml" <<TOML
[verdict]
mode = "block"
fail_mode = "fail-open"
[flow]
capacity = $CAPACITY
# Timeouts short enough that flows start expiring as fast as they arrive within the warm-up:
# with the defaults (600 s for established flows; most looped flows never close), the table
# would keep filling for minutes and RSS growth would measure that, not a leak.
new_timeout_secs = $NEW_TIMEOUT
established_timeout_secs = $EST_TIMEOUT
closed_timeout_secs = $NEW_TIMEOUT
[stream]
memcap = 33554432
[live]
topology = "inline"
ports = $(lab_ports inline)
workers = 1
control_socket = "$W/control.sock"
TOML
# What the config promises for the engine's sized structures (the UMEM comes on top).
bound=$("$UNMASK" fixtures --flood 1 --out "$W/bound.pcap" --config "$W/soak.toml" 2>/dev/null |
	awk '/memory_bound_bytes/ {print $2}') || bound=""

lab_up >/dev/null
SMAC=$(lab_server_mac)

ip netns exec "$P-appliance" "$UNMASK" run --config "$W/soak.toml" --eve "$W/eve.json" \
	--report "$W/report.json" 2>"$W/unmask.log" &
unmask_pid=$!
lab_wait_ready "$unmask_pid" 150 "$W/unmask.log" || true
grep -q READY "$W/unmask.log" || { cat "$W/unmask.log" >&2; exit 1; }

echo "soak.sh: ${TOTAL} s, unmask pid $unmask_pid inline (block mode, flow.capacity $CAPACITY," \
	"flow timeouts ${EST_TIMEOUT} s established, ${NEW_TIMEOUT} s new/closed); tcpreplay" \
	"$PPS pps over ${#captures[@]} capture(s)$([ "$GEN_EVERY" -gt 0 ] && echo ", generator burst every ${GEN_EVERY} s"); RSS every ${INTERVAL} s" >&2
# --unique-ip: new addresses every loop; --no-flow-stats: tcpreplay's own flow table would
# grow with them (and is not what is measured).
ip netns exec "$P-client" tcpreplay --pps "$PPS" --loop 0 --unique-ip --no-flow-stats \
	--preload-pcap --duration "$TOTAL" --intf1="${P}c" "${captures[@]}" >"$W/tcpreplay.log" 2>&1 &
replay_pid=$!

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
printf 'seconds\trss_kib\n' >"$W/rss.tsv"
start=$(date +%s)
next_gen=$((GEN_EVERY > 0 ? GEN_EVERY / 2 : -1))
died=""
eve_cut=0
while :; do
	now=$(($(date +%s) - start))
	rss=$(rss_kib "$unmask_pid")
	if [ -z "$rss" ] || ! kill -0 "$unmask_pid" 2>/dev/null; then
		died="unmask (pid $unmask_pid) died after ${now} s"
		break
	fi
	printf '%s\t%s\n' "$now" "$rss" >>"$W/rss.tsv"
	# unmask appends (O_APPEND) to its EVE file: emptying it keeps a long soak's disk use bounded.
	eve_size=$(stat -c %s "$W/eve.json" 2>/dev/null || echo 0)
	if [ "$eve_size" -gt $((256 * 1024 * 1024)) ]; then
		eve_cut=$((eve_cut + eve_size))
		: >"$W/eve.json"
	fi
	[ "$now" -ge "$TOTAL" ] && break
	if [ "$next_gen" -ge 0 ] && [ "$now" -ge "$next_gen" ] && [ "$now" -lt $((TOTAL - 2)) ]; then
		if [ -z "$gen_pid" ] || ! kill -0 "$gen_pid" 2>/dev/null; then
			ip netns exec "$P-client" "$DIAG" gen --iface "${P}c" --queue 0 --seconds 1 \
				--dst-mac "$SMAC" >>"$W/gen.json" 2>/dev/null &
			gen_pid=$!
		fi
		next_gen=$((next_gen + GEN_EVERY))
	fi
	# Sleep to the next sample time, on the run's clock (a slow sample does not shift the rest).
	sleep_for=$((INTERVAL - ($(date +%s) - start) % INTERVAL))
	left=$((TOTAL - ($(date +%s) - start)))
	[ "$left" -gt 0 ] && [ "$sleep_for" -gt "$left" ] && sleep_for=$left
	sleep "$sleep_for"
done

status=0
if [ -z "$died" ]; then
	wait "$replay_pid" 2>/dev/null || true
	replay_pid=""
	[ -n "$gen_pid" ] && { wait "$gen_pid" 2>/dev/null || true; gen_pid=""; }
	sleep 1
	kill -TERM "$unmask_pid"
	if ! wait "$unmask_pid"; then
		died="unmask exited with an error at its stop"
	fi
	unmask_pid=""
else
	kill -9 "$replay_pid" 2>/dev/null || true
	replay_pid=""
fi
[ -n "$died" ] && { echo "soak.sh: $died; its log:" >&2; tail -n 20 "$W/unmask.log" >&2; status=1; }

eve_bytes=$(($(stat -c %s "$W/eve.json" 2>/dev/null || echo 0) + eve_cut))
REPRO="scripts/soak.sh${ARGS[*]:+ ${ARGS[*]}}"
python3 - "$W" "$TOTAL" "$GROWTH_PCT" "$GROWTH_MIB" "${bound:-0}" "$died" "$REPRO" "$CAPACITY" "$EST_TIMEOUT" "$eve_bytes" \
	"$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "${captures[@]}" <<'PY' || status=1
import json, os, re, sys
w, total, gpct, gmib, bound, died, repro, capacity, est, eve_bytes, commit = sys.argv[1:12]
captures = sys.argv[12:]
total, gpct, gmib, bound = int(total), float(gpct), float(gmib), int(bound)
MIB = 1024 * 1024
samples = [tuple(int(x) for x in l.split("\t")) for l in open(f"{w}/rss.tsv").read().splitlines()[1:]]
samples = [(t, kib * 1024) for t, kib in samples]
problems = []
if died:
    problems.append(died)

print(f"soak: {total} s of unmask run inline (block mode, flow.capacity {capacity}, established "
      f"flows expire after {est} s, stream.memcap 32 MiB); "
      f"captures: {', '.join(os.path.basename(c) for c in captures)}")
if not samples:
    print("no RSS sample")
    sys.exit(1)

# The table: every sample when few, else about 20 evenly spaced ones (and the last).
step = max(1, len(samples) // 20)
shown = samples[::step]
if shown[-1] != samples[-1]:
    shown.append(samples[-1])
print("| t (s) | RSS (MiB) | change from the previous row |")
print("|---|---|---|")
prev = None
for t, rss in shown:
    delta = "" if prev is None else f"{(rss - prev) / MIB:+.2f}"
    print(f"| {t} | {rss / MIB:.2f} | {delta} |")
    prev = rss

def at(seconds):
    """The first sample at or after `seconds` (the last one when none)."""
    return next(((t, r) for t, r in samples if t >= seconds), samples[-1])

first, last = samples[0], samples[-1]
mid = at(last[0] / 2)
warm = at(total * 0.2)
peak = max(r for _, r in samples)
print(f"RSS: start {first[1] / MIB:.2f} MiB, peak {peak / MIB:.2f} MiB, end {last[1] / MIB:.2f} MiB; "
      f"growth first half (t {first[0]}-{mid[0]} s) {(mid[1] - first[1]) / MIB:+.2f} MiB, "
      f"second half (t {mid[0]}-{last[0]} s) {(last[1] - mid[1]) / MIB:+.2f} MiB")
allowed = max(warm[1] * gpct / 100, gmib * MIB)
growth = last[1] - warm[1]
verdict = "ok" if growth <= allowed else "TOO MUCH"
print(f"growth after warm-up (t {warm[0]} s -> {last[0]} s): {growth / MIB:+.2f} MiB "
      f"({100 * growth / warm[1]:+.1f}%), allowed {allowed / MIB:.2f} MiB "
      f"(the larger of {gpct:g}% and {gmib:g} MiB): {verdict}")
if growth > allowed:
    problems.append(f"RSS grew {growth / MIB:.2f} MiB after the warm-up (allowed {allowed / MIB:.2f} MiB)")
if last[0] < total * 0.9 and not died:
    problems.append(f"last sample at {last[0]} s of {total} s")
if bound:
    umem = 8192 * 2048  # [datapath] frame_count x frame_size, defaults, one worker
    print(f"config's memory bound: {bound / MIB:.1f} MiB for the engine's structures + "
          f"{umem / MIB:.0f} MiB UMEM (plus the process's fixed overhead)")

try:
    r = json.load(open(f"{w}/report.json"))
except (OSError, ValueError):
    r = None
t = open(f"{w}/tcpreplay.log").read() if os.path.exists(f"{w}/tcpreplay.log") else ""
m = re.search(r"Actual: (\d+) packets", t)
sent = int(m.group(1)) if m else None
m = re.search(r"Failed packets:\s+(\d+)", t)
failed = int(m.group(1)) if m else None
gen = 0
if os.path.exists(f"{w}/gen.json"):
    for line in open(f"{w}/gen.json"):
        if line.startswith("{"):
            gen += json.loads(line)["sent"]
print(f"traffic: tcpreplay sent {sent if sent is not None else '?'} frames "
      f"({failed if failed is not None else '?'} failed), generator bursts {gen} frames")
if r is None:
    print("no run report (unmask did not stop cleanly)")
else:
    d, c = r["datapath"], r["counters"]
    NAMES = ["foreign_port", "non_tcp", "blocked", "bypassed", "to_socket", "unsure", "no_socket", "expired"]
    reasons = {n: x["packets"] for n, x in zip(NAMES, d["xdp"]["reasons"])}
    rx = sum(wk["stats"]["rx"] for wk in d["workers"])
    tx = sum(wk["stats"]["tx"] for wk in d["workers"])
    socks = [s for wk in d["workers"] for _, s in wk["sockets"]]
    ring = sum(s.get("rx_dropped", 0) + s.get("rx_ring_full", 0) for s in socks)
    fill = sum(s.get("rx_fill_ring_empty_descs", 0) for s in socks)
    findings = c["findings"]
    nfind = sum(findings) if isinstance(findings, list) else sum(findings.values())
    table = r.get("table", [])
    print(f"packets: engine {c['packets']:,} (inspected {c['inspected']:,}, fast path {c['fast_path']:,}, "
          f"dropped by verdict {c['dropped']:,}); sockets rx {rx:,}, tx {tx:,}")
    print("xdp: " + ", ".join(f"{n} {v:,}" for n, v in reasons.items() if v))
    print(f"drops: socket ring {ring:,}, fill ring empty {fill:,}, no_socket {reasons['no_socket']:,}, "
          f"EVE records dropped (queue full) {c['eve_dropped']:,}, packets without a flow (table full) "
          f"{c['flows_refused_packets']:,}, stream memcap refusals {c['stream_memcap_refused']:,}")
    print(f"flows: {c['flows_ended']:,} ended, {c['flows_blocked']:,} blocked; table: "
          f"{sum(x['created'] for x in table):,} created, {sum(x['evicted'] for x in table):,} evicted, "
          f"{sum(x['refused'] for x in table):,} refused")
    e = r["eve"]
    print(f"findings: {nfind:,}; EVE {e['alert']:,} alert, {e['flow']:,} flow, {e['drop']:,} drop records "
          f"({int(eve_bytes) / MIB:.1f} MiB written)")
print(f"commit {commit}; reproduce: {repro}")
for p in problems:
    print("FAIL " + p)
sys.exit(1 if problems else 0)
PY
exit "$status"
