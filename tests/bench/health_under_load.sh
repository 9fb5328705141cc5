#!/bin/bash
# mwr-worker's /health under HTTP load while it records every camera, and
# whether the load costs the recording any frame.
# usage: health_under_load.sh [CAMERAS=16] [SECONDS=30]
# camsim with CAMERAS cameras, one worker recording all of them; once /health
# answers 200 (at most 30 s), BASELINE s of its idle CPU, then two passes of
# SECONDS each against /health:
#   wrk   wrk -t2 -c8 --latency: the worker's maximum rate;
#   paced a stdlib Python client (keep-alive, PACED_THREADS threads) paced to
#         PACED_RATE req/s in total, latency of every request from its send.
# The load window runs from the start of the first pass to the end of the
# second.  Then SIGTERM the worker and judge, per camera, every segment of the
# DB overlapping the window (by start_us, as one sequence) with framecheck.
# Prints one block of key=value lines.  KEEP_LOGS=DIR keeps every log.
set -eu
N=${1:-16}; SECS=${2:-30}
START_TIMEOUT=30; SEGMENT=10; BASELINE=5
PACED_RATE=${PACED_RATE:-1000}; PACED_THREADS=${PACED_THREADS:-4}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CAMSIM=$ROOT/build/tests/camsim
WORKER=$ROOT/build/bin/mwr-worker
FRAMECHECK=$ROOT/build/tests/framecheck
PY=/usr/bin/python3
CMDLINE="tests/bench/health_under_load.sh $N $SECS"
for b in "$CAMSIM" "$WORKER" "$FRAMECHECK"; do [ -x "$b" ] || { echo "missing $b: run make all" >&2; exit 1; }; done
[ -x "$PY" ] || { echo "missing $PY" >&2; exit 1; }
for b in wrk curl sqlite3; do command -v "$b" > /dev/null || { echo "missing $b" >&2; exit 1; }; done
BENCH_NAME=health_under_load
. "$(dirname "$0")/lib.sh"

# the paced client: PACED_THREADS keep-alive connections, each sending on its
# own schedule (offset k/rate, period threads/rate); a late request goes at
# once, none is skipped.  Latency is from the actual send to the whole body.
cat > "$TMP/paced.py" << 'EOF'
import http.client, math, sys, threading, time

port, rate, secs, nthreads = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
lat, late, fails, errs = [], [], [0], {}
lock = threading.Lock()
t0 = time.monotonic() + 0.2
end = t0 + secs

def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=5)

def run(k):
    period = nthreads / rate
    c, mine, mylate, f, i = conn(), [], [], 0, 0
    while True:
        target = t0 + k / rate + i * period
        if target >= end:
            break
        i += 1
        d = target - time.monotonic()
        if d > 0:
            time.sleep(d)
        s = time.monotonic()
        mylate.append(s - target)
        try:
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            if r.status != 200:
                f += 1
                with lock:
                    errs[r.status] = errs.get(r.status, 0) + 1
            else:
                mine.append(time.monotonic() - s)
        except Exception as e:
            f += 1
            with lock:
                errs[type(e).__name__] = errs.get(type(e).__name__, 0) + 1
            c.close()
            c = conn()
    c.close()
    with lock:
        lat.extend(mine); late.extend(mylate); fails[0] += f

ts = [threading.Thread(target=run, args=(k,)) for k in range(nthreads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
took = max(time.monotonic(), end) - t0
lat.sort()
def pct(p):
    return lat[max(0, math.ceil(p * len(lat)) - 1)] * 1e3 if lat else float("nan")
print(f"paced_sent={len(late)}")
print(f"paced_ok={len(lat)}")
print(f"paced_rate={len(lat) / took:.1f}")
for name, p in (("p50", .5), ("p90", .9), ("p99", .99), ("p999", .999)):
    print(f"paced_{name}_ms={pct(p):.3f}")
print(f"paced_max_ms={(lat[-1] * 1e3 if lat else float('nan')):.3f}")
print(f"paced_failures={fails[0]}")
print(f"paced_failure_kinds={','.join(f'{k}:{v}' for k, v in sorted(errs.items(), key=str)) or 'none'}")
print(f"paced_behind_schedule_max_ms={(max(late) * 1e3 if late else 0):.3f}")
EOF

start_camsim "$N"

# worker: every camera, 10 s segments
DB=$TMP/worker/mwr.db
write_worker_config "$N"
WPORT=$(free_port)
URL=http://127.0.0.1:$WPORT/health
T_START=$(date +%s.%N)
"$WORKER" --config "$TMP/worker/mwr.json" --instance-id bench --port "$WPORT" \
    > "$TMP/worker.out" 2> "$TMP/worker.err" &
WK=$!; PIDS+=("$WK")
health_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$URL" 2>/dev/null || true; }
ok=
for _ in $(seq $((START_TIMEOUT * 5))); do
    gone "$WK" && break
    [ "$(health_code)" = 200 ] && { ok=1; break; }
    sleep 0.2
done
[ -n "$ok" ] || { tail -n 30 "$TMP/worker.err" >&2; die "worker /health not 200 within ${START_TIMEOUT} s"; }
WORKER_READY_S=$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')

HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo NA; }
machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; } # busy idle
kids() { # CPU s of this shell's reaped children (wrk, the paced client); `times` runs here, not in a subshell
    times > "$TMP/times"
    awk 'NR == 2 { split($0, a, /[ ms]+/); print 60 * (a[1] + a[3]) + a[2] + a[4] }' "$TMP/times"
}
rate() { awk -v a="$1" -v b="$2" -v s0="$3" -v s1="$4" -v hz="$HZ" 'BEGIN { printf "%.3f", (b - a) / hz / (s1 - s0) }'; }

# idle baseline
b0=$(date +%s.%N); bw0=$(ticks "$WK")
nap "$BASELINE"
b1=$(date +%s.%N); bw1=$(ticks "$WK")
[ "$bw1" != NA ] || die "worker died before the load"

# load window: pass 1 (wrk, max rate) then pass 2 (paced)
LOAD0_US=$(date +%s%6N)
s0=$(date +%s.%N); w0=$(ticks "$WK"); c0=$(ticks "$CS"); kids > "$TMP/k0"; k0=$(cat "$TMP/k0"); read -r mb0 mi0 < <(machine)
wrk -t2 -c8 -d"${SECS}s" --latency "$URL" > "$TMP/wrk.out" 2> "$TMP/wrk.err" || die "wrk failed: $(cat "$TMP/wrk.err")"
s1=$(date +%s.%N); w1=$(ticks "$WK"); kids > "$TMP/k1"; k1=$(cat "$TMP/k1")
"$PY" "$TMP/paced.py" "$WPORT" "$PACED_RATE" "$SECS" "$PACED_THREADS" > "$TMP/paced.out" 2> "$TMP/paced.err" ||
    die "paced client failed: $(tail -n 5 "$TMP/paced.err")"
s2=$(date +%s.%N); w2=$(ticks "$WK"); c2=$(ticks "$CS"); kids > "$TMP/k2"; k2=$(cat "$TMP/k2"); read -r mb2 mi2 < <(machine)
LOAD1_US=$(date +%s%6N)
[ "$w2" != NA ] || { tail -n 30 "$TMP/worker.err" >&2; die "worker died during the load"; }
W_RSS=$(awk '/^VmRSS/ {print $2}' "/proc/$WK/status")
HEALTH_AFTER=$(health_code)

# wrk's report: latencies to ms
to_ms() { awk '{ v = $1; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
    f = (u == "us" ? 0.001 : u == "ms" ? 1 : u == "s" ? 1000 : u == "m" ? 60000 : -1)
    if (f < 0) print "NA"; else printf "%.3f\n", v * f }'; }
wpct() { awk -v p="$1%" '$1 == p { print $2 }' "$TMP/wrk.out" | to_ms; }
WRK_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.out")
WRK_REQS=$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")
WRK_MAX=$(awk '$1 == "Latency" && NF >= 4 { print $4; exit }' "$TMP/wrk.out" | to_ms)
WRK_SOCK=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$TMP/wrk.out")
WRK_NON2XX=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$TMP/wrk.out")
WRK_FAIL=$(( ${WRK_SOCK:-0} + ${WRK_NON2XX:-0} ))

# stop the worker (timed), then judge what it recorded over the window
stop_timed "$WK"
PIDS=("$CS") # the worker is reaped (or left to cleanup's SIGKILL)
gone "$WK" || PIDS+=("$WK")
stop_pids "$CS"; PIDS=()

OVERLAP="start_us < $LOAD1_US AND end_us > $LOAD0_US"
JUDGED=0; SEGS=0; SEGS_NOT_COMPLETE=0; SEGS_EMPTY=0; JUDGE_ERR=0; FIRST_START=; LAST_END=
: > "$TMP/judge.out"
for i in $(seq "$N"); do
    cam=cam$i
    mapfile -t files < <(sqlite3 "$DB" "SELECT path FROM video_segments
        WHERE camera_id = '$cam' AND $OVERLAP AND frames > 0 ORDER BY start_us, id")
    read -r n nc ne fs le < <(sqlite3 -separator ' ' "$DB" "SELECT count(*),
        coalesce(sum(status != 'complete'), 0), coalesce(sum(frames = 0), 0),
        coalesce(min(start_us), 0), coalesce(max(end_us), 0)
        FROM video_segments WHERE camera_id = '$cam' AND $OVERLAP")
    SEGS=$((SEGS + n)); SEGS_NOT_COMPLETE=$((SEGS_NOT_COMPLETE + nc)); SEGS_EMPTY=$((SEGS_EMPTY + ne))
    if [ "${#files[@]}" -eq 0 ]; then echo "$cam: no segment in the window" >&2; continue; fi
    if [ -z "$FIRST_START" ] || [ "$fs" -lt "$FIRST_START" ]; then FIRST_START=$fs; fi
    if [ -z "$LAST_END" ] || [ "$le" -gt "$LAST_END" ]; then LAST_END=$le; fi
    rc=0
    "$FRAMECHECK" --json --camera "$cam" "${files[@]}" > "$TMP/fc_$cam.json" 2> "$TMP/fc_$cam.err" || rc=$?
    if [ "$rc" -gt 1 ]; then
        JUDGE_ERR=$((JUDGE_ERR + 1)); echo "$cam: framecheck exit $rc: $(tail -n 3 "$TMP/fc_$cam.err")" >&2; continue
    fi
    JUDGED=$((JUDGED + 1))
    "$PY" -c 'import json, sys
r = json.load(open(sys.argv[2]))
print(sys.argv[1], r["frames"], r["missing"], r["duplicated"], r["unreadable"], r["out_of_order"],
      r["camera_mismatch"], r["decode_errors"], int(r["clean"]),
      ";".join(f"{a:.0f}-{b:.0f}" for a, b in r["missing_ranges"]) or "-")' "$cam" "$TMP/fc_$cam.json" \
        >> "$TMP/judge.out"
done
read -r J_FRAMES J_MISS J_DUP J_UNREAD J_OOO J_MISMATCH J_DECERR J_UNCLEAN < <(awk '
    { f += $2; m += $3; d += $4; u += $5; o += $6; x += $7; e += $8; if (!$9) c++ }
    END { print f + 0, m + 0, d + 0, u + 0, o + 0, x + 0, e + 0, c + 0 }' "$TMP/judge.out")
GAPS=$(sqlite3 "$DB" "SELECT count(*) FROM gaps WHERE $OVERLAP")
W_ERR=$(grep -c '^<[0-3]>' "$TMP/worker.err" || true)
W_WARN=$(grep -c '^<4>' "$TMP/worker.err" || true)

awk -v b0="$b0" -v b1="$b1" -v bw0="$bw0" -v bw1="$bw1" -v s0="$s0" -v s1="$s1" -v s2="$s2" \
    -v w0="$w0" -v w1="$w1" -v w2="$w2" -v c0="$c0" -v c2="$c2" -v k0="$k0" -v k1="$k1" -v k2="$k2" \
    -v mb0="$mb0" -v mb2="$mb2" -v mi0="$mi0" -v mi2="$mi2" -v hz="$HZ" -v ncpu="$(nproc)" 'BEGIN {
    win = s2 - s0
    w = (w2 - w0) / hz / win; c = (c2 - c0) / hz / win; k = (k2 - k0) / win
    busy = (mb2 - mb0) / ((mb2 - mb0) + (mi2 - mi0)) * ncpu
    printf "load_window_s=%.1f\n", win
    printf "worker_cpu_cores=%.3f\n", w
    printf "worker_cpu_cores_wrk=%.3f\nworker_cpu_cores_paced=%.3f\nworker_cpu_cores_idle=%.3f\n", \
        (w1 - w0) / hz / (s1 - s0), (w2 - w1) / hz / (s2 - s1), (bw1 - bw0) / hz / (b1 - b0)
    printf "load_clients_cpu_cores_wrk=%.3f\nload_clients_cpu_cores_paced=%.3f\n", (k1 - k0) / (s1 - s0), (k2 - k1) / (s2 - s1)
    printf "camsim_cpu_cores=%.3f\n", c
    printf "machine_busy_cores=%.3f\nmachine_cores=%d\nother_cpu_cores=%.3f\n", busy, ncpu, busy - w - c - k
}'
cat << EOF
wrk_requests=${WRK_REQS:-NA}
wrk_requests_per_s=${WRK_RPS:-NA}
wrk_p50_ms=$(wpct 50)
wrk_p90_ms=$(wpct 90)
wrk_p99_ms=$(wpct 99)
wrk_max_ms=${WRK_MAX:-NA}
wrk_failures=$WRK_FAIL
$(sed 's/^paced_rate=/paced_rate_target='"$PACED_RATE"'\npaced_rate=/' "$TMP/paced.out")
health_after_load=$HEALTH_AFTER
judged_cameras=$JUDGED/$N
judge_errors=$JUDGE_ERR
judged_segments=$SEGS
judged_segments_not_complete=$SEGS_NOT_COMPLETE
judged_segments_empty=$SEGS_EMPTY
judged_span_s=$(awk -v a="${FIRST_START:-0}" -v b="${LAST_END:-0}" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
judged_frames=$J_FRAMES
missing_frames=$J_MISS
duplicated_frames=$J_DUP
unreadable_frames=$J_UNREAD
out_of_order_frames=$J_OOO
camera_mismatch_frames=$J_MISMATCH
decode_errors=$J_DECERR
unclean_cameras=$J_UNCLEAN
gaps_in_window=$GAPS
worker_ready_s=$WORKER_READY_S
worker_rss_mb=$(awk -v r="$W_RSS" 'BEGIN { printf "%.1f", r / 1024 }')
worker_stop_s=$WORKER_STOP
worker_exit=$W_RC
worker_log_errors=$W_ERR
worker_log_warnings=$W_WARN
command=$CMDLINE
EOF
awk '$9 == 0 { print "--- " $1 ": frames=" $2 " missing=" $3 " duplicated=" $4 " missing_ranges=" $10 }' "$TMP/judge.out" >&2
if [ "$W_ERR" -gt 0 ] || [ "$W_WARN" -gt 0 ]; then
    echo "--- worker warnings/errors (first 20):" >&2
    grep '^<[0-4]>' "$TMP/worker.err" | head -n 20 >&2
fi
