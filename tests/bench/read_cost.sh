#!/bin/bash
# What reading RTSP/TCP costs, by reader, against the same camsim cameras
# (issue 17's next step): libavformat as the worker uses it, then our own
# read (libcurl for the requests, 64 KiB socket reads, H.264 depacketised
# into one buffer per access unit).  One reader at a time, SECONDS each.
# usage: [CAMSIM_ARGS="--width 1920 --height 1080 --bitrate 4000"] read_cost.sh [CAMERAS=64] [SECONDS=30]
# Prints one block of key=value lines per reader, and camsim's CPU.
set -eu
N=${1:-64}; SECS=${2:-30}
START_TIMEOUT=30
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CAMSIM=$ROOT/build/tests/camsim
READ_COST=$ROOT/build/tests/read_cost
for b in "$CAMSIM" "$READ_COST"; do [ -x "$b" ] || { echo "missing $b: run make all" >&2; exit 1; }; done
BENCH_NAME=read_cost
. "$(dirname "$0")/lib.sh"

start_camsim "$N"
URLS=()
for i in $(seq "$N"); do URLS+=("rtsp://127.0.0.1:$PORT/cam$i"); done
echo "command=${CAMSIM_ARGS:+CAMSIM_ARGS=\"$CAMSIM_ARGS\" }tests/bench/read_cost.sh $N $SECS"
for reader in lavf own; do
    cs0=$(awk '{print $14 + $15}' "/proc/$CS/stat")
    t0=$(date +%s.%N)
    "$READ_COST" "$reader" "$SECS" "${URLS[@]}" 2> "$TMP/$reader.err" || die "$reader failed: $(tail -5 "$TMP/$reader.err")"
    t1=$(date +%s.%N)
    cs1=$(awk '{print $14 + $15}' "/proc/$CS/stat")
    awk -v a="$cs0" -v b="$cs1" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "camsim_cpu_core=%.3f\n", (b - a) / hz / (t1 - t0) }'
done
