#!/usr/bin/env bash
# Installs every system package unmask's build and tests need on a fresh Debian machine that
# has only Rust, gcc, git and python3. Idempotent: does nothing when all are present.
set -euo pipefail

packages=(
  clang llvm m4 make pkg-config libelf-dev zlib1g-dev linux-libc-dev  # libbpf/libxdp build, BPF C
  iproute2 ethtool tcpreplay                                          # lab namespaces, replay into the wire
  openssl curl socat tcpdump                                          # real TLS/HTTP peers in tests, captured
  prometheus                                                          # real scrape in the metrics tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root (or install them yourself)" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
