#!/usr/bin/env bash
# Precision report: per finding kind, alerts and blocks per 10,000 benign flows (the benign
# corpus, the benign captures of ../shared/pcaps, the proxy lab's benign scenarios), beside the
# same counts on the proxy lab's impersonation scenarios and the recall per scenario, so a
# change that buys precision with recall shows it. See docs/precision.md.
#
#   scripts/bench-precision.sh [--corpus DIR] [--lab DIR] [--fresh] [--quick] [--config FILE]
#
# Without --corpus/--lab it uses ${TMPDIR:-/tmp}/corpus-out and ${TMPDIR:-/tmp}/proxylab-out,
# and makes them first when missing or with --fresh (scripts/corpus.sh run, scripts/proxylab.sh
# run; --quick makes the reduced ones). unmask: target/release/unmask, built when missing.
# Writes the report's numbers to <corpus>/precision.json. Exits 1 when a benign flow was blocked.
set -euo pipefail
cd "$(dirname "$0")/.."

corpus="${TMPDIR:-/tmp}/corpus-out"
lab="${TMPDIR:-/tmp}/proxylab-out"
fresh=0
quick=()
config=()
while [ $# -gt 0 ]; do
	case "$1" in
	--corpus) corpus="$2"; shift ;;
	--lab) lab="$2"; shift ;;
	--fresh) fresh=1 ;;
	--quick) quick=(--quick) ;;
	--config) config=(--config "$2"); shift ;;
	-h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	*) echo "bench-precision.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

if [ ! -x target/release/unmask ]; then
	cargo build --release --locked --bin unmask
fi
if [ "$fresh" -eq 1 ] || [ ! -f "$corpus/manifest.json" ]; then
	bash scripts/corpus.sh run "${quick[@]}" --out "$corpus"
fi
if [ "$fresh" -eq 1 ] || [ ! -f "$lab/manifest.json" ]; then
	bash scripts/proxylab.sh run "${quick[@]}" --out "$lab"
fi
shared=()
if [ -d ../shared/pcaps/ndpi ]; then
	shared=(--shared ../shared/pcaps)
else
	echo "bench-precision.sh: ../shared/pcaps absent: its benign captures skipped" >&2
fi
exec python3 scripts/corpus/precision.py --unmask target/release/unmask "${config[@]}" \
	--corpus "$corpus" --lab "$lab" "${shared[@]}" --json "$corpus/precision.json"
