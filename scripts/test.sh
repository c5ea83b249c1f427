#!/usr/bin/env bash
# Runs every test of unmask: installs what the machine lacks, checks formatting and lints,
# then builds and runs unit, pipeline, real-capture and network-namespace tests.
# The namespace tests need root (CI runs as root); without it they say "skipped".
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
bash scripts/deps.sh proxylab
bash scripts/deps.sh corpus
bash scripts/deps.sh relaylab
python3 scripts/check-layers.py
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
