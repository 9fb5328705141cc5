#!/bin/bash
# test-graceful-shutdown.sh: prove on this machine that a worker stops
# gracefully: camsim cameras recorded for a few seconds, SIGTERM, then
# exit 0 within 1 s, every segment complete in the index, and the frame
# judge finds no missing or repeated frame.  Exit 0 = PASS.
#   scripts/test-graceful-shutdown.sh [CAMERAS=4] [SECONDS=6]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-4}; SECS=${2:-6}
TMP=$(mktemp -d /tmp/mwr-graceful-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
"$ROOT/build/tests/camsim" --cameras "$N" --port 0 --control-port 0 --gop 25 > "$TMP/camsim.out" 2> "$TMP/camsim.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$TMP/camsim.out" && break; sleep 0.1; done
RTSP=$(sed -n 's/.*ready rtsp_port=\([0-9]*\).*/\1/p' "$TMP/camsim.out")
[ -n "$RTSP" ] || { echo "FAIL: camsim did not start"; exit 1; }
/usr/bin/python3 -c 'import json,sys; t,p,n=sys.argv[1],sys.argv[2],int(sys.argv[3]); print(json.dumps({"storage_dir":t+"/rec","db_path":t+"/mwr.db","segment_seconds":4,"disk":{"min_free_mb":0},"cameras":[{"id":f"cam{i}","url":f"rtsp://127.0.0.1:{p}/cam{i}"} for i in range(1,n+1)]}))' "$TMP" "$RTSP" "$N" > "$TMP/mwr.json"
"$ROOT/build/bin/mwr-worker" --config "$TMP/mwr.json" --instance-id graceful --port "$(port)" 2> "$TMP/worker.err" &
W=$!; PIDS+=($W)
sleep "$SECS"
t0=$(date +%s.%N)
kill -TERM "$W"
rc=0; wait "$W" || rc=$?
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
notdone=$(sqlite3 "$TMP/mwr.db" "SELECT count(*) FROM video_segments WHERE status != 'complete'")
segs=$(sqlite3 "$TMP/mwr.db" "SELECT count(*) FROM video_segments")
verdict=PASS
[ "$rc" = 0 ] || verdict=FAIL
awk -v t="$took" 'BEGIN { exit !(t < 1.0) }' || verdict=FAIL
[ "$notdone" = 0 ] || verdict=FAIL
for i in $(seq "$N"); do
    mapfile -t files < <(sqlite3 "$TMP/mwr.db" "SELECT path FROM video_segments WHERE camera_id = 'cam$i' ORDER BY start_us")
    "$ROOT/build/tests/framecheck" --camera "cam$i" "${files[@]}" > "$TMP/judge$i.txt" 2>&1 || verdict=FAIL
    echo "  cam$i: $(grep -E '^(frames|missing|duplicated) ' "$TMP/judge$i.txt" | tr '\n' ' ')"
done
echo "$verdict: exit $rc after SIGTERM in $took s (limit 1 s); $segs segments, $notdone not complete"
[ "$verdict" = PASS ]
