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

free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# camsim with N cameras (GOP 2 s) on free ports, waiting up to START_TIMEOUT s:
# sets CS (its pid, also in PIDS) and PORT (RTSP).
start_camsim() {
    # shellcheck disable=SC2086 # CAMSIM_ARGS: extra personality flags, e.g. "--audio aac"
    "$CAMSIM" --cameras "$1" --port 0 --control-port 0 --gop 50 ${CAMSIM_ARGS:-} > "$TMP/camsim.out" 2> "$TMP/camsim.err" &
    CS=$!; PIDS+=("$CS")
    for _ in $(seq $((START_TIMEOUT * 10))); do grep -q ready "$TMP/camsim.out" && break; gone "$CS" && break; sleep 0.1; done
    PORT=$(sed -n 's/.*ready rtsp_port=\([0-9]*\).*/\1/p' "$TMP/camsim.out")
    [ -n "$PORT" ] || { cat "$TMP/camsim.err" >&2; die "camsim did not start within ${START_TIMEOUT} s"; }
}

# The worker's config: camsim's N cameras, SEGMENT-second segments, storage
# and DB under $TMP/worker, RTP over WORKER_TRANSPORT (tcp, or udp).
# usage: write_worker_config N
write_worker_config() {
    mkdir -p "$TMP/worker"
    {
        printf '{"storage_dir": "%s", "db_path": "%s", "segment_seconds": %d, "cameras": [' \
            "$TMP/worker/rec" "$TMP/worker/mwr.db" "$SEGMENT"
        for i in $(seq "$1"); do
            [ "$i" -gt 1 ] && printf ', '
            printf '{"id": "cam%d", "url": "rtsp://127.0.0.1:%s/cam%d", "transport": "%s"}' \
                "$i" "$PORT" "$i" "${WORKER_TRANSPORT:-tcp}"
        done
        printf ']}\n'
    } > "$TMP/worker/mwr.json"
}
