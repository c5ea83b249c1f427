#!/usr/bin/env bash
# Installs every system package the build and the tests need on a fresh Debian 12 machine
# that has only Rust, gcc, git and python3. Idempotent: when everything is present it installs
# nothing and returns at once.
#
#   clang llvm m4 make pkg-config libelf-dev zlib1g-dev linux-libc-dev  build the XDP program and
#                                                                        libxdp-sys' bundled xdp-tools
#   libpcap-dev                                                          xdp-tools' configure refuses to
#                                                                        build libxdp without pcap headers
#   iproute2 ethtool iputils-ping                                        the namespace lab
#   tcpreplay openssl curl socat python3 procps tcpdump                  traffic, captures and checks in tests
#   bpftool                                                              inspecting maps after a stop
#   prometheus                                                           a real scrape in the metrics tests
#   time util-linux                                                      peak RSS (GNU time) in flood.sh and
#                                                                        soak.sh; setpriv for the unit's caps
set -euo pipefail

PKGS=(clang llvm m4 make pkg-config libelf-dev zlib1g-dev linux-libc-dev
	libpcap-dev
	iproute2 ethtool iputils-ping tcpreplay openssl curl socat python3 procps tcpdump bpftool
	prometheus time util-linux)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
