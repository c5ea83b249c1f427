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
# (proxy servers and clients, the inner site, nDPI for the comparison), and `bash scripts/deps.sh
# corpus` the benign corpus's (scripts/corpus.sh), `bash scripts/deps.sh relaylab` the relay
# lab's (scripts/relaylab.sh); see PROXYLAB_PKGS, RELAY_CRATES and CORPUS_PKGS below.
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
PROXYLAB_PKGS=(shadowsocks-libev simple-obfs shadowsocks-v2ray-plugin v2ray trojan obfs4proxy
	stunnel4 tinyproxy nginx fcgiwrap git openssh-server openssh-client
	tcpdump iproute2 openssl curl python3 procps libndpi-bin chromium libnss3-tools)

# The relay lab's tools (scripts/relaylab.sh, tests/lab_relays.rs), on request: `bash
# scripts/deps.sh relaylab` installs the proxy lab's packages (nginx, tcpdump, curl, ndpiReader)
# and, with cargo, shoes (ShadowTLS v3, REALITY, VLESS with Vision, and the Shadowsocks-2022
# server the lab puts behind ShadowTLS) into RELAY_ROOT, skipped when its binary is already
# there. The test command runs it. Measured: 565 s of CPU (24:47 wall on a 2-core machine shared
# with three other builds). RELAY_CRATES="shoes:shoes shadowsocks-rust:ssserver" adds
# shadowsocks-rust (592 s of CPU), a second Shadowsocks-2022 implementation the lab does not need.
RELAY_ROOT="${RELAY_ROOT:-/opt/unmask-relays}"
read -r -a RELAY_CRATES <<<"${RELAY_CRATES:-shoes:shoes}"

relay_deps() {
	group_deps proxylab "${PROXYLAB_PKGS[@]}" || return $?
	local entry crate bin
	for entry in "${RELAY_CRATES[@]}"; do
		crate="${entry%%:*}"
		bin="${entry##*:}"
		if [ -x "$RELAY_ROOT/bin/$bin" ]; then
			continue
		fi
		echo "deps.sh: installing (cargo) $crate into $RELAY_ROOT" >&2
		cargo install --locked --root "$RELAY_ROOT" "$crate" || return $?
	done
}

# The benign corpus's packages (scripts/corpus.sh), on request too:
#   apache2 lighttpd lighttpd-mod-openssl h2o nodejs               web servers beside the proxy lab's nginx
#   postgresql redis-server postfix dovecot-imapd                   database, cache and mail servers
#   firefox-esr golang-go default-jdk-headless wget ffmpeg          clients: a second browser, Go's net/http,
#   python3-requests python3-httpx python3-h2 python3-aiohttp       Java's HttpClient, wget, a media player,
#   postgresql-client redis-tools                                   Python's HTTP libraries, psql, redis-cli
CORPUS_PKGS=(apache2 lighttpd lighttpd-mod-openssl h2o nodejs postgresql redis-server postfix dovecot-imapd
	firefox-esr golang-go default-jdk-headless wget ffmpeg python3-requests python3-httpx python3-h2
	python3-aiohttp postgresql-client redis-tools)

# Installs an optional group: its name, then its packages.
group_deps() {
	local group="$1"
	shift
	local pkgs=("$@")
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
	echo "deps.sh: installing ($group) ${want[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	local rc=0
	{ $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${want[@]}"; } || rc=$?
	if [ "$made_policy" -eq 1 ]; then
		$sudo rm -f /usr/sbin/policy-rc.d
	fi
	# Whatever a package script started anyway (no policy-rc.d honoured, a systemd unit) stops.
	for p in nginx ssh shadowsocks-libev v2ray trojan stunnel4 tinyproxy fcgiwrap apache2 lighttpd h2o postgresql \
		redis-server postfix dovecot; do
		$sudo systemctl stop "$p" >/dev/null 2>&1 || $sudo service "$p" stop >/dev/null 2>&1 || true
	done
	return "$rc"
}

case "${1:-}" in
proxylab)
	group_deps proxylab "${PROXYLAB_PKGS[@]}"
	exit $?
	;;
corpus)
	group_deps corpus "${CORPUS_PKGS[@]}"
	exit $?
	;;
relaylab)
	relay_deps
	exit $?
	;;
esac

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
