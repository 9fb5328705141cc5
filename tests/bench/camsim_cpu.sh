#!/bin/bash
# Measures camsim's CPU while N clients pull N cameras (one client per camera,
# ffmpeg -c copy to null).  usage: camsim_cpu.sh [CAMERAS] [SECONDS] [ENCODERS]
# Prints one line: cameras, encoders, seconds, camsim CPU in cores, RSS.
set -eu
N=${1:-16}; SECS=${2:-30}; ENC=${3:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CAMSIM=$ROOT/build/tests/camsim
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

"$CAMSIM" --cameras "$N" --encoders "$ENC" --port 0 --width 640 --height 360 --fps 25 --bitrate 1000 \
    > "$TMP/camsim.out" 2> "$TMP/camsim.err" &
CS=$!; PIDS+=("$CS")
for _ in $(seq 50); do grep -q ready "$TMP/camsim.out" && break; sleep 0.1; done
PORT=$(sed -n 's/.*rtsp_port=\([0-9]*\).*/\1/p' "$TMP/camsim.out")
[ -n "$PORT" ] || { echo "camsim did not start" >&2; cat "$TMP/camsim.err" >&2; exit 1; }
for i in $(seq "$N"); do
    ffmpeg -nostdin -v error -rtsp_transport tcp -i "rtsp://127.0.0.1:$PORT/cam$i" -c copy -f null - \
        2> "$TMP/client$i.err" &
    PIDS+=("$!")
done
sleep 5 # clients connected, first keyframes through
ticks() { awk '{print $14 + $15}' "/proc/$CS/stat"; }
HZ=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
sleep "$SECS"
t1=$(ticks); s1=$(date +%s.%N)
RSS=$(awk '/VmRSS/ {print $2}' "/proc/$CS/status")
LIVE=$(for p in "${PIDS[@]:1}"; do kill -0 "$p" 2>/dev/null && echo x; done | wc -l)
awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$HZ" -v n="$N" -v e="$ENC" -v rss="$RSS" -v live="$LIVE" \
    'BEGIN { printf "camsim cameras=%d encoders=%d clients_alive=%d window_s=%.1f cpu_cores=%.3f rss_mb=%.1f\n", n, e, live, s1-s0, (t1-t0)/hz/(s1-s0), rss/1024 }'
