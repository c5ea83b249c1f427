#!/usr/bin/env bash
# The proxy lab: real captures of proxy traffic (fully encrypted and TLS-in-TLS) and benign
# traffic across a delayed link, and a comparison of unmask with nDPI on them.
#
#   scripts/proxylab.sh run [--quick] [--out DIR] [--only NAME[,NAME...]] [--delay-ms MS] [--site-delay-ms MS] [--client C]
#   scripts/proxylab.sh compare DIR [--unmask BIN]
#   scripts/proxylab.sh list
#   scripts/proxylab.sh cleanup            # remove a lab left by a killed run (same PROXYLAB_PREFIX)
#
# run: DIR (default ${TMPDIR:-/tmp}/proxylab-out) gets <scenario>-tls12.pcap and -tls13.pcap
# (<scenario>.pcap for benign non-TLS scenarios), manifest.json and logs/. --delay-ms is the one-way delay of the
# client <-> proxy link (default 15, so ~30 ms RTT), --site-delay-ms that of the proxy <-> site link (default
# 0: a plain veth). --quick: 3 connections per capture, else 10.
# --client: the inner client, curl (default), chromium (headless Chromium loading a page; only the
# scenarios it can drive; pcaps <scenario>-chromium-tls12.pcap / -tls13.pcap) or curl,chromium.
# Env: PROXYLAB_PREFIX (default pl<pid>; at most 10 characters: interface names are
# <prefix>tc, <prefix>vp, ...). Needs root and `bash scripts/deps.sh proxylab`.
# See scripts/proxylab/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LABDIR="$HERE/proxylab"
PY="$(command -v /usr/bin/python3 || command -v python3)"
# shellcheck source=scripts/lib/driver.sh
. "$HERE/lib/driver.sh"
PREFIX="${PROXYLAB_PREFIX:-pl$$}"

usage() {
	sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
shift

case "$cmd" in
run)
	driver_preflight proxylab.sh PROXYLAB_PREFIX "$PREFIX"
	out="${TMPDIR:-/tmp}/proxylab-out"
	client=curl
	args=()
	while [ $# -gt 0 ]; do
		case "$1" in
		--quick) args+=(--quick) ;;
		--out) out="$2"; shift ;;
		--only) args+=(--only "$2"); shift ;;
		--delay-ms) args+=(--delay-ms "$2"); shift ;;
		--site-delay-ms) args+=(--site-delay-ms "$2"); shift ;;
		--client) args+=(--client "$2"); client="$2"; shift ;;
		--keep-work) args+=(--keep-work) ;;
		-h | --help) usage ;;
		*) echo "proxylab.sh: unknown option $1" >&2; usage ;;
		esac
		shift
	done
	missing=()
	for b in ss-server ss-local obfs-server ss-v2ray-plugin v2ray trojan obfs4proxy stunnel4 tinyproxy \
		nginx fcgiwrap /usr/sbin/sshd ssh scp git tcpdump curl openssl ip ss; do
		command -v "$b" >/dev/null 2>&1 || missing+=("$b")
	done
	case ",$client," in
	*,chromium,*)
		for b in /usr/lib/chromium/chromium certutil; do
			command -v "$b" >/dev/null 2>&1 || missing+=("$b")
		done
		;;
	esac
	if [ "${#missing[@]}" -gt 0 ]; then
		echo "proxylab.sh: missing ${missing[*]}; run: bash scripts/deps.sh proxylab" >&2
		exit 1
	fi
	driver_run "$LABDIR/lab.py" "$PREFIX" "$out" "${args[@]}"
	;;
compare)
	[ $# -ge 1 ] || usage
	exec "$PY" "$LABDIR/compare.py" "$@"
	;;
list)
	exec "$PY" "$LABDIR/lab.py" list
	;;
cleanup)
	exec "$PY" "$LABDIR/lab.py" cleanup --prefix "$PREFIX"
	;;
*)
	usage
	;;
esac
