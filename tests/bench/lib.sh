# Shared by the benchmark scripts (sourced): process bookkeeping by pid, a
# cleanup trap, and an interruptible sleep.  The sourcing script sets
# BENCH_NAME first and appends every pid it starts to PIDS.
TMP=$(mktemp -d)
PIDS=()
NAP=
nap() { sleep "$1" & NAP=$!; wait "$NAP"; NAP=; } # a trapped signal interrupts it

gone() { # pid has exited (reaped or zombie)
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
    [ -z "$st" ] || [ "$st" = Z ]
}
stop_pids() { # SIGTERM, up to 5 s, then SIGKILL; all by pid
    local p i all
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for i in $(seq 50); do
        all=1
        for p in "$@"; do gone "$p" || { all=; break; }; done
        [ -n "$all" ] && break
        sleep 0.1
    done
    for p in "$@"; do gone "$p" || kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
cleanup() {
    if [ -n "$NAP" ]; then kill "$NAP" 2>/dev/null || true; fi
    [ ${#PIDS[@]} -gt 0 ] && stop_pids "${PIDS[@]}"
    if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$TMP"/*.err "$TMP"/*.out "$KEEP_LOGS"/ 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

# SIGTERM pid and time its exit (bounded at 30 s): sets W_RC and WORKER_STOP.
stop_timed() {
    local t0 t1
    t0=$(date +%s.%N)
    kill -TERM "$1"
    for _ in $(seq 3000); do gone "$1" && break; sleep 0.01; done
    t1=$(date +%s.%N)
    if gone "$1"; then
        W_RC=0; wait "$1" || W_RC=$?
        WORKER_STOP=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    else
        W_RC=timeout; WORKER_STOP=">30"
    fi
}
