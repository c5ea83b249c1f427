# shellcheck shell=bash
# The namespace lab, shared by lab.sh, demo.sh, replay.sh, flood.sh, soak.sh and bench-live.sh.
# Sourced, not run: `. "$(dirname "$0")/lib/lab.sh"`.
#
#   ${P}-client            ${P}-appliance                 ${P}-server
#   ${P}c 10.77.0.1 ==veth== ${P}a [unmask] ${P}b ==veth== ${P}s 10.77.0.2
#         fd77::1/64                                       fd77::2/64
#
# Nothing leaves the namespaces: every veth end is created inside its namespace (none ever
# exists in the caller's), the client and the server only reach each other through the
# appliance, and the appliance ports have no addresses and no IPv6 at all.
#
# veth facts handled here (see DATAPATH-NOTES):
#  - endpoints send TCP with checksums left to "hardware"; frames re-sent through AF_XDP would
#    arrive with bad checksums, so TX checksum offload is off on the endpoints;
#  - an XDP redirect into a veth is dropped unless its peer has an XDP program or GRO on: GRO
#    is on on the endpoints (the peers of the appliance ports we redirect into);
#  - XDP on a veth needs numrxqueues >= the peer's numtxqueues: both ends get the same count.
#
# Functions:
#   lab_init PREFIX [QUEUES]  names the lab PREFIX (QUEUES queues per veth, default 1) in
#                             LAB_P, LAB_Q, LAB_NS_{CLIENT,APPLIANCE,SERVER} and
#                             LAB_IF_{CLIENT,A,B,SERVER}; fails when PREFIX is too long
#   lab_claim DEFAULT [QUEUES]
#                             picks this run's prefix and calls lab_init with it: LAB_PREFIX
#                             when set, else DEFAULT, else (DEFAULT taken by another run that is
#                             still going) DEFAULT followed by a number, so runs of the same
#                             script go side by side; the claim ends with the run
#   lab_up                    builds the lab (after tearing down what is left of one of the same
#                             prefix); prints one line; cleans up and fails when a step fails
#   lab_down                  kills every process in the lab's namespaces, detaches XDP from
#                             their ports, removes unmask's port locks there, deletes it all
#   lab_status, lab_bridge, lab_unbridge
#   lab_ports tap|inline      the appliance ports as a TOML array, for [live] ports
#   lab_server_mac            the server end's MAC address
#   lab_wait_ready PID TRIES FILE...
#                             waits (TRIES x 0.1 s at most, less if PID ends) for READY in FILE
#   lab_cleanup_on_exit       from here on, however the script ends (exit, failure under set -e,
#                             SIGINT, SIGTERM, SIGHUP): kills the processes named by
#                             lab_kill_at_exit, tears the lab down if this run brought it up,
#                             runs the lab_at_exit hooks in order, ends the claim
#   lab_kill_at_exit VAR...   at exit, kill -9 the pid each VAR holds then (empty: none)
#   lab_at_exit CODE          at exit, eval CODE (after the lab is down)
#
# Messages name lab.sh, the lab's own command, whichever script runs the lab.

LAB_CLAIM_DIR="${LAB_CLAIM_DIR:-/run/unmask-lab}"
_LAB_BUILT=""
_LAB_CLAIMED=""
_LAB_KILL_VARS=()
_LAB_HOOKS=()

lab_init() {
	LAB_P="$1"
	LAB_Q="${2:-1}"
	LAB_NS_CLIENT="${LAB_P}-client"
	LAB_NS_APPLIANCE="${LAB_P}-appliance"
	LAB_NS_SERVER="${LAB_P}-server"
	LAB_IF_CLIENT="${LAB_P}c"
	LAB_IF_A="${LAB_P}a"
	LAB_IF_B="${LAB_P}b"
	LAB_IF_SERVER="${LAB_P}s"
	if [ "${#LAB_IF_CLIENT}" -gt 15 ]; then
		echo "lab.sh: LAB_PREFIX '$LAB_P' is too long (interface names are limited to 15 characters)" >&2
		return 2
	fi
}

_lab_ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# _lab_started PID: the start time of process PID (field 22 of /proc/PID/stat), so that a
# claim is not taken for alive when its pid has been reused.
_lab_started() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# Fields after the command name, which may hold spaces: state is the first of them.
	stat="${stat##*) }"
	# shellcheck disable=SC2086 # split on purpose
	set -- $stat
	echo "${20}"
}

# _lab_claimant PREFIX: the pid of the run that claimed PREFIX when it is still going.
_lab_claimant() {
	local pid started
	read -r pid started 2>/dev/null <"$LAB_CLAIM_DIR/$1" || return 1
	[ -n "$pid" ] && [ "$(_lab_started "$pid")" = "$started" ] && echo "$pid"
}

# _lab_other_claimant PREFIX: as _lab_claimant, but not when the claimant is this run.
_lab_other_claimant() {
	local pid
	pid=$(_lab_claimant "$1") && [ "$pid" != "$$" ] && echo "$pid"
}

lab_claim() {
	local base="$1" p owner i=0 fd
	if ! mkdir -p "$LAB_CLAIM_DIR" 2>/dev/null || ! { exec {fd}>>"$LAB_CLAIM_DIR/.lock"; } 2>/dev/null; then
		# No claims where they cannot be written (not root): the lab itself needs root anyway.
		lab_init "${LAB_PREFIX:-$base}" "${2:-1}"
		return
	fi
	flock "$fd"
	if [ -n "${LAB_PREFIX:-}" ]; then
		p="$LAB_PREFIX"
		if owner=$(_lab_other_claimant "$p"); then
			exec {fd}>&-
			echo "lab.sh: lab '$p' belongs to a run that is still going (pid $owner): stop it," \
				"or choose another LAB_PREFIX (or none)" >&2
			return 2
		fi
	else
		p="$base"
		# A leftover of a run that is gone is taken over (lab_up tears it down first); one of
		# a run still going is not, nor, for a numbered prefix, any lab that exists.
		while owner=$(_lab_other_claimant "$p") ||
			{ [ "$p" != "$base" ] && _lab_ns_exists "${p}-appliance"; }; do
			i=$((i + 1))
			p="$base$((($$ + i) % 10000))"
		done
		if [ "$i" -gt 0 ]; then
			echo "$(basename "$0"): lab '$base' belongs to a run that is still going; this run's lab is '$p'" >&2
		fi
	fi
	if ! lab_init "$p" "${2:-1}"; then
		exec {fd}>&-
		return 2
	fi
	echo "$$ $(_lab_started $$)" >"$LAB_CLAIM_DIR/$p"
	_LAB_CLAIMED="$p"
	exec {fd}>&-
}

_lab_release() {
	[ -n "$_LAB_CLAIMED" ] || return 0
	if [ "$(_lab_claimant "$_LAB_CLAIMED")" = "$$" ]; then
		rm -f "$LAB_CLAIM_DIR/$_LAB_CLAIMED"
	fi
	_LAB_CLAIMED=""
}

# _lab_refuse_if_claimed WHAT: fails when a run still going claimed this lab (lab.sh up/down
# from a shell must not pull the lab from under a soak, a benchmark or a demo).
_lab_refuse_if_claimed() {
	local owner
	if owner=$(_lab_other_claimant "$LAB_P"); then
		echo "lab.sh: $1: lab '$LAB_P' belongs to a run that is still going (pid $owner); stop that run" >&2
		return 2
	fi
}

# _lab_xdp_off NS: detaches XDP from every veth end in NS and removes the port locks unmask
# left there. unmask attaches with netlink so that its program keeps bridging after it dies
# (fail-open): a killed unmask leaves it attached, and its lock files under /run/unmask.
_lab_xdp_off() {
	local ns="$1" ifc ino
	for ifc in "$LAB_IF_CLIENT" "$LAB_IF_A" "$LAB_IF_B" "$LAB_IF_SERVER"; do
		ip -n "$ns" link show "$ifc" >/dev/null 2>&1 || continue
		ip -n "$ns" link set dev "$ifc" xdpgeneric off 2>/dev/null || true
		ip -n "$ns" link set dev "$ifc" xdpdrv off 2>/dev/null || true
	done
	ino=$(stat -L -c %i "/run/netns/$ns" 2>/dev/null) || return 0
	rm -f "/run/unmask/$ino-"*.lock 2>/dev/null || true
}

lab_down() {
	_lab_refuse_if_claimed down || return
	local ns pid ifc i
	for ns in "$LAB_NS_CLIENT" "$LAB_NS_APPLIANCE" "$LAB_NS_SERVER"; do
		_lab_ns_exists "$ns" || continue
		# Processes a test left in the namespace (servers, clients, the appliance); a namespace
		# with one left would outlive its name, with its veth ends.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -9 "$pid" 2>/dev/null || true
		done
		for i in $(seq 50); do
			[ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
			sleep 0.1
		done
		_lab_xdp_off "$ns"
		ip netns del "$ns" 2>/dev/null || true
	done
	# Deleting a namespace deletes its veth ends; a half-built lab may have left one in ours.
	for ifc in "$LAB_IF_CLIENT" "$LAB_IF_A" "$LAB_IF_B" "$LAB_IF_SERVER"; do
		ip link del "$ifc" 2>/dev/null || true
	done
	_LAB_BUILT=""
}

# _lab_build: every step of lab_up; the first one that fails fails it.
_lab_build() {
	local ns ifc addr addr6 spec
	ip netns add "$LAB_NS_CLIENT" || return 1
	ip netns add "$LAB_NS_APPLIANCE" || return 1
	ip netns add "$LAB_NS_SERVER" || return 1
	ip link add "$LAB_IF_CLIENT" netns "$LAB_NS_CLIENT" numtxqueues "$LAB_Q" numrxqueues "$LAB_Q" \
		type veth peer name "$LAB_IF_A" netns "$LAB_NS_APPLIANCE" \
		numtxqueues "$LAB_Q" numrxqueues "$LAB_Q" || return 1
	ip link add "$LAB_IF_SERVER" netns "$LAB_NS_SERVER" numtxqueues "$LAB_Q" numrxqueues "$LAB_Q" \
		type veth peer name "$LAB_IF_B" netns "$LAB_NS_APPLIANCE" \
		numtxqueues "$LAB_Q" numrxqueues "$LAB_Q" || return 1

	# The appliance is silent: no addresses, no IPv6 autoconfiguration on its ports.
	ip netns exec "$LAB_NS_APPLIANCE" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || return 1
	ip netns exec "$LAB_NS_APPLIANCE" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 || return 1
	for ifc in "$LAB_IF_A" "$LAB_IF_B"; do
		ip -n "$LAB_NS_APPLIANCE" link set "$ifc" up || return 1
	done
	ip -n "$LAB_NS_APPLIANCE" link set lo up || return 1

	for spec in "$LAB_NS_CLIENT $LAB_IF_CLIENT 10.77.0.1 fd77::1" \
		"$LAB_NS_SERVER $LAB_IF_SERVER 10.77.0.2 fd77::2"; do
		read -r ns ifc addr addr6 <<<"$spec"
		ip -n "$ns" link set lo up || return 1
		ip -n "$ns" addr add "$addr/24" dev "$ifc" || return 1
		ip -n "$ns" addr add "$addr6/64" dev "$ifc" nodad || return 1
		ip -n "$ns" link set "$ifc" up || return 1
		ip netns exec "$ns" ethtool -K "$ifc" tx off >/dev/null || return 1
		ip netns exec "$ns" ethtool -K "$ifc" gro on >/dev/null || return 1
	done
}

lab_up() {
	_lab_refuse_if_claimed up || return
	lab_down
	# From the first step on, the exit cleanup (lab_cleanup_on_exit) takes the lab down.
	_LAB_BUILT=1
	if ! _lab_build; then
		echo "lab.sh: up failed, cleaning up" >&2
		lab_down
		return 1
	fi
	echo "lab $LAB_P up: $LAB_NS_CLIENT($LAB_IF_CLIENT) <-> $LAB_NS_APPLIANCE($LAB_IF_A,$LAB_IF_B)" \
		"<-> $LAB_NS_SERVER($LAB_IF_SERVER), $LAB_Q queue(s)"
}

# A plain Linux bridge across the appliance, to check the lab without unmask.
lab_bridge() {
	ip -n "$LAB_NS_APPLIANCE" link add "${LAB_P}br" type bridge
	ip -n "$LAB_NS_APPLIANCE" link set "$LAB_IF_A" master "${LAB_P}br"
	ip -n "$LAB_NS_APPLIANCE" link set "$LAB_IF_B" master "${LAB_P}br"
	ip -n "$LAB_NS_APPLIANCE" link set "${LAB_P}br" up
}

lab_unbridge() {
	ip -n "$LAB_NS_APPLIANCE" link del "${LAB_P}br" 2>/dev/null || true
}

lab_status() {
	local ns
	for ns in "$LAB_NS_CLIENT" "$LAB_NS_APPLIANCE" "$LAB_NS_SERVER"; do
		echo "== $ns"
		ip -n "$ns" -br link 2>/dev/null || echo "(absent)"
	done
}

lab_ports() {
	case "$1" in
	tap) echo "[\"$LAB_IF_A\"]" ;;
	*) echo "[\"$LAB_IF_A\", \"$LAB_IF_B\"]" ;;
	esac
}

lab_server_mac() {
	ip netns exec "$LAB_NS_SERVER" cat "/sys/class/net/$LAB_IF_SERVER/address"
}

lab_wait_ready() {
	local pid="$1" tries="$2" i
	shift 2
	for ((i = 0; i < tries; i++)); do
		grep -q READY "$@" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	grep -q READY "$@" 2>/dev/null
}

lab_kill_at_exit() { _LAB_KILL_VARS+=("$@"); }

lab_at_exit() { _LAB_HOOKS+=("$1"); }

_lab_on_exit() {
	local rc=$? v pid hook
	set +e
	for v in "${_LAB_KILL_VARS[@]}"; do
		for pid in ${!v:-}; do
			kill -9 "$pid" 2>/dev/null
		done
	done
	[ -n "$_LAB_BUILT" ] && lab_down >/dev/null 2>&1
	for hook in "${_LAB_HOOKS[@]}"; do
		eval "$hook"
	done
	_lab_release
	return "$rc"
}

lab_cleanup_on_exit() {
	trap _lab_on_exit EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
