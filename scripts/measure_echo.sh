#!/usr/bin/env bash
# measure_echo.sh: deterministic per-echo profile of the reactor's echo_server.
#
# Usage:
#   scripts/measure_echo.sh REPO_DIR TARGET_DIR [OUT_DIR]
#
#   REPO_DIR    checkout of the reactor crate (e.g. a `git worktree` of the commit to compare)
#   TARGET_DIR  its CARGO_TARGET_DIR (a target dir of its own, so builds do not collide); the script
#               runs `cargo build --release --examples` there first unless
#               NO_BUILD=1 (a no-op when already built)
#   OUT_DIR     where logs, callgrind.out, strace.txt and results.txt go
#               (default: a fresh /tmp/measure_echo.XXXXXX)
#
# Environment (defaults in brackets):
#   CONNS [100]  SIZE [64]  DEPTH [1]   loadgen shape
#   CG_SECONDS [10]   loadgen --duration under callgrind (--warmup 0)
#   ST_SECONDS [5]    loadgen --duration under strace -c -f (--warmup 0)
#   MODES ["callgrind strace"]          which profiles to run
#   PIN [1]      taskset: server on CPU 0, loadgen on CPU 1 (as benches/load)
#   NO_BUILD [0]
#   TLS [0]      1: the same over TLS (issue 11). Builds with `--features tls`,
#                makes an ECDSA P-256 certificate with `openssl req` in
#                OUT_DIR/tls (self-signed, for localhost and 127.0.0.1), runs
#                echo_server --tls-cert/--tls-key and loadgen --tls
#                --tls-insecure. Echoes are then loadgen's verified message
#                count (the server's byte count is of TLS records, handshakes
#                included), which leaves out at most CONNS x DEPTH echoes of
#                the final drain: per-echo figures are that share high at most.
#   METRICS [0]  1: echo_server --metrics 127.0.0.1:0 (issue 12), scraped
#                with curl once a second while loadgen runs (callgrind mode;
#                the scraper runs beside loadgen, on its CPU)
#
# What it does, per mode:
#   1. starts the release echo_server on 127.0.0.1:0 (the kernel picks a free
#      port; the address is read back from the server's "listening on" line)
#      under `valgrind --tool=callgrind` or `strace -c -f`;
#   2. drives it with the release loadgen example (CONNS x SIZE x DEPTH,
#      --warmup 0 --duration N, bounded by `timeout`);
#   3. sends SIGTERM to the server's own pid (graceful shutdown; a second
#      SIGTERM and finally SIGKILL only if it does not exit in time);
#   4. echoes = server's own "N bytes echoed" (stats.bytes_out, printed at
#      exit, covers the whole run) / SIZE. loadgen's verified message count
#      (measured window only, excludes the final drain) is reported beside it.
#   callgrind: Ir per echo = total Ir of the whole process (the `totals:` /
#     `summary:` line of callgrind.out, nothing excluded: startup, connection
#     setup and shutdown included) / echoes.
#   strace: calls per echo for every syscall in the `strace -c -f` table.
#
# Only processes this script starts are ever signalled.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
fi
REPO=$(cd "$1" && pwd)
TARGET=$(mkdir -p "$2" && cd "$2" && pwd)
OUT=${3:-$(mktemp -d /tmp/measure_echo.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

CONNS=${CONNS:-100}
SIZE=${SIZE:-64}
DEPTH=${DEPTH:-1}
CG_SECONDS=${CG_SECONDS:-10}
ST_SECONDS=${ST_SECONDS:-5}
MODES=${MODES:-callgrind strace}
PIN=${PIN:-1}
NO_BUILD=${NO_BUILD:-0}
TLS=${TLS:-0}
METRICS=${METRICS:-0}

SERVER_BIN=$TARGET/release/examples/echo_server
LOADGEN_BIN=$TARGET/release/examples/loadgen

log() { printf '[measure_echo] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in valgrind strace callgrind_annotate timeout awk; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

SERVER_CPU=()
LOADGEN_CPU=()
if [[ $PIN == 1 ]] && command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SERVER_CPU=(taskset -c 0)
    LOADGEN_CPU=(taskset -c 1)
fi

# ---------------------------------------------------------------- cleanup
# Every pid this script starts goes here; on exit, any still alive gets
# SIGTERM, then SIGKILL. Nothing else is ever signalled.
STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            log "cleanup: SIGTERM to leftover pid $pid"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    sleep 0.5
    for pid in "${STARTED[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            log "cleanup: SIGKILL to leftover pid $pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
if [[ $NO_BUILD != 1 ]]; then
    log "building release examples in $REPO (target $TARGET)"
    FEATURES=()
    [[ $TLS == 1 ]] && FEATURES=(--features tls)
    (cd "$REPO" && CARGO_TARGET_DIR=$TARGET cargo build --release --examples "${FEATURES[@]}" -q) \
        || die "build failed"
fi
[[ -x $SERVER_BIN && -x $LOADGEN_BIN ]] || die "missing $SERVER_BIN or $LOADGEN_BIN"

# ---------------------------------------------------------------- TLS
SERVER_ARGS=()
LOADGEN_ARGS=()
if [[ $TLS == 1 ]]; then
    command -v openssl >/dev/null || die "openssl not found (TLS=1)"
    mkdir -p "$OUT/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 \
        -keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" 2>/dev/null \
        || die "openssl req failed"
    SERVER_ARGS=(--tls-cert "$OUT/tls/cert.pem" --tls-key "$OUT/tls/key.pem")
    LOADGEN_ARGS=(--tls --tls-insecure)
fi

if [[ $METRICS == 1 ]]; then
    command -v curl >/dev/null || die "curl not found (METRICS=1)"
    SERVER_ARGS+=(--metrics 127.0.0.1:0)
fi

# ---------------------------------------------------------------- helpers
# start_scraper LOG PID: with METRICS=1, GET /metrics once a second (from
# the "metrics on ADDR" line of LOG) until PID exits.
start_scraper() {
    [[ $METRICS == 1 ]] || return 0
    local logf=$1 pid=$2 i maddr=
    for ((i = 0; i < 300; i++)); do
        maddr=$(sed -n 's/^metrics on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$logf" | head -1)
        [[ -n $maddr ]] && break
        sleep 0.1
    done
    [[ -n $maddr ]] || die "server printed no 'metrics on' line"
    (
        while kill -0 "$pid" 2>/dev/null; do
            "${LOADGEN_CPU[@]}" curl -s -m 5 -o /dev/null "http://$maddr/metrics" || true
            sleep 1
        done
    ) &
    STARTED+=("$!")
    log "scraping http://$maddr/metrics once a second"
}

# wait_listening LOG PID SECONDS: prints the address from "listening on ADDR".
wait_listening() {
    local logf=$1 pid=$2 limit=$3 i addr
    for ((i = 0; i < limit * 10; i++)); do
        addr=$(sed -n 's/.*listening on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$logf" 2>/dev/null | head -1)
        if [[ -n $addr ]]; then echo "$addr"; return 0; fi
        kill -0 "$pid" 2>/dev/null || { cat "$logf" >&2; die "server (pid $pid) died before listening"; }
        sleep 0.1
    done
    die "server did not report a listening address within ${limit}s"
}

# wait_exit PID SECONDS: 0 once PID has exited, 1 on timeout.
wait_exit() {
    local pid=$1 limit=$2 i
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# stop_server PID: graceful SIGTERM; second SIGTERM (stop now); SIGKILL.
stop_server() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || { log "server pid $pid already gone"; return 0; }
    log "SIGTERM to server pid $pid"
    kill -TERM "$pid"
    wait_exit "$pid" 60 && return 0
    log "server pid $pid still running after 60s: second SIGTERM"
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 20 && return 0
    log "server pid $pid still running: SIGKILL (profile will be lost)"
    kill -KILL "$pid" 2>/dev/null || true
    return 1
}

# run_loadgen ADDR SECONDS OUTFILE
run_loadgen() {
    local addr=$1 secs=$2 outf=$3 rc=0
    log "loadgen: $CONNS conns x $SIZE B x depth $DEPTH for ${secs}s against $addr"
    timeout -k 5 $((secs + 60)) "${LOADGEN_CPU[@]}" "$LOADGEN_BIN" --addr "$addr" \
        --connections "$CONNS" --size "$SIZE" --depth "$DEPTH" \
        --warmup 0 --duration "$secs" "${LOADGEN_ARGS[@]}" --json >"$outf" 2>"${outf%.json}.stderr" || rc=$?
    [[ $rc == 0 ]] || log "WARNING: loadgen exit status $rc (see ${outf%.json}.stderr)"
    return 0
}

json_field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1" | head -1; }

# server_echoes LOG: bytes echoed / SIZE from the server's exit line.
server_bytes() {
    sed -n 's/.*echo_server stopped: .* \([0-9][0-9]*\) bytes echoed.*/\1/p' "$1" | tail -1
}

RESULTS=$OUT/results.txt
: >"$RESULTS"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

say "repo=$REPO commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+dirty')"
say "shape=${CONNS}conns x ${SIZE}B x depth${DEPTH} out=$OUT"

# ---------------------------------------------------------------- callgrind
run_callgrind() {
    local cg=$OUT/callgrind.out slog=$OUT/callgrind.server.log lg=$OUT/callgrind.loadgen.json
    rm -f "$cg"
    log "callgrind: starting echo_server"
    "${SERVER_CPU[@]}" valgrind --tool=callgrind --callgrind-out-file="$cg" \
        "$SERVER_BIN" --addr 127.0.0.1:0 "${SERVER_ARGS[@]}" >"$slog" 2>&1 &
    local pid=$!
    STARTED+=("$pid")
    local addr
    addr=$(wait_listening "$slog" "$pid" 60)
    start_scraper "$slog" "$pid"
    run_loadgen "$addr" "$CG_SECONDS" "$lg"
    stop_server "$pid" || true
    wait "$pid" 2>/dev/null && src=0 || src=$?
    [[ -s $cg ]] || die "no callgrind output (server exit $src); see $slog"

    local ir bytes echoes lgmsg errors up
    # totals: = valgrind's "Collected" (everything); summary: (what
    # callgrind_annotate prints as PROGRAM TOTALS) can be a few Ir lower.
    ir=$(awk '/^totals:/ {print $2; exit}' "$cg")
    [[ -n $ir ]] || ir=$(awk '/^summary:/ {print $2; exit}' "$cg")
    local irsum
    irsum=$(awk '/^summary:/ {print $2; exit}' "$cg")
    callgrind_annotate "$cg" >"$OUT/callgrind.annotate.txt" 2>/dev/null || true
    bytes=$(server_bytes "$slog")
    [[ -n $bytes ]] || die "server printed no 'bytes echoed' line; see $slog"
    echoes=$((bytes / SIZE))
    lgmsg=$(json_field "$lg" messages)
    # TLS: the server's bytes are records; count loadgen's echoes instead.
    [[ $TLS == 1 ]] && echoes=${lgmsg%.*}
    errors=$(json_field "$lg" errors)
    up=$(sed -n 's/.*"established":\([0-9]*\).*/\1/p' "$lg")
    say "callgrind: server exit=$src total_Ir=$ir (summary line $irsum) server_bytes_echoed=$bytes (rem $((bytes % SIZE))) echoes=$echoes loadgen_messages(window)=${lgmsg:-?} loadgen_errors=${errors:-?} conns_up=${up:-?}"
    say "callgrind: Ir_per_echo=$(awk -v a="$ir" -v b="$echoes" 'BEGIN{printf "%.1f", a/b}') (by loadgen count: $(awk -v a="$ir" -v b="${lgmsg:-0}" 'BEGIN{if(b>0)printf "%.1f", a/b; else print "n/a"}'))"
}

# ---------------------------------------------------------------- strace
run_strace() {
    local st=$OUT/strace.txt slog=$OUT/strace.server.log lg=$OUT/strace.loadgen.json
    rm -f "$st"
    log "strace: starting echo_server"
    "${SERVER_CPU[@]}" strace -c -f -o "$st" \
        "$SERVER_BIN" --addr 127.0.0.1:0 "${SERVER_ARGS[@]}" >"$slog" 2>&1 &
    local spid=$!
    STARTED+=("$spid")
    local addr
    addr=$(wait_listening "$slog" "$spid" 30)
    # The server is strace's only child; signal it, not strace.
    local pid
    pid=$(cat /proc/"$spid"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -m1 . || true)
    [[ -n $pid ]] || die "could not find echo_server under strace pid $spid"
    [[ $(cat /proc/"$pid"/comm 2>/dev/null) == echo_server* ]] \
        || die "child $pid of strace is $(cat /proc/"$pid"/comm 2>/dev/null), not echo_server"
    STARTED+=("$pid")
    run_loadgen "$addr" "$ST_SECONDS" "$lg"
    stop_server "$pid" || true
    wait_exit "$spid" 30 || { log "strace still running: SIGTERM to it"; kill -TERM "$spid" 2>/dev/null || true; }
    wait "$spid" 2>/dev/null && src=0 || src=$?
    [[ -s $st ]] || die "no strace summary; see $slog"

    local bytes echoes lgmsg errors
    bytes=$(server_bytes "$slog")
    [[ -n $bytes ]] || die "server printed no 'bytes echoed' line; see $slog"
    echoes=$((bytes / SIZE))
    lgmsg=$(json_field "$lg" messages)
    # TLS: the server's bytes are records; count loadgen's echoes instead.
    [[ $TLS == 1 ]] && echoes=${lgmsg%.*}
    errors=$(json_field "$lg" errors)
    say "strace: exit=$src server_bytes_echoed=$bytes echoes=$echoes loadgen_messages(window)=${lgmsg:-?} loadgen_errors=${errors:-?}"
    # calls is column 4 whether or not the errors column is filled.
    awk -v n="$echoes" '
        /^-+/ || /% time/ {next}
        NF >= 5 && $NF != "total" {printf "strace:   %-16s calls=%-9d per_echo=%.4f\n", $NF, $4, $4/n}
        $NF == "total" {printf "strace:   %-16s calls=%-9d per_echo=%.4f\n", "TOTAL", $4, $4/n}
    ' "$st" | tee -a "$RESULTS"
    for sc in recvfrom sendto epoll_wait epoll_ctl; do
        awk -v sc="$sc" -v n="$echoes" '$NF==sc {c=$4} END {printf "strace: %s_per_echo=%.4f (calls=%d)\n", sc, c/n, c}' "$st"
    done | tee -a "$RESULTS"
    # Socket I/O per echo (every read/write-family call), and epoll_ctl per
    # connection accepted (the server's exit line; CONNS if it has none).
    local accepted
    accepted=$(sed -n 's/.*echo_server stopped: \([0-9][0-9]*\) accepted.*/\1/p' "$slog" | tail -1)
    [[ -n $accepted ]] || accepted=$CONNS
    awk -v n="$echoes" -v conns="$accepted" '
        /^-+/ || /% time/ {next}
        $NF ~ /^(read|write|readv|writev|recvfrom|sendto|recvmsg|sendmsg|recvmmsg|sendmmsg)$/ {io += $4}
        $NF == "epoll_ctl" {ctl = $4}
        END {printf "strace: io_syscalls_per_echo=%.4f (calls=%d) epoll_ctl_per_conn=%.3f (calls=%d, conns=%d)\n", io/n, io, ctl/conns, ctl, conns}
    ' "$st" | tee -a "$RESULTS"
}

for mode in $MODES; do
    case $mode in
        callgrind) run_callgrind ;;
        strace) run_strace ;;
        *) die "unknown mode $mode" ;;
    esac
done
log "done; results in $RESULTS"
