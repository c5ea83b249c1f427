#!/usr/bin/env bash
# The benign corpus: real clients (curl, wget, Python requests/httpx/aiohttp/urllib, Go, Node,
# Java, git, apt, ffmpeg, openssl, OpenSSH, psql, redis-cli, Chromium, Firefox ESR) against real
# servers (nginx, apache2, lighttpd, h2o, Python, Node, OpenSSH, PostgreSQL, Redis, Postfix,
# Dovecot) in the namespace lab, captured on the client's leg: what every finding is
# calibrated on. See docs/precision.md.
#
#   scripts/corpus.sh run [--quick] [--out DIR] [--only NAME[,NAME...]] [--reps N] [--delay-ms MS]
#   scripts/corpus.sh list
#   scripts/corpus.sh cleanup            # remove a lab left by a killed run (same CORPUS_PREFIX)
#
# run: DIR (default ${TMPDIR:-/tmp}/corpus-out) gets <scenario>.pcap, manifest.json and logs/.
# --quick: 2 sessions per scenario (browsers 1), as the test command runs it; else the table's
# count. Env: CORPUS_PREFIX (default co<pid>, at most 10 characters). Needs root and
# `bash scripts/deps.sh corpus`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="$(command -v /usr/bin/python3 || command -v python3)"
# shellcheck source=scripts/lib/driver.sh
. "$HERE/lib/driver.sh"
PREFIX="${CORPUS_PREFIX:-co$$}"

usage() {
	sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
shift

case "$cmd" in
run)
	driver_preflight corpus.sh CORPUS_PREFIX "$PREFIX"
	out="${TMPDIR:-/tmp}/corpus-out"
	args=()
	while [ $# -gt 0 ]; do
		case "$1" in
		--quick) args+=(--quick) ;;
		--out) out="$2"; shift ;;
		--only) args+=(--only "$2"); shift ;;
		--reps) args+=(--reps "$2"); shift ;;
		--delay-ms) args+=(--delay-ms "$2"); shift ;;
		-h | --help) usage ;;
		*) echo "corpus.sh: unknown option $1" >&2; usage ;;
		esac
		shift
	done
	missing=()
	for b in nginx fcgiwrap /usr/sbin/sshd ssh git tcpdump curl openssl ip ss ffmpeg dpkg-deb certutil; do
		command -v "$b" >/dev/null 2>&1 || missing+=("$b")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		echo "corpus.sh: missing ${missing[*]}; run: bash scripts/deps.sh proxylab && bash scripts/deps.sh corpus" >&2
		exit 1
	fi
	driver_run "$HERE/corpus/corpus.py" "$PREFIX" "$out" "${args[@]}"
	;;
list)
	exec "$PY" "$HERE/corpus/corpus.py" list
	;;
cleanup)
	exec "$PY" "$HERE/corpus/corpus.py" cleanup --prefix "$PREFIX"
	;;
*)
	usage
	;;
esac
