#!/bin/bash
# mwr-worker against the design it replaces (one `ffmpeg -c copy -f segment`
# per camera), both recording the same camsim cameras at the same time.
# usage: [CAMSIM_ARGS="--audio aac"] [SIDE=both|worker|ffmpeg] [PERF=FILE] [WORKER_TRANSPORT=udp]
#        worker_vs_ffmpeg.sh [CAMERAS=16] [SECONDS=60]
# SIDE=worker or SIDE=ffmpeg runs one side alone, for when camsim, the worker
# and N ffmpegs together would saturate the machine (64 cameras at 4 Mbit/s
# on 2 cores): compare two runs then.  PERF=FILE records the worker's profile
# over the window (perf record -g, cpu-clock).
# 10 s to settle, then over SECONDS: CPU (utime+stime from /proc/PID/stat) of
# the worker vs the sum over the ffmpegs, RSS (VmRSS) of both, camsim's CPU and
# the whole machine's; then SIGTERM the worker (timed), stop the ffmpegs, and
# size the worker's frame index per stream-minute from its SQLite DB.
# Prints one block of key=value lines.  KEEP_LOGS=DIR keeps every stderr.
set -eu
N=${1:-16}; SECS=${2:-60}
SETTLE=10; START_TIMEOUT=30; SEGMENT=10
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CAMSIM=$ROOT/build/tests/camsim
WORKER=$ROOT/build/bin/mwr-worker
SIDE=${SIDE:-both}
case $SIDE in both | worker | ffmpeg) ;; *) echo "SIDE must be both, worker or ffmpeg" >&2; exit 2 ;; esac
CMDLINE="${CAMSIM_ARGS:+CAMSIM_ARGS=\"$CAMSIM_ARGS\" }$([ "$SIDE" = both ] || echo "SIDE=$SIDE ")${WORKER_TRANSPORT:+WORKER_TRANSPORT=$WORKER_TRANSPORT }tests/bench/worker_vs_ffmpeg.sh $N $SECS"
for b in "$CAMSIM" "$WORKER"; do [ -x "$b" ] || { echo "missing $b: run make all" >&2; exit 1; }; done
for b in ffmpeg sqlite3 python3; do command -v "$b" > /dev/null || { echo "missing $b" >&2; exit 1; }; done
BENCH_NAME=worker_vs_ffmpeg
. "$(dirname "$0")/lib.sh"

start_camsim "$N"

# worker config: every camera, 10 s segments
mkdir -p "$TMP/ffmpeg"
write_worker_config "$N"
WPORT=$(free_port)

# worker and ffmpegs at the same time
T_START=$(date +%s.%N)
WK=
: > "$TMP/worker.err"
if [ "$SIDE" != ffmpeg ]; then
    "$WORKER" --config "$TMP/worker/mwr.json" --instance-id bench --port "$WPORT" \
        > "$TMP/worker.out" 2> "$TMP/worker.err" &
    WK=$!; PIDS+=("$WK")
fi
FF=()
[ "$SIDE" = worker ] || for i in $(seq "$N"); do
    ffmpeg -nostdin -v error -rtsp_transport tcp -i "rtsp://127.0.0.1:$PORT/cam$i" -c copy \
        -f segment -segment_time "$SEGMENT" -reset_timestamps 1 "$TMP/ffmpeg/cam${i}_%05d.mp4" \
        2> "$TMP/ffmpeg$i.err" &
    FF+=("$!"); PIDS+=("$!")
done

# worker started = its start notice logged and a segment row for every camera
cams_recording() {
    sqlite3 -cmd '.timeout 2000' "$TMP/worker/mwr.db" \
        'SELECT count(DISTINCT camera_id) FROM video_segments' 2>/dev/null || echo 0
}
ff_recording() { # cameras with an ffmpeg file
    find "$TMP/ffmpeg" -name '*.mp4' -size +0 -printf '%f\n' | sed 's/_.*//' | sort -u | wc -l
}
ok=
for _ in $(seq $((START_TIMEOUT * 5))); do
    if [ "$SIDE" = ffmpeg ]; then
        [ "$(ff_recording)" = "$N" ] && { ok=1; break; }
        sleep 0.2; continue
    fi
    gone "$WK" && break
    if grep -q "instance bench: $N cameras" "$TMP/worker.err" && [ -f "$TMP/worker/mwr.db" ] &&
        [ "$(cams_recording)" = "$N" ]; then ok=1; break; fi
    sleep 0.2
done
[ -n "$ok" ] || { tail -n 30 "$TMP/worker.err" >&2; die "the $SIDE side did not start recording all $N cameras within ${START_TIMEOUT} s"; }
WORKER_READY_S=$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
sleep_until() { local d; d=$(awk -v t="$1" -v now="$(date +%s.%N)" 'BEGIN { d = t - now; print (d > 0 ? d : 0) }'); nap "$d"; }
# settled: SETTLE s after the start and 5 s after the last camera's first row
sleep_until "$(awk -v t="$T_START" -v s="$SETTLE" -v r="$WORKER_READY_S" 'BEGIN { printf "%.3f", t + (s > r + 5 ? s : r + 5) }')"

# measurement window
HZ=$(getconf CLK_TCK)
ticks() { [ -n "$1" ] || { echo 0; return; }; awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo NA; }
ff_ticks() { local p s=0 t; for p in "${FF[@]}"; do t=$(ticks "$p"); [ "$t" = NA ] || s=$((s + t)); done; echo "$s"; }
machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; } # busy idle
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
alive() { local p n=0; for p in "$@"; do gone "$p" || n=$((n + 1)); done; echo "$n"; }
s0=$(date +%s.%N); w0=$(ticks "$WK"); f0=$(ff_ticks); c0=$(ticks "$CS"); read -r mb0 mi0 < <(machine)
if [ -n "${PERF:-}" ] && [ -n "$WK" ]; then
    perf record -q -e cpu-clock -F 999 -g -o "$PERF" -p "$WK" -- sleep "$SECS" > /dev/null 2>&1 &
    PERF_PID=$!
    nap "$SECS"; wait "$PERF_PID" || true
else
    nap "$SECS"
fi
s1=$(date +%s.%N); w1=$(ticks "$WK"); f1=$(ff_ticks); c1=$(ticks "$CS"); read -r mb1 mi1 < <(machine)
[ "$w1" != NA ] || { tail -n 30 "$TMP/worker.err" >&2; die "worker died during the window"; }
W_RSS=0; W_HWM=0; W_PSS=0; W_THREADS=0
if [ -n "$WK" ]; then
    W_RSS=$(rss_kb "$WK"); W_HWM=$(awk '/^VmHWM/ {print $2}' "/proc/$WK/status"); W_PSS=$(pss_kb "$WK")
    W_THREADS=$(awk '/^Threads/ {print $2}' "/proc/$WK/status")
fi
F_RSS=0; F_PSS=0
for p in "${FF[@]}"; do F_RSS=$((F_RSS + $(rss_kb "$p"))); F_PSS=$((F_PSS + $(pss_kb "$p"))); done
C_RSS=$(rss_kb "$CS")
FF_ALIVE=$(alive "${FF[@]}")

# graceful stop of the worker, timed, while the ffmpegs still run
W_RC=NA; WORKER_STOP=NA
[ -z "$WK" ] || stop_timed "$WK"
[ ${#FF[@]} -eq 0 ] || stop_pids "${FF[@]}"
PIDS=("$CS") # the rest are reaped: never signal their pids again

# the worker's index
DB=$TMP/worker/mwr.db
[ -n "$WK" ] || sqlite3 "$DB" 'CREATE TABLE video_segments(frames, bytes, start_us, end_us, id, status);
    CREATE TABLE segment_frames(segment_id, blob); CREATE TABLE gaps(x)' # the ffmpeg side alone: zeros
read -r SEGS FRAMES WBYTES DUR_US IDX NOIDX NOTDONE < <(sqlite3 -separator ' ' "$DB" "
    SELECT count(*), COALESCE(sum(frames), 0), COALESCE(sum(bytes), 0), COALESCE(sum(end_us - start_us), 0),
           (SELECT COALESCE(sum(length(blob)), 0) FROM segment_frames),
           (SELECT count(*) FROM video_segments v WHERE NOT EXISTS
               (SELECT 1 FROM segment_frames f WHERE f.segment_id = v.id)),
           (SELECT count(*) FROM video_segments WHERE status != 'complete')
    FROM video_segments") || die "cannot read the worker's DB $DB"
GAPS=$(sqlite3 "$DB" 'SELECT count(*) FROM gaps')
FBYTES=$(find "$TMP/ffmpeg" -name '*.mp4' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
FFILES=$(find "$TMP/ffmpeg" -name '*.mp4' | wc -l)
W_ERR=$(grep -c '^<[0-3]>' "$TMP/worker.err" || true)
W_WARN=$(grep -c '^<4>' "$TMP/worker.err" || true)
W_OTHER=$(grep -vc '^<[0-7]>' "$TMP/worker.err" || true) # libav's own messages carry no priority
F_ERR=$(cat "$TMP"/ffmpeg*.err | grep -c . || true)
STOP_LOG=$(sed -n 's/.*stopped: .* finalized in \([0-9.]*\) s.*/\1/p' "$TMP/worker.err" | tail -n 1)

awk -v s0="$s0" -v s1="$s1" -v hz="$HZ" -v n="$N" -v w0="$w0" -v w1="$w1" -v f0="$f0" -v f1="$f1" \
    -v c0="$c0" -v c1="$c1" -v mb0="$mb0" -v mb1="$mb1" -v mi0="$mi0" -v mi1="$mi1" -v ncpu="$(nproc)" \
    -v wrss="$W_RSS" -v whwm="$W_HWM" -v wpss="$W_PSS" -v frss="$F_RSS" -v fpss="$F_PSS" -v crss="$C_RSS" \
    -v ffalive="$FF_ALIVE" -v idx="$IDX" -v dur="$DUR_US" -v frames="$FRAMES" 'BEGIN {
    win = s1 - s0; w = (w1 - w0) / hz / win; f = (f1 - f0) / hz / win; c = (c1 - c0) / hz / win
    busy = (mb1 - mb0) / ((mb1 - mb0) + (mi1 - mi0)) * ncpu
    printf "cameras=%d\nwindow_s=%.1f\n", n, win
    printf "worker_cpu_cores=%.3f\nffmpeg_cpu_cores=%.3f\ncpu_ratio=%.3f\n", w, f, (f > 0 ? w / f : 0)
    printf "worker_cpu_cores_per_camera=%.4f\nffmpeg_cpu_cores_per_camera=%.4f\n", w / n, f / n
    printf "ffmpeg_alive=%d/%d\n", ffalive, n
    printf "worker_rss_mb=%.1f\nworker_rss_mb_per_camera=%.2f\nworker_rss_peak_mb=%.1f\nworker_pss_mb=%.1f\n", \
        wrss / 1024, wrss / 1024 / n, whwm / 1024, wpss / 1024
    printf "ffmpeg_rss_mb_total=%.1f\nffmpeg_rss_mb_per_camera=%.2f\nffmpeg_pss_mb_total=%.1f\nrss_ratio=%.3f\n", \
        frss / 1024, frss / 1024 / n, fpss / 1024, (frss > 0 ? wrss / frss : 0)
    printf "camsim_cpu_cores=%.3f\ncamsim_rss_mb=%.1f\n", c, crss / 1024
    printf "measured_total_cpu_cores=%.3f\nmachine_busy_cores=%.3f\nmachine_cores=%d\nsaturated=%s\n", \
        w + f + c, busy, ncpu, (busy > 0.9 * ncpu ? "yes" : "no")
    printf "index_bytes_per_stream_minute=%.0f\nindex_bytes_per_frame=%.2f\n", \
        (dur > 0 ? idx / dur * 60e6 : 0), (frames > 0 ? idx / frames : 0)
}'
cat << EOF
index_bytes_total=$IDX
worker_segments=$SEGS
worker_segments_not_complete=$NOTDONE
worker_segments_without_index=$NOIDX
worker_frames=$FRAMES
worker_stream_seconds=$(awk -v d="$DUR_US" 'BEGIN { printf "%.1f", d / 1e6 }')
worker_recorded_mb=$(awk -v b="$WBYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
ffmpeg_recorded_mb=$(awk -v b="$FBYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
ffmpeg_files=$FFILES
worker_gaps=$GAPS
worker_ready_s=$WORKER_READY_S
worker_threads=$W_THREADS
worker_stop_s=$WORKER_STOP
worker_stop_logged_s=${STOP_LOG:-NA}
worker_exit=$W_RC
worker_log_errors=$W_ERR
worker_log_warnings=$W_WARN
worker_stderr_other_lines=$W_OTHER
ffmpeg_stderr_lines=$F_ERR
command=$CMDLINE
EOF
if [ "$W_ERR" -gt 0 ] || [ "$W_WARN" -gt 0 ] || [ "$W_OTHER" -gt 0 ]; then
    echo "--- worker warnings/errors/unprefixed stderr (first 20):" >&2
    grep -v '^<[5-7]>' "$TMP/worker.err" | head -n 20 >&2
fi
if [ "$F_ERR" -gt 0 ]; then
    echo "--- ffmpeg stderr (first 10):" >&2
    cat "$TMP"/ffmpeg*.err | head -n 10 >&2
fi
