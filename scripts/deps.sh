#!/usr/bin/env bash
# Installs every system package the build and the tests need on a fresh Debian 12 machine
# that has only Rust, gcc, git and python3. Idempotent: when everything is present it installs
# nothing, prints nothing and returns at once.
#
#   clang llvm m4 make pkg-config libelf-dev zlib1g-dev linux-libc-dev  build the XDP program and
#                                                                        libxdp-sys' bundled xdp-tools
#   libpcap-dev                                                          xdp-tools' configure refuses to
#                                                                        build libxdp without pcap headers
#   iproute2 ethtool iputils-ping                                        the namespace lab
#   tcpreplay openssl curl socat python3 procps tcpdump                  traffic, captures and checks in tests
#   bpftool                                                              inspecting maps after a stop
#   prometheus                                                           a real scrape in the metrics tests
#   logrotate                                                            rotates the EVE file in a lab test
#   redis-server                                                         the redis EVE sink's tests start their
#                                                                        own on a private port (tests/eve_redis.rs)
#   time util-linux                                                      peak RSS (GNU time) in flood.sh and
#                                                                        soak.sh; setpriv for the unit's caps
#   python3-pip                                                          installs the Python packages below
#
# Python packages, with pip into the python3 on PATH (the one the tests run):
#   communityid      the Community ID reference implementation, oracle of tests/community_id.rs
#
# `bash scripts/deps.sh proxylab` installs, instead, the optional group for scripts/proxylab.sh
# (proxy servers and clients, the inner site, nDPI for the comparison); see proxylab_deps below.
set -euo pipefail

# The proxy lab's packages: only on request, never in the default call.
#   shadowsocks-libev simple-obfs shadowsocks-v2ray-plugin v2ray trojan obfs4proxy  the proxies
#   stunnel4 tinyproxy                                            an HTTPS CONNECT proxy
#   nginx fcgiwrap git openssh-server openssh-client              the inner site and benign services
#   tcpdump iproute2 openssl curl python3 procps                  the lab itself and its captures
#   libndpi-bin                                                   ndpiReader for `proxylab.sh compare`
#   chromium libnss3-tools                                        the browser inner client (`run --client chromium`)
#                                                                 and certutil for its trust of the lab CA
# Package scripts must not start these services on the host: a policy-rc.d that refuses every
# start is put in place for the install when none exists, and removed afterwards.
proxylab_deps() {
	local pkgs=(shadowsocks-libev simple-obfs shadowsocks-v2ray-plugin v2ray trojan obfs4proxy
		stunnel4 tinyproxy nginx fcgiwrap git openssh-server openssh-client
		tcpdump iproute2 openssl curl python3 procps libndpi-bin chromium libnss3-tools)
	local want=() p
	for p in "${pkgs[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
			want+=("$p")
		fi
	done
	if [ "${#want[@]}" -eq 0 ]; then
		return 0
	fi
	local sudo="" made_policy=0
	if [ "$(id -u)" -ne 0 ]; then
		sudo="sudo"
	fi
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	echo "deps.sh: installing (proxylab) ${want[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	local rc=0
	{ $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${want[@]}"; } || rc=$?
	if [ "$made_policy" -eq 1 ]; then
		$sudo rm -f /usr/sbin/policy-rc.d
	fi
	# Whatever a package script started anyway (no policy-rc.d honoured, a systemd unit) stops.
	for p in nginx ssh shadowsocks-libev v2ray trojan stunnel4 tinyproxy fcgiwrap; do
		$sudo systemctl stop "$p" >/dev/null 2>&1 || $sudo service "$p" stop >/dev/null 2>&1 || true
	done
	return "$rc"
}

if [ "${1:-}" = "proxylab" ]; then
	proxylab_deps
	exit $?
fi

PKGS=(clang llvm m4 make pkg-config libelf-dev zlib1g-dev linux-libc-dev
	libpcap-dev
	iproute2 ethtool iputils-ping tcpreplay openssl curl socat python3 procps tcpdump bpftool
	prometheus time util-linux logrotate redis-server python3-pip)

# Python packages the tests import, installed only when an import fails. Debian's python3 is
# "externally managed" (PEP 668): pip refuses to install into it unless told to, and these are
# test oracles on a test machine, not system software other packages depend on.
pip_deps() {
	local mods=(communityid) want=() m
	for m in "${mods[@]}"; do
		if ! python3 -c "import $m" >/dev/null 2>&1; then
			want+=("$m")
		fi
	done
	if [ "${#want[@]}" -eq 0 ]; then
		return 0
	fi
	echo "deps.sh: installing (pip) ${want[*]}" >&2
	PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
		python3 -m pip install --quiet "${want[@]}"
}

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -gt 0 ]; then
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		SUDO="sudo"
	fi
	echo "deps.sh: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# After apt, which brings pip on a fresh machine.
pip_deps
