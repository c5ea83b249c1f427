#!/usr/bin/env bash
# The evasion suite, live and offline, as one table: strategy x (flagged flow detected and cut in
# block mode, benign flow intact), live (tests/lab_evasion.rs: a raw-socket client through
# `unmask run` in the namespace lab) next to offline (the same strategy's fixture from
# scripts/evasion_pcaps.py replayed through the engine). The test fails unless every cell is
# yes and live equals offline; the offline suite alone is tests/evasion.rs.
#
#   scripts/evasion.sh
#
# Needs root (network namespaces, raw sockets) and the lab tools of `bash scripts/deps.sh`.
# Takes about 20 s after the build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" != 0 ]; then
	echo "evasion.sh: needs root (network namespaces, raw sockets)" >&2
	exit 2
fi
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
status=0
cargo test --locked --test lab_evasion -- --nocapture >"$out" 2>&1 || status=$?
if grep -q 'lab_evasion: skipped' "$out"; then
	grep 'lab_evasion: skipped' "$out" >&2
	exit 2
fi
grep '^|' "$out" || true
if [ "$status" != 0 ]; then
	grep -A20 'panicked' "$out" >&2 || tail -40 "$out" >&2
	exit "$status"
fi
echo "live = offline, all yes"
