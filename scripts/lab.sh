#!/usr/bin/env bash
# Lab: client <-> appliance (ports A, B) <-> server, in network namespaces joined by veths.
#
#   ${P}-client            ${P}-appliance                 ${P}-server
#   ${P}c 10.77.0.1 ==veth== ${P}a [unmask] ${P}b ==veth== ${P}s 10.77.0.2
#         fd77::1/64                                       fd77::2/64
#
# The appliance ports have no addresses: it is a bump in the wire, and client and server share
# one L2 segment only through it. Nothing passes until something bridges A and B (unmask, or
# `lab.sh bridge` for a plain Linux bridge to check the lab itself).
#
# Usage: scripts/lab.sh up|down|status|bridge|unbridge
# Env:   LAB_PREFIX (default unmask; keep it short: interface names are ${P}c, ${P}a, ...,
#        limited to 15 characters), LAB_QUEUES (default 1).
#
# The set-up and the teardown are scripts/lib/lab.sh's, shared with the scripts that run a lab
# of their own (demo, replay, flood, soak, bench-live); up and down refuse a lab that one of
# those claimed while it is still running.
set -euo pipefail
# shellcheck source=scripts/lib/lab.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

lab_init "${LAB_PREFIX:-unmask}" "${LAB_QUEUES:-1}" || exit 2

case "${1:-}" in
up) lab_up ;;
down) lab_down ;;
status) lab_status ;;
bridge) lab_bridge ;;
unbridge) lab_unbridge ;;
*)
	echo "usage: $0 up|down|status|bridge|unbridge" >&2
	exit 2
	;;
esac
