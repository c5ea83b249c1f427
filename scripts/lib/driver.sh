# shellcheck shell=bash
# Running a Python lab driver (scripts/proxylab/lab.py, scripts/corpus/corpus.py) from its shell
# wrapper. Sourced, not run. Both drivers take `run --prefix P --out DIR ...` and
# `cleanup --prefix P`, and need PY set to the interpreter.
#
#   driver_preflight NAME VAR PREFIX  exits unless root and PREFIX (from env VAR) fits interface
#                                     names (at most 10 characters)
#   driver_run SCRIPT PREFIX OUT ARGS...
#                                     runs `SCRIPT run --prefix PREFIX --out OUT ARGS...` and exits
#                                     with its status
#
# The driver cleans up after itself (also on SIGTERM, which driver_run forwards); the EXIT trap
# covers a driver that was killed hard. It runs in the background so that a signal to the
# wrapper is handled at once, not after the whole run.

driver_preflight() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "$1: run needs root (network namespaces)" >&2
		exit 1
	fi
	if [ "${#3}" -gt 10 ]; then
		echo "$1: $2 '$3' is longer than 10 characters" >&2
		exit 2
	fi
}

driver_run() {
	# Globals, not locals: the traps run after this function's scope is gone.
	_DRIVER_SCRIPT="$1"
	_DRIVER_PREFIX="$2"
	local out="$3"
	shift 3
	trap '"$PY" "$_DRIVER_SCRIPT" cleanup --prefix "$_DRIVER_PREFIX" >/dev/null 2>&1 || true' EXIT
	"$PY" "$_DRIVER_SCRIPT" run --prefix "$_DRIVER_PREFIX" --out "$out" "$@" &
	_DRIVER_CHILD=$!
	trap 'kill -TERM "$_DRIVER_CHILD" 2>/dev/null || true; wait "$_DRIVER_CHILD" || true; exit 130' INT TERM HUP
	local rc=0
	wait "$_DRIVER_CHILD" || rc=$?
	exit "$rc"
}
