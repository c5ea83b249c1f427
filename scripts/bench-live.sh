#!/usr/bin/env bash
# Live datapath benchmark as ratios within one run (issue 4): on veth with 2 cores absolute
# packet rates mean little (DATAPATH-NOTES: ±20-25% run to run), so unmask is measured against
# the raw AF_XDP loop on the same lab, the same cores and the same traffic, alternately:
#
#   tap     raw `unmask-diag rx-drop` (port A, every frame to the socket, dropped)
#           vs `unmask run`, topology tap on port A                          target >= 0.95
#   inline  raw `unmask-diag forward` (A <-> B, every frame to the sockets, no parsing)
#           vs `unmask run`, inline between A and B, monitor mode            target >= 0.85
#
# for two kinds of traffic:
#   tcp64   `unmask-diag gen`: 60-byte TCP frames (64 on the wire) over 64 flows, AF_XDP TX;
#           each flow a stream of 6-byte segments (--repeat-seq: the same segment again and
#           again, a retransmission flood)
#   mixed   the fixture capture (`unmask fixtures --out`: benign and impersonating flows),
#           looped by `tcpreplay --topspeed --preload-pcap --loop 0 --unique-ip` (new flows
#           every loop, so the engine keeps inspecting rather than forwarding decided flows)
#
# Each pair is one raw run and one unmask run (order alternating from pair to pair, so a drift
# in the machine's load does not favour one side), each preceded by a wait for an idle machine
# (/proc/stat; a warning when it never gets idle). The window is the generator's: it sends for
# --seconds, the receiver is stopped half a second after, and its count over the window is
# what it handled: frames its sockets received, plus, for unmask, frames its XDP program
# settled in the kernel (bypassed or blocked flows, non-TCP) -- the raw loops steer every frame
# to the socket. Ratio = unmask pps / raw pps of the same pair, when a receiver lost frames (it
# was the bottleneck). When neither lost any (< 1%), both kept up and their pps only follow the
# generator (tcpreplay tops out near 0.3 Mpps here): the ratio is then the delivered shares'
# (handled/sent over handled/sent, about 1), marked "g". Prints every run, every pair's ratio,
# the median and the spread (min/max) per case, and the command that reproduces it.
#
# Placement as in scripts/bench-xdp.sh: generator (or tcpreplay) on CPU0; the receiver's
# worker on CPU1, and the NAPI of the appliance ports threaded and pinned to CPU1 as well, so
# CPU1 does all the receive work (NAPI=softirq leaves NAPI in the sender's softirq on CPU0).
#
#   scripts/bench-live.sh [--pairs N] [--seconds S] [--kinds tcp64,mixed] [--modes tap,inline]
#                         [--strict] [--pause-fuzzer] [--idle-timeout S] [--no-build]
#                         [--bypass off|clean|decided] [--repeat-seq]
#
#   --pairs N          raw/unmask pairs per case (default 5)
#   --seconds S        measurement window per run (default 10)
#   --kinds, --modes   subsets (default: both of each)
#   --strict           exit 1 when a median ratio is below its target (by default targets are
#                      goals printed beside the result, not assertions)
#   --pause-fuzzer     SIGSTOP the processes whose command line matches PAUSE_PATTERN (default
#                      'fuzz/target/') while measuring, SIGCONT them at the end (also on failure)
#   --idle-timeout S   longest wait for an idle machine before each run (default 30)
#   --no-build         use the binaries in place (default: cargo build --release --bins)
#   --bypass MODE      verdict.bypass of the unmask runs (default off: every packet of every
#                      flow reaches the engine, the like-for-like comparison with the raw loop;
#                      clean/decided: judged flows go by the kernel, as deployed for throughput)
#   --repeat-seq       tcp64 repeats each flow's segment instead of moving its sequence on
# Env: LAB_PREFIX (default bl, or bl<N> while another bench-live runs), IDLE_BUSY (largest
#      busy share of the machine counted as idle, percent, default 15), NAPI=threaded|softirq,
#      KEEP=1 keeps the work directory, HUGEPAGES (2 MiB pages reserved for the run if fewer
#      are, default 16: a receiver's UMEM at the default size and the generator's; 0 leaves
#      vm.nr_hugepages alone),
#      CARGO_TARGET_DIR (binaries from $CARGO_TARGET_DIR/release).
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=("$@")

PAIRS=5
SECS=10
KINDS="tcp64,mixed"
MODES="tap,inline"
STRICT=""
PAUSE=""
IDLE_TIMEOUT=30
BUILD=1
BYPASS=off
REPEAT=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d' >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--pairs) PAIRS="${2:?}"; shift ;;
	--seconds) SECS="${2:?}"; shift ;;
	--kinds) KINDS="${2:?}"; shift ;;
	--modes) MODES="${2:?}"; shift ;;
	--strict) STRICT=1 ;;
	--pause-fuzzer) PAUSE=1 ;;
	--idle-timeout) IDLE_TIMEOUT="${2:?}"; shift ;;
	--no-build) BUILD="" ;;
	--bypass) BYPASS="${2:?}"; shift ;;
	--repeat-seq) REPEAT=--repeat-seq ;;
	-h | --help) usage ;;
	*) echo "bench-live.sh: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done
case "$PAIRS" in *[!0-9]* | "" | 0) echo "bench-live.sh: --pairs $PAIRS: a positive integer" >&2; exit 2 ;; esac
case "$SECS" in *[!0-9]* | "" | 0) echo "bench-live.sh: --seconds $SECS: whole seconds, at least 1" >&2; exit 2 ;; esac
case "$IDLE_TIMEOUT" in *[!0-9]* | "") echo "bench-live.sh: --idle-timeout $IDLE_TIMEOUT: whole seconds" >&2; exit 2 ;; esac
case "$BYPASS" in off | clean | decided) ;; *) echo "bench-live.sh: --bypass $BYPASS: accepted: off, clean, decided" >&2; exit 2 ;; esac
for k in ${KINDS//,/ }; do
	case "$k" in tcp64 | mixed) ;; *) echo "bench-live.sh: --kinds $k: accepted: tcp64, mixed" >&2; exit 2 ;; esac
done
for m in ${MODES//,/ }; do
	case "$m" in tap | inline) ;; *) echo "bench-live.sh: --modes $m: accepted: tap, inline" >&2; exit 2 ;; esac
done
[ "$(nproc)" -ge 2 ] || echo "bench-live.sh: warning: $(nproc) CPU: generator and receiver share it" >&2

IDLE_BUSY="${IDLE_BUSY:-15}"
PAUSE_PATTERN="${PAUSE_PATTERN:-fuzz/target/}"
NAPI="${NAPI:-threaded}"

# shellcheck source=scripts/lib/lab.sh
. scripts/lib/lab.sh
W=""
rcv_pid=""
paused=()
lab_cleanup_on_exit
lab_kill_at_exit rcv_pid
# shellcheck disable=SC2016 # expanded at exit
lab_at_exit 'if [ "${#paused[@]}" -gt 0 ]; then
	kill -CONT "${paused[@]}" 2>/dev/null || true
	echo "bench-live.sh: resumed ${#paused[@]} paused process(es)" >&2
fi'
# shellcheck disable=SC2016 # expanded at exit
lab_at_exit '[ -z "$W" ] || { [ "${KEEP:-0}" = 1 ] && echo "bench-live.sh: work directory kept: $W" >&2 || rm -rf "$W"; }'
lab_claim bl 1
P="$LAB_P"

bash scripts/deps.sh
if [ -n "$BUILD" ]; then
	cargo build --release --locked --quiet --bins
fi
BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/release"
BIN_DIR=$(readlink -f "$BIN_DIR")
UNMASK="$BIN_DIR/unmask"
DIAG="$BIN_DIR/unmask-diag"
for b in "$UNMASK" "$DIAG"; do
	[ -x "$b" ] || { echo "bench-live.sh: $b missing: cargo build --release --bins" >&2; exit 2; }
done

W=$(mktemp -d /tmp/unmask-bench-live.XXXXXX)

# Huge pages for the UMEMs (datapath.huge_pages = "auto" takes them when they are reserved), as
# an appliance is deployed: the raw loops and unmask both get them. Restored at exit.
HUGE_WANT="${HUGEPAGES:-16}"
case "$HUGE_WANT" in *[!0-9]* | "") echo "bench-live.sh: HUGEPAGES=$HUGE_WANT: a whole number" >&2; exit 2 ;; esac
huge_before=$(cat /proc/sys/vm/nr_hugepages)
if [ "$HUGE_WANT" -gt "$huge_before" ]; then
	echo "$HUGE_WANT" >/proc/sys/vm/nr_hugepages
	lab_at_exit "echo $huge_before >/proc/sys/vm/nr_hugepages"
fi

if [ -n "$PAUSE" ]; then
	# Only the processes running now, by id: whatever starts later is not touched.
	mapfile -t paused < <(pgrep -f -- "$PAUSE_PATTERN" || true)
	if [ "${#paused[@]}" -gt 0 ]; then
		echo "bench-live.sh: pausing ${#paused[@]} process(es) matching '$PAUSE_PATTERN': ${paused[*]}" >&2
		kill -STOP "${paused[@]}"
	fi
fi

# busy_percent SECONDS: share of all CPUs' time not idle over SECONDS, from /proc/stat.
busy_percent() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	sleep "$1"
	b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN {
		split(a, x, " "); split(b, y, " ");
		t = y[1] - x[1]; i = y[2] - x[2];
		printf "%d", (t > 0) ? 100 * (t - i) / t : 0 }'
}

# wait_idle: until the machine is idle (busy <= IDLE_BUSY % over one second) or IDLE_TIMEOUT;
# echoes the last busy share, warns when it never got idle.
wait_idle() {
	local start busy
	start=$(date +%s)
	while :; do
		busy=$(busy_percent 1)
		if [ "$busy" -le "$IDLE_BUSY" ]; then
			echo "$busy"
			return
		fi
		if [ $(($(date +%s) - start)) -ge "$IDLE_TIMEOUT" ]; then
			echo "bench-live.sh: warning: machine still ${busy}% busy after ${IDLE_TIMEOUT} s (idle is <= ${IDLE_BUSY}%); measuring anyway" >&2
			echo "$busy"
			return
		fi
	done
}

lab_up >/dev/null
SMAC=$(lab_server_mac)
"$UNMASK" fixtures --out "$W/fixtures.pcap" >/dev/null 2>"$W/fixtures.log"
for mode in tap inline; do
	cat >"$W/$mode.toml" <<TOML
[verdict]
mode = "monitor"
bypass = "$BYPASS"
[live]
topology = "$mode"
ports = $(lab_ports "$mode")
workers = 1
control_socket = "$W/control.sock"
[datapath]
# The raw loops run with --first-core 1: the same core for the worker.
pin_cores = true
first_core = 1
TOML
done

# pin_napi PORTS...: thread the NAPI of the appliance ports and pin it to the worker's core
# (veth creates its NAPI only once XDP is attached, so after every start).
pin_napi() {
	[ "$NAPI" = threaded ] || return 0
	local port pid
	for port in "$@"; do
		ip netns exec "$P-appliance" sh -c "echo 1 > /sys/class/net/$port/threaded" 2>/dev/null || true
		for pid in $(ps -eo pid,comm | awk -v n="napi/$port-" 'index($2, n) == 1 {print $1}'); do
			taskset -pc 1 "$pid" >/dev/null 2>&1 || true
		done
	done
}

# measure PAIR KIND MODE SIDE: one run; appends a line to $W/runs.tsv.
measure() {
	local pair=$1 kind=$2 mode=$3 side=$4 busy log out
	local tag="$pair-$kind-$mode-$side"
	out="$W/$tag.out"
	log="$W/$tag.err"
	busy=$(wait_idle)
	case "$mode-$side" in
	tap-raw) cmd=("$DIAG" rx-drop --iface "${P}a" --first-core 1) ;;
	inline-raw) cmd=("$DIAG" forward --a "${P}a" --b "${P}b" --first-core 1) ;;
	*-unmask) cmd=("$UNMASK" run --config "$W/$mode.toml" --eve "$W/eve.json" --report "$W/$tag.report.json") ;;
	esac
	rm -f "$W/eve.json"
	ip netns exec "$P-appliance" "${cmd[@]}" >"$out" 2>"$log" &
	rcv_pid=$!
	if ! lab_wait_ready "$rcv_pid" 150 "$out" "$log"; then
		echo "bench-live.sh: ${cmd[*]} did not get ready:" >&2
		cat "$log" >&2
		exit 1
	fi
	if [ "$mode" = tap ]; then pin_napi "${P}a"; else pin_napi "${P}a" "${P}b"; fi
	sleep 0.3
	if [ "$kind" = tcp64 ]; then
		ip netns exec "$P-client" "$DIAG" gen --iface "${P}c" --seconds "$SECS" --core 0 \
			--dst-mac "$SMAC" $REPEAT >"$W/$tag.gen" 2>"$W/$tag.gen.err" ||
			{ echo "bench-live.sh: the generator failed:" >&2; cat "$W/$tag.gen.err" >&2; exit 1; }
	else
		# --loop 0 repeats until --duration; --no-flow-stats keeps tcpreplay's own flow
		# table (which --unique-ip would fill) out of the generator's cost.
		ip netns exec "$P-client" taskset -c 0 tcpreplay --topspeed --preload-pcap --loop 0 \
			--unique-ip --no-flow-stats --duration "$SECS" --intf1="${P}c" \
			"$W/fixtures.pcap" >"$W/$tag.gen" 2>&1 ||
			{ echo "bench-live.sh: tcpreplay failed:" >&2; cat "$W/$tag.gen" >&2; exit 1; }
	fi
	sleep 0.5
	kill -TERM "$rcv_pid"
	if ! wait "$rcv_pid"; then
		echo "bench-live.sh: ${cmd[*]} failed:" >&2
		cat "$log" >&2
		exit 1
	fi
	rcv_pid=""
	python3 - "$W" "$tag" "$kind" "$side" "$pair" "$mode" "$busy" >>"$W/runs.tsv" <<'PY'
import json, re, sys
w, tag, kind, side, pair, mode, busy = sys.argv[1:8]
g = open(f"{w}/{tag}.gen").read()
if kind == "tcp64":
    j = json.loads(g.strip().splitlines()[-1])
    sent, secs = j["sent"], j["seconds"]
else:
    sent = int(re.search(r"Actual: (\d+) packets", g).group(1))
    secs = float(re.search(r"sent in ([\d.]+) seconds", g).group(1))
if side == "raw":
    r = json.loads(open(f"{w}/{tag}.out").read().strip().splitlines()[-1])
else:
    r = json.load(open(f"{w}/{tag}.report.json"))["datapath"]
NAMES = ["foreign_port", "non_tcp", "blocked", "bypassed", "to_socket", "unsure", "no_socket", "expired"]
reasons = {n: x["packets"] for n, x in zip(NAMES, r["xdp"]["reasons"])}
rx = sum(wk["stats"]["rx"] for wk in r["workers"])
# Frames the XDP program settled without the socket: they were handled, just not in userspace.
kernel = reasons["non_tcp"] + reasons["blocked"] + reasons["bypassed"]
socks = [s for wk in r["workers"] for _, s in wk["sockets"]]
ring = sum(s.get("rx_dropped", 0) + s.get("rx_ring_full", 0) for s in socks)
fill = sum(s.get("rx_fill_ring_empty_descs", 0) for s in socks)
print("\t".join(str(x) for x in (pair, kind, mode, side, sent, f"{secs:.3f}", rx, kernel, ring, fill, busy)))
PY
}

printf 'pair\tkind\tmode\tside\tsent\tsecs\trx\tkernel\tring_drop\tfill_empty\tbusy\n' >"$W/runs.tsv"
total=0
for kind in ${KINDS//,/ }; do for mode in ${MODES//,/ }; do total=$((total + 2 * PAIRS)); done; done
echo "bench-live.sh: $total runs of ${SECS} s (${PAIRS} pairs x kinds {$KINDS} x modes {$MODES}), lab $P, NAPI $NAPI, unmask bypass $BYPASS${REPEAT:+, tcp64 $REPEAT}" >&2
n=0
for pair in $(seq "$PAIRS"); do
	for kind in ${KINDS//,/ }; do
		for mode in ${MODES//,/ }; do
			# Alternate which side goes first, so a trend in the machine's load evens out.
			if [ $((pair % 2)) = 1 ]; then sides="raw unmask"; else sides="unmask raw"; fi
			for side in $sides; do
				n=$((n + 1))
				measure "$pair" "$kind" "$mode" "$side"
				tail -n 1 "$W/runs.tsv" | awk -F'\t' -v n="$n" -v t="$total" \
					'{printf "bench-live.sh: [%d/%d] pair %s %s %s %s: %.0f pps handled (sent %.0f pps, machine %s%% busy before)\n", n, t, $1, $2, $3, $4, ($7 + $8) / $6, $5 / $6, $11}' >&2
			done
		done
	done
done

REPRO="scripts/bench-live.sh${ARGS[*]:+ ${ARGS[*]}}"
[ -n "${LAB_PREFIX:-}" ] && REPRO="LAB_PREFIX=$LAB_PREFIX $REPRO"
[ "$NAPI" != threaded ] && REPRO="NAPI=$NAPI $REPRO"
python3 - "$W/runs.tsv" "$STRICT" "$REPRO" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
	"$(uname -r)" "$IDLE_BUSY" "$BYPASS" <<'PY'
import statistics, sys
path, strict, repro, commit, kernel, idle_busy, bypass = sys.argv[1:8]
rows = [l.split("\t") for l in open(path).read().splitlines()[1:]]
runs = {}
for pair, kind, mode, side, sent, secs, rx, kern, ring, fill, busy in rows:
    secs = float(secs)
    runs[(kind, mode, int(pair), side)] = dict(
        sent=int(sent), secs=secs, handled=int(rx) + int(kern), rx=int(rx), kernel=int(kern),
        pps=(int(rx) + int(kern)) / secs if secs else 0.0, sent_pps=int(sent) / secs if secs else 0.0,
        ring=int(ring), fill=int(fill), busy=int(busy))
TARGET = {"tap": 0.95, "inline": 0.85}
LOSSLESS = 0.01
RAW = {"tap": "unmask-diag rx-drop", "inline": "unmask-diag forward"}
UNM = {"tap": f"unmask run (tap, bypass {bypass})",
       "inline": f"unmask run (inline, monitor, bypass {bypass})"}

print()
print("runs (pps = frames handled by the receiver / generator window; kernel = settled by XDP "
      "without the socket; loss = 1 - handled/sent)")
head = ("pair", "traffic", "mode", "receiver", "sent pps", "handled pps", "socket rx", "kernel",
        "loss", "ring drops", "busy before")
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for (kind, mode, pair, side), r in sorted(runs.items()):
    loss = 1 - r["handled"] / r["sent"] if r["sent"] else 0.0
    name = RAW[mode] if side == "raw" else UNM[mode]
    print(f"| {pair} | {kind} | {mode} | {name} | {r['sent_pps']:,.0f} | {r['pps']:,.0f} | "
          f"{r['rx']:,} | {r['kernel']:,} | {loss:.1%} | {r['ring']:,} | {r['busy']}% |")

print()
print("ratios unmask / raw, per pair: handled pps over handled pps; g = neither receiver lost "
      f"frames (loss < {LOSSLESS:.0%}), so pps followed the generator and the ratio is the "
      "delivered shares' instead ((handled/sent) over (handled/sent))")
head = ("traffic", "mode", "per-pair ratios", "median", "min", "max", "target", "")
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
below = []
cases = sorted({(k, m) for k, m, _, _ in runs}, key=lambda c: (c[0] != "tcp64", c[1] != "tap"))
for kind, mode in cases:
    ratios, shown = [], []
    for pair in sorted({p for k, m, p, _ in runs if (k, m) == (kind, mode)}):
        raw, unm = runs.get((kind, mode, pair, "raw")), runs.get((kind, mode, pair, "unmask"))
        if not (raw and unm and raw["pps"] > 0 and raw["sent"] > 0 and unm["sent"] > 0):
            continue
        share = lambda r: r["handled"] / r["sent"]
        if 1 - share(raw) < LOSSLESS and 1 - share(unm) < LOSSLESS:
            ratios.append(share(unm) / share(raw))
            shown.append(f"{ratios[-1]:.3f}g")
        else:
            ratios.append(unm["pps"] / raw["pps"])
            shown.append(f"{ratios[-1]:.3f}")
    if not ratios:
        continue
    med = statistics.median(ratios)
    ok = med >= TARGET[mode]
    if not ok:
        below.append(f"{kind} {mode}: median {med:.3f} < target {TARGET[mode]:.2f}")
    print(f"| {kind} | {mode} | {' '.join(shown)} | {med:.3f} | "
          f"{min(ratios):.3f} | {max(ratios):.3f} | >= {TARGET[mode]:.2f} | "
          f"{'meets' if ok else 'BELOW'} |")
busy = [r["busy"] for r in runs.values()]
print()
print(f"machine before each run: {min(busy)}-{max(busy)}% busy (idle is <= {idle_busy}%); "
      f"commit {commit}, kernel {kernel}")
print(f"reproduce: {repro}")
if below:
    print(("FAIL " if strict else "note: ") + "; ".join(below)
          + ("" if strict else " (targets are goals; --strict makes this an error)"))
    if strict:
        sys.exit(1)
PY
