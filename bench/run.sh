#!/usr/bin/env bash
# Run the docs/performance.md workloads one after the other, each against a fresh server
# with an empty data directory, and print each bench report. Run by hand on a quiet machine
# (tests never run it):
#
#   bench/run.sh                     # every workload
#   bench/run.sh send fanout         # some of them
#
# BUILD_DIR (default build) selects the binaries; SERVER_ARGS adds server flags and
# BENCH_ARGS bench flags (e.g. BENCH_ARGS="--duration 5"). Workload names: send,
# send-half (send at --rate HALF_RATE, default 50000), fanout, fanout-v8 (msgKey checked on
# 1 RECV in 8), person, mixed, idle, idle-max.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
SERVER="$BUILD_DIR/magpie"
BENCH="$BUILD_DIR/bench/magpie-bench"
DATA=$(mktemp -d /tmp/magpie-bench-data.XXXXXX)
PORTS=(--addr=127.0.0.1:15100 --wsAddr=127.0.0.1:15200 --httpAddr=127.0.0.1:15001 --manager.on=false --demo.on=false)
HALF_RATE=${HALF_RATE:-50000}
pid=

stop_server() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
    fi
}
trap 'stop_server; rm -rf "$DATA"' EXIT

start_server() {
    rm -rf "$DATA" && mkdir -p "$DATA"
    # shellcheck disable=SC2086
    "$SERVER" "${PORTS[@]}" --dataDir="$DATA" --workers=2 ${SERVER_ARGS:-} >"$DATA.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        curl -sf http://127.0.0.1:15001/health >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server did not come up; log: $DATA.log" >&2
    exit 1
}

args_of() {
    case "$1" in
    send) echo "--workload send" ;;
    send-half) echo "--workload send --rate $HALF_RATE" ;;
    fanout) echo "--workload fanout --threads 2" ;;
    fanout-v8) echo "--workload fanout --threads 2 --verify-every 8" ;;
    person) echo "--workload person" ;;
    mixed) echo "--workload mixed" ;;
    idle) echo "--workload idle --conns 10000 --duration 5" ;;
    idle-max) echo "--workload idle --conns 19500 --sources 4 --duration 5" ;;
    *) echo "unknown workload $1" >&2; exit 2 ;;
    esac
}

workloads=("$@")
[ ${#workloads[@]} -eq 0 ] && workloads=(send send-half fanout fanout-v8 person mixed idle idle-max)
for w in "${workloads[@]}"; do
    a=$(args_of "$w")
    start_server
    echo "== $w: magpie-bench $a ${BENCH_ARGS:-}  ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
    # shellcheck disable=SC2086
    "$BENCH" --addr 127.0.0.1:15100 --api http://127.0.0.1:15001 --server-pid "$pid" $a ${BENCH_ARGS:-} 2>/dev/null || true
    stop_server
done
