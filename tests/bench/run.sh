#!/bin/bash
# make bench: every benchmark of the tree, results on stdout.  The figures and
# the exact commands are kept in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "== camsim CPU, 16 cameras 640x360 25 fps 1 Mbps, one client each"
tests/bench/camsim_cpu.sh 16 30 1
tests/bench/camsim_cpu.sh 16 30 16
echo "== mwr-worker against 16 ffmpeg -c copy -f segment, same cameras, same run"
tests/bench/worker_vs_ffmpeg.sh 16 60
echo "== 64 cameras 1920x1080 25 fps 4 Mbit/s: the worker alone, 64 ffmpegs alone, and the worker at 4 cameras"
HD="--width 1920 --height 1080 --bitrate 4000"
CAMSIM_ARGS="$HD" SIDE=worker tests/bench/worker_vs_ffmpeg.sh 64 60
CAMSIM_ARGS="$HD" SIDE=ffmpeg tests/bench/worker_vs_ffmpeg.sh 64 60
CAMSIM_ARGS="$HD" SIDE=worker tests/bench/worker_vs_ffmpeg.sh 4 60
echo "== reading 64 cameras 1920x1080 4 Mbit/s: libavformat against our own read (the next step for the worker's CPU)"
CAMSIM_ARGS="$HD" tests/bench/read_cost.sh 64 30
echo "== /health latency under load while recording 16 cameras"
tests/bench/health_under_load.sh 16 30
echo "== /health during a retention sweep, 6-hour playlists and SIGHUPs (16 cameras)"
tests/bench/health_while_busy.py 16 100000
echo "== hot standby beside cold: CPU, RSS, bytes, camera sessions (8 cameras)"
tests/bench/standby_cost.py 8 60
echo "== the web timeline's day: /api/cameras/ID/coverage over 24 h of 10 s segments, 1 and 2 copies"
tests/bench/coverage_day.py 1 30
tests/bench/coverage_day.py 2 30
echo "== a month of 64 cameras: index size, queries, export, start-up, retention at day 1, 7 and 30 (~30 min)"
tests/bench/archive_month.py 64 30 1,7,30
echo "== soak: 16 cameras, a deploy every 5 minutes, for SOAK_MINUTES (default 60): 0 frames lost, RSS/fds/threads flat"
tests/bench/soak.py --cameras 16 --minutes "${SOAK_MINUTES:-60}" --deploy-every 300
