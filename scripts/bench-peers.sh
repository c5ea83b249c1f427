#!/usr/bin/env bash
# Replay packets/s of unmask against its peers on the same capture files, side by side in one
# run (issue 13): ndpiReader (nDPI, Debian libndpi-bin) always, Suricata when it is installed.
# Every tool reads the same file from the page cache (read once before timing); each tool runs
# --runs times per input and the best wall time counts (the machine is shared: the best run is
# the one least disturbed). packets/s = frames in the file / best wall time of the whole process
# (start-up included). Each tool's own processing figure is printed beside it when it reports one
# (unmask: its summary's rate line; ndpiReader: "Packet Processing Time", from one extra run
# without -q): start-up (nDPI's is ~0.1-0.3 s of automata) matters only on small inputs.
#
# Inputs (written once under a temporary directory, deleted at exit unless --keep):
#   established  --packets 64-byte frames (60 captured) of 64 HTTPS flows: handshake and TLS 1.2
#                handshake first, then 6-byte application-data segments from the server and the
#                client's bare ACKs (examples/peer_capture.rs): the packets of decided flows
#   midstream    --packets 64-byte frames of 64 one-directional flows seen from the middle
#                (bench-live.sh's tcp64 shape): flows no tool can decide
#   mix          the real captures in ../shared/pcaps (or --mix DIR, e.g. a proxy lab run's
#                directory) looped into one Ethernet capture of at least --mix-packets frames,
#                each pass on moved addresses so it is new flows (scripts/lib/pcap_loop.py);
#                skipped with a message when the folder is absent
#
#   scripts/bench-peers.sh [--runs N] [--packets N] [--mix-packets N] [--mix DIR]
#                          [--inputs established,midstream,mix] [--config FILE] [--json FILE]
#                          [--keep] [--no-build]
#
#   --runs N         timed runs per tool and input (default 3)
#   --packets N      frames of the 64-byte inputs (default 10000000: ~0.76 GB each)
#   --mix-packets N  at least this many frames in the looped mix (default 2000000)
#   --mix DIR        captures for the mix (default ../shared/pcaps)
#   --inputs LIST    subset of inputs (default all three)
#   --config FILE    unmask config for its runs (default: built-in defaults; flow records are
#                    written, to /dev/null, as deployed)
#   --json FILE      where the summary goes (default bench-peers.json in the work directory,
#                    printed at the end; with --keep it stays)
#   --keep           keep the work directory (captures, logs, summary)
#   --no-build       use the binaries in place (default: cargo build --release)
# Env: TMPDIR (where the work directory goes), CARGO_TARGET_DIR.
# The issue's goals, printed beside the ratios (not asserted): unmask/ndpiReader >= 3 on the
# established input and >= 5 on the mix.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
PACKETS=10000000
MIX_PACKETS=2000000
MIX_DIR=../shared/pcaps
INPUTS="established,midstream,mix"
CONFIG=""
JSON=""
KEEP=""
BUILD=1
usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d' >&2; exit 2; }
need() { [ $# -ge 2 ] || { echo "bench-peers.sh: $1 needs a value" >&2; usage; }; }
number() { case "$2" in '' | *[!0-9]*) echo "bench-peers.sh: $1 $2: expected a whole number" >&2; exit 2 ;; esac; }
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) need "$@"; number "$1" "$2"; RUNS="$2"; shift ;;
	--packets) need "$@"; number "$1" "$2"; PACKETS="$2"; shift ;;
	--mix-packets) need "$@"; number "$1" "$2"; MIX_PACKETS="$2"; shift ;;
	--mix) need "$@"; MIX_DIR="$2"; shift ;;
	--inputs) need "$@"; INPUTS="$2"; shift ;;
	--config) need "$@"; CONFIG="$(readlink -f "$2")"; shift ;;
	--json) need "$@"; JSON="$2"; shift ;;
	--keep) KEEP=1 ;;
	--no-build) BUILD="" ;;
	-h | --help) usage ;;
	*) echo "bench-peers.sh: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done
[ "$RUNS" -ge 1 ] || { echo "bench-peers.sh: --runs $RUNS: at least 1" >&2; exit 2; }
for i in ${INPUTS//,/ }; do
	case "$i" in established | midstream | mix) ;; *) echo "bench-peers.sh: --inputs $i: accepted: established, midstream, mix" >&2; exit 2 ;; esac
done
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || { echo "bench-peers.sh: --config $CONFIG: no such file" >&2; exit 2; }

command -v ndpiReader >/dev/null || { echo "bench-peers.sh: ndpiReader not found (apt install libndpi-bin; scripts/deps.sh)" >&2; exit 1; }
if [ -n "$BUILD" ]; then
	nice -n 10 cargo build --release --locked --quiet --bin unmask --example peer_capture
fi
rel=$(readlink -f "${CARGO_TARGET_DIR:-$PWD/target}")/release
for b in "$rel/unmask" "$rel/examples/peer_capture"; do
	[ -x "$b" ] || { echo "bench-peers.sh: $b missing (run without --no-build)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/unmask-peers.XXXXXX")
if [ -n "$KEEP" ]; then
	trap 'echo "bench-peers.sh: kept $WORK" >&2' EXIT
else
	trap 'rm -rf "$WORK"' EXIT
fi
JSON="${JSON:-$WORK/bench-peers.json}"

declare -a CAPS=()
for i in ${INPUTS//,/ }; do
	case "$i" in
	established | midstream)
		echo "bench-peers.sh: writing $i: $PACKETS frames" >&2
		"$rel/examples/peer_capture" "$i" "$PACKETS" "$WORK/$i.pcap"
		CAPS+=("$i=$WORK/$i.pcap")
		;;
	mix)
		if [ ! -d "$MIX_DIR" ]; then
			echo "bench-peers.sh: mix: $MIX_DIR absent, skipped" >&2
			continue
		fi
		echo "bench-peers.sh: writing mix: captures under $MIX_DIR looped to >= $MIX_PACKETS frames" >&2
		python3 scripts/lib/pcap_loop.py --out "$WORK/mix.pcap" --packets "$MIX_PACKETS" "$MIX_DIR" >"$WORK/mix.json"
		CAPS+=("mix=$WORK/mix.pcap")
		;;
	esac
done
[ ${#CAPS[@]} -gt 0 ] || { echo "bench-peers.sh: no input to measure" >&2; exit 1; }

python3 - "$rel/unmask" "$CONFIG" "$RUNS" "$JSON" "$WORK" "${CAPS[@]}" <<'PY'
import json, os, re, shutil, subprocess, sys, time

unmask, config, runs, out_json, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
caps = [a.split("=", 1) for a in sys.argv[6:]]
GOAL = {"established": 3.0, "mix": 5.0}

def frames_in(path):
    """Records in a classic pcap written by peer_capture or pcap_loop (little-endian)."""
    n, off, size = 0, 24, os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(24)
        while off < size:
            h = f.read(16)
            if len(h) < 16:
                break
            incl = int.from_bytes(h[8:12], "little")
            f.seek(incl, 1)
            off += 16 + incl
            n += 1
    return n

def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass

def timed(cmd, log):
    with open(log, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=err, stderr=subprocess.STDOUT)
        t = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench-peers.sh: {' '.join(cmd)} exited {p.returncode}; see {log}")
    return t

def unmask_cmd(path):
    cmd = [unmask, "replay", "--no-progress", "--eve", "/dev/null"]
    if config:
        cmd += ["--config", config]
    return cmd + [path]

def unmask_own(log):
    text = open(log, errors="replace").read()
    m = re.search(r"packets\s+(\d+)", text)
    r = re.search(r"rate\s+(\d+) packets/s \(([\d.]+) s\)", text)
    return {"packets": int(m.group(1)) if m else None,
            "engine_seconds": float(r.group(2)) if r else None,
            "own_pps": int(r.group(1)) if r else None}

def ndpi_own(path, log):
    with open(log, "wb") as o:
        subprocess.run(["ndpiReader", "-i", path], stdout=o, stderr=subprocess.STDOUT, check=True)
    text = open(log, errors="replace").read()
    pt = re.search(r"Packet Processing Time:\s+([\d.]+)\s*(msec|sec|usec)", text)
    st = re.search(r"Setup Time:\s+([\d.]+)\s*(msec|sec|usec)", text)
    tot = re.search(r"IP packets:\s+\d+\s+of\s+(\d+) packets total", text)
    scale = {"usec": 1e-6, "msec": 1e-3, "sec": 1.0}
    s = float(pt.group(1)) * scale[pt.group(2)] if pt else None
    return {"packets": int(tot.group(1)) if tot else None,
            "setup_seconds": float(st.group(1)) * scale[st.group(2)] if st else None,
            "processing_seconds": s}

suricata = shutil.which("suricata")
if not suricata:
    print("suricata: not installed, skipped", file=sys.stderr)
tools = [("unmask", unmask_cmd), ("ndpiReader", lambda p: ["ndpiReader", "-q", "-i", p])]
if suricata:
    sdir = os.path.join(work, "suricata-logs")
    os.makedirs(sdir, exist_ok=True)
    # Single-threaded, checksums not verified (as the other two), logs to the work directory.
    tools.append(("suricata", lambda p: [suricata, "-r", p, "-k", "none", "--runmode", "single",
                                         "-l", sdir]))

summary = {"runs": runs, "unmask_config": config or "built-in defaults",
           "unmask_command": " ".join(unmask_cmd("FILE")),
           "ndpiReader_command": "ndpiReader -q -i FILE", "inputs": {}}
if suricata:
    summary["suricata_command"] = f"{suricata} -r FILE -k none --runmode single -l DIR"
mixinfo = os.path.join(work, "mix.json")
for name, path in caps:
    n = frames_in(path)
    warm(path)
    entry = {"frames": n, "bytes": os.path.getsize(path), "tools": {}}
    if name == "mix" and os.path.exists(mixinfo):
        entry["mix"] = json.load(open(mixinfo))
    print(f"\n{name}: {n} frames, {os.path.getsize(path) / 1e6:.0f} MB", file=sys.stderr)
    # Alternate the tools run by run, so a change in the machine's load hits both.
    walls = {t: [] for t, _ in tools}
    for r in range(runs):
        for t, cmd in tools:
            walls[t].append(timed(cmd(path), os.path.join(work, f"{name}.{t}.{r}.log")))
    for t, _ in tools:
        best = min(walls[t])
        e = {"wall_seconds": [round(w, 4) for w in walls[t]], "best_seconds": round(best, 4),
             "pps": round(n / best)}
        if t == "unmask":
            e.update(unmask_own(os.path.join(work, f"{name}.{t}.{walls[t].index(best)}.log")))
        elif t == "ndpiReader":
            e.update(ndpi_own(path, os.path.join(work, f"{name}.ndpiReader.verbose.log")))
            if e.get("processing_seconds"):
                e["own_pps"] = round(n / e["processing_seconds"])
        entry["tools"][t] = e
        own = f", own figure {e['own_pps'] / 1e6:.2f} Mpps" if e.get("own_pps") else ""
        print(f"  {t:<11} best {best:7.3f} s of {runs}: {n / best / 1e6:6.2f} Mpps{own}",
              file=sys.stderr)
    u, d = entry["tools"]["unmask"], entry["tools"]["ndpiReader"]
    entry["ratio_unmask_ndpiReader"] = round(u["pps"] / d["pps"], 2)
    if u.get("own_pps") and d.get("own_pps"):
        entry["ratio_own_figures"] = round(u["own_pps"] / d["own_pps"], 2)
    goal = GOAL.get(name)
    entry["goal"] = goal
    own = (f" (own figures: {entry['ratio_own_figures']}x)" if "ratio_own_figures" in entry else "")
    print(f"  unmask/ndpiReader {entry['ratio_unmask_ndpiReader']}x"
          + (f", goal >= {goal}x" if goal else "") + own, file=sys.stderr)
    if "suricata" in entry["tools"]:
        entry["ratio_unmask_suricata"] = round(u["pps"] / entry["tools"]["suricata"]["pps"], 2)
    summary["inputs"][name] = entry
with open(out_json, "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps(summary, indent=1))
print(f"\nbench-peers.sh: summary in {out_json}", file=sys.stderr)
PY
