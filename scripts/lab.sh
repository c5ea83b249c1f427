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
# veth facts handled here (see DATAPATH-NOTES):
#  - endpoints send TCP with checksums left to "hardware"; frames re-sent through AF_XDP would
#    arrive with bad checksums, so TX checksum offload is off on the endpoints;
#  - an XDP redirect into a veth is dropped unless its peer has an XDP program or GRO on: GRO
#    is on on the endpoints (the peers of the appliance ports we redirect into);
#  - XDP on a veth needs numrxqueues >= the peer's numtxqueues: both ends get LAB_QUEUES.
set -euo pipefail

P="${LAB_PREFIX:-unmask}"
Q="${LAB_QUEUES:-1}"
NS_C="${P}-client"
NS_A="${P}-appliance"
NS_S="${P}-server"
IF_C="${P}c"
IF_A="${P}a"
IF_B="${P}b"
IF_S="${P}s"

if [ "${#IF_C}" -gt 15 ]; then
	echo "lab.sh: LAB_PREFIX '$P' is too long (interface names are limited to 15 characters)" >&2
	exit 2
fi

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

down() {
	for ns in "$NS_C" "$NS_A" "$NS_S"; do
		if ns_exists "$ns"; then
			# Processes a test left in the namespace (servers, clients, the appliance).
			for pid in $(ip netns pids "$ns" 2>/dev/null); do
				kill -9 "$pid" 2>/dev/null || true
			done
			ip netns del "$ns" 2>/dev/null || true
		fi
	done
	# Deleting a namespace deletes its veth ends; a half-built lab may have left one in ours.
	for i in "$IF_C" "$IF_A" "$IF_B" "$IF_S"; do
		ip link del "$i" 2>/dev/null || true
	done
}

up() {
	down
	trap 'echo "lab.sh: up failed, cleaning up" >&2; down' ERR
	ip netns add "$NS_C"
	ip netns add "$NS_A"
	ip netns add "$NS_S"
	ip link add "$IF_C" netns "$NS_C" numtxqueues "$Q" numrxqueues "$Q" type veth \
		peer name "$IF_A" netns "$NS_A" numtxqueues "$Q" numrxqueues "$Q"
	ip link add "$IF_S" netns "$NS_S" numtxqueues "$Q" numrxqueues "$Q" type veth \
		peer name "$IF_B" netns "$NS_A" numtxqueues "$Q" numrxqueues "$Q"

	# The appliance is silent: no addresses, no IPv6 autoconfiguration on its ports.
	ip netns exec "$NS_A" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	ip netns exec "$NS_A" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	for i in "$IF_A" "$IF_B"; do
		ip -n "$NS_A" link set "$i" up
	done
	ip -n "$NS_A" link set lo up

	local ns ifc addr addr6
	for spec in "$NS_C $IF_C 10.77.0.1 fd77::1" "$NS_S $IF_S 10.77.0.2 fd77::2"; do
		read -r ns ifc addr addr6 <<<"$spec"
		ip -n "$ns" link set lo up
		ip -n "$ns" addr add "$addr/24" dev "$ifc"
		ip -n "$ns" addr add "$addr6/64" dev "$ifc" nodad
		ip -n "$ns" link set "$ifc" up
		ip netns exec "$ns" ethtool -K "$ifc" tx off >/dev/null
		ip netns exec "$ns" ethtool -K "$ifc" gro on >/dev/null
	done
	trap - ERR
	echo "lab $P up: $NS_C($IF_C) <-> $NS_A($IF_A,$IF_B) <-> $NS_S($IF_S), $Q queue(s)"
}

# A plain Linux bridge across the appliance, to check the lab without unmask.
bridge() {
	ip -n "$NS_A" link add "${P}br" type bridge
	ip -n "$NS_A" link set "$IF_A" master "${P}br"
	ip -n "$NS_A" link set "$IF_B" master "${P}br"
	ip -n "$NS_A" link set "${P}br" up
}

unbridge() {
	ip -n "$NS_A" link del "${P}br" 2>/dev/null || true
}

status() {
	for ns in "$NS_C" "$NS_A" "$NS_S"; do
		echo "== $ns"
		ip -n "$ns" -br link 2>/dev/null || echo "(absent)"
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
bridge) bridge ;;
unbridge) unbridge ;;
*)
	echo "usage: $0 up|down|status|bridge|unbridge" >&2
	exit 2
	;;
esac
