#!/usr/bin/env bash
# Fuzzes unmask with cargo-fuzz (libFuzzer), one target after the other.
#
#   scripts/fuzz.sh [TARGET...] [--time SECS | --runs N] [--no-seeds] [--no-build]
#
# Targets: wire stream tls http cert engine (default: all). Each runs for SECS seconds
# (default 60) or N executions, one process at a time (the machine is shared), with debug
# assertions and overflow checks on (fuzz/Cargo.toml's release profile). Before fuzzing, the
# seed corpora are (re)written into fuzz/corpus/<target>/ by `cargo run --example fuzz_seeds`:
# project-made seeds, plus frames, flows, streams and certificates from ../shared/pcaps (or
# $UNMASK_PCAPS) when present. Crashes, timeouts and OOMs land in fuzz/artifacts/<target>/;
# each log is in fuzz/logs/<target>.log. Ends with a table: executions, exec/s, coverage
# (libFuzzer's cov: edges and ft: features), corpus size and crashes per target.
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$root/fuzz"
all=(wire stream tls http cert engine)

targets=()
budget=(-max_total_time=60)
seeds=1
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --time) budget=(-max_total_time="$2"); shift 2 ;;
        --runs) budget=(-runs="$2"); shift 2 ;;
        --no-seeds) seeds=0; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *)
            if [[ " ${all[*]} " != *" $1 "* ]]; then
                echo "fuzz.sh: unknown target $1 (targets: ${all[*]})" >&2
                exit 2
            fi
            targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

# Longest input per target: a frame, a stream op list, a TLS flight with a certificate chain,
# an HTTP head, one certificate, a few dozen frames.
max_len() {
    case "$1" in
        wire|stream|http|cert) echo 4096 ;;
        tls|engine) echo 16384 ;;
    esac
}

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs cargo-fuzz on a nightly toolchain: cargo install cargo-fuzz" >&2
    exit 1
fi

if [ "$seeds" = 1 ]; then
    (cd "$root" && cargo run --quiet --example fuzz_seeds -- "$fuzz/corpus")
fi
if [ "$build" = 1 ]; then
    # No sanitizer: safe Rust needs none, and unmask's own checks (overflow, bounds, asserts
    # in the harnesses) are what finds bugs here; sancov still guides libFuzzer.
    for t in "${targets[@]}"; do
        (cd "$fuzz" && cargo +nightly fuzz build --sanitizer none "$t")
    done
fi
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
bin="$fuzz/target/$triple/release"

mkdir -p "$fuzz/logs"
results=()
for t in "${targets[@]}"; do
    mkdir -p "$fuzz/corpus/$t" "$fuzz/artifacts/$t"
    log="$fuzz/logs/$t.log"
    echo "== $t (${budget[*]}, log $log)"
    start=$(date +%s)
    marker="$fuzz/artifacts/$t/.started"
    touch "$marker"
    status=0
    # Each engine input builds and drops a whole engine (flow table, stream pool, scratch);
    # with glibc's default thresholds those large blocks go back to the kernel on every free
    # and return as fresh zero pages on the next input (page faults, brk/munmap: a third of
    # the time). Keeping them in the heap changes speed only, not what runs.
    GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=33554432 \
    "$bin/$t" "$fuzz/corpus/$t" \
        "${budget[@]}" \
        -max_len="$(max_len "$t")" \
        -timeout=10 \
        -rss_limit_mb=1024 \
        -print_final_stats=1 \
        -artifact_prefix="$fuzz/artifacts/$t/" \
        >"$log" 2>&1 || status=$?
    secs=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(find "$fuzz/corpus/$t" -type f | wc -l)
    crashes=$(find "$fuzz/artifacts/$t" -type f -newer "$marker" \
        \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
    # An abnormal exit of libFuzzer is a finding even if the artifact count says otherwise;
    # a run stopped by SIGINT (the machine was needed back) is not one.
    if [ "$status" != 0 ] && grep -q 'libFuzzer: run interrupted' "$log"; then
        echo "$t: interrupted after ${runs:-?} executions"
    elif [ "$status" != 0 ]; then
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -n 5 || true
        [ "$crashes" -gt 0 ] || crashes=1
    fi
    results+=("$(printf '%-7s %12s %8s %7s %8s %7s %8s %6ss' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$crashes" "$secs")")
done

echo
printf '%-7s %12s %8s %7s %8s %7s %8s %7s\n' target execs exec/s cov ft corpus crashes time
for r in "${results[@]}"; do echo "$r"; done
