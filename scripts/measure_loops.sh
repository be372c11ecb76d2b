#!/usr/bin/env bash
# measure_loops.sh: echo_server with --threads 1 and --threads N under the
# same load; CPU per echo from /proc/PID/stat, the per-loop share of work
# from the server's exit lines (issue 13, docs/benchmarks.md "Many loops").
#
# Usage: scripts/measure_loops.sh TARGET_DIR [THREADS...]     (default: 1 2)
#
# Environment: CONNS [1000] SIZE [64] DEPTH [1] DURATION [10] LOADGEN_THREADS [1]
#   MODE [reuseport | hand-off]
#   SERVER_CPUS, LOADGEN_CPUS: taskset lists (unset: no pinning). On a
#   machine with more cores, give the server cores 0..N-1 and the client the
#   others, e.g. SERVER_CPUS=0-3 LOADGEN_CPUS=4-7 LOADGEN_THREADS=4.
#
# Needs a release build: cargo build --release --examples.
# Only the processes this script starts are signalled.
set -euo pipefail
TARGET=$1; shift
THREADS=("${@:-1 2}")
[[ $# -eq 0 ]] && THREADS=(1 2)
CONNS=${CONNS:-1000} SIZE=${SIZE:-64} DEPTH=${DEPTH:-1} DURATION=${DURATION:-10}
LOADGEN_THREADS=${LOADGEN_THREADS:-1} MODE=${MODE:-reuseport}
SERVER=$TARGET/release/examples/echo_server
LOADGEN=$TARGET/release/examples/loadgen
TICK=$(getconf CLK_TCK)
# exec, so that $! is the server itself, not a subshell.
pin() { local cpus=$1; shift; if [[ -n $cpus ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for n in "${THREADS[@]}"; do
    extra=()
    [[ $MODE == hand-off ]] && extra=(--hand-off)
    err=$(mktemp)
    (pin "${SERVER_CPUS:-}" "$SERVER" --addr 127.0.0.1:0 --threads "$n" "${extra[@]}") 2>"$err" &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$err" && break; sleep 0.05; done
    addr=$(grep -o "listening on [0-9.:]*" "$err" | cut -d' ' -f3)
    before=$(cpu_ticks "$pid")
    json=$(pin "${LOADGEN_CPUS:-}" "$LOADGEN" --addr "$addr" --connections "$CONNS" --size "$SIZE" \
        --depth "$DEPTH" --duration "$DURATION" --warmup 1 --threads "$LOADGEN_THREADS" --json)
    after=$(cpu_ticks "$pid")
    kill -TERM "$pid"; wait "$pid" || true
    echoes=$(grep -o "[0-9]* bytes echoed" "$err" | awk -v s="$SIZE" '{print $1 / s}')
    rate=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(round(d['messages_per_sec']), 'p99', d['latency_us']['p99'], 'us')" "$json" 2>/dev/null || echo "?")
    cpu=$(awk -v a="$after" -v b="$before" -v t="$TICK" 'BEGIN{print (a-b)/t}')
    printf 'threads %s (%s): %s echoes, %s s server CPU, %.3f us CPU/echo, loadgen %s msg/s\n' \
        "$n" "$MODE" "$echoes" "$cpu" "$(awk -v c="$cpu" -v e="$echoes" 'BEGIN{print c*1e6/e}')" "$rate"
    grep " loop [0-9]*:" "$err" | sed 's/^/    /' || true
    rm -f "$err"
done
