#!/bin/bash
# make demo: what mwr can show today.  Starts the camera simulator (4 cameras)
# and one mwr-worker recording them, lets it record for a while, judges every
# finished segment frame by frame, and leaves both running so you can watch
# the segments and the index grow.  `scripts/demo.sh stop` ends them.
# (The supervisor, haproxy and a zero-downtime deploy join with issue 6.)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${MWR_DEMO_DIR:-/tmp/mwr-demo}
CAMERAS=${CAMERAS:-4}
SECONDS_REC=${SECONDS_REC:-15}

stop() {
    for name in worker camsim; do
        if [ -f "$DEMO/$name.pid" ]; then
            pid=$(cat "$DEMO/$name.pid")
            if kill "$pid" 2>/dev/null; then
                for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                echo "demo: stopped $name (pid $pid)"
            fi
            rm -f "$DEMO/$name.pid"
        fi
    done
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

stop
rm -rf "$DEMO"
mkdir -p "$DEMO"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); CTL=$(free_port); HTTP=$(free_port)

echo "demo: starting camera simulator: $CAMERAS cameras, 640x360 at 25 fps, 1 Mbps"
"$ROOT/build/tests/camsim" --cameras "$CAMERAS" --port "$PORT" --control-port "$CTL" --gop 25 \
    > "$DEMO/camsim.out" 2> "$DEMO/camsim.log" &
echo $! > "$DEMO/camsim.pid"
for _ in $(seq 100); do grep -q ready "$DEMO/camsim.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$DEMO/camsim.out" || { echo "demo: camsim did not start, see $DEMO/camsim.log" >&2; exit 1; }

/usr/bin/python3 - "$DEMO" "$PORT" "$CAMERAS" > "$DEMO/mwr.json" <<'EOF'
import json, sys
demo, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(json.dumps({"storage_dir": demo + "/recordings", "db_path": demo + "/mwr.db", "segment_seconds": 4,
                  "cameras": [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:{port}/cam{i}"} for i in range(1, n + 1)]},
                 indent=2))
EOF
echo "demo: starting mwr-worker (instance a) with $DEMO/mwr.json"
"$ROOT/build/bin/mwr-worker" --config "$DEMO/mwr.json" --instance-id a --port "$HTTP" \
    > /dev/null 2> "$DEMO/worker.log" &
echo $! > "$DEMO/worker.pid"
for i in $(seq "$SECONDS_REC"); do
    printf '\rdemo: recording ... %2d/%d s' "$i" "$SECONDS_REC"
    sleep 1
    kill -0 "$(cat "$DEMO/worker.pid")" 2>/dev/null || { echo; echo "demo: the worker exited, see $DEMO/worker.log" >&2; exit 1; }
done
echo

echo "demo: judging every finished segment frame by frame (tests/framecheck)"
for i in $(seq "$CAMERAS"); do
    mapfile -t files < <(sqlite3 "$DEMO/mwr.db" \
        "SELECT path FROM video_segments WHERE camera_id = 'cam$i' AND status = 'complete' ORDER BY start_us")
    [ "${#files[@]}" -gt 0 ] || { echo "  cam$i: no finished segment yet"; continue; }
    "$ROOT/build/tests/framecheck" --json --camera "cam$i" "${files[@]}" 2>/dev/null |
        /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); print("  cam%s: %d segments, %d frames, numbers %d..%d, missing %d, duplicated %d: %s" % (sys.argv[1], len(r["files"]), r["frames"], r["first"], r["last"], r["missing"], r["duplicated"], "clean" if r["clean"] else "DEFECTS"))' "$i" || true
done

cat <<EOT

demo: camsim (pid $(cat "$DEMO/camsim.pid")) and mwr-worker (pid $(cat "$DEMO/worker.pid")) keep running:
  cameras     rtsp://127.0.0.1:$PORT/cam1 .. cam$CAMERAS   (ffplay -rtsp_transport tcp URL)
  segments    $DEMO/recordings/CAMERA/DATE/*.mp4
  index       $DEMO/mwr.db   e.g.  sqlite3 $DEMO/mwr.db 'SELECT camera_id, start_us, frames, status FROM video_segments'
  worker log  $DEMO/worker.log
  a fault     printf 'outage cam1 5\n' | /usr/bin/python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",$CTL)); s.sendall(sys.stdin.buffer.read()); print(s.recv(99).decode())'
              (then: sqlite3 $DEMO/mwr.db 'SELECT * FROM gaps')
  stop it     scripts/demo.sh stop
EOT
