#!/bin/bash
# make demo: what mwr can show today.  Starts the camera simulator (4 cameras),
# records 10 s of each with the ffmpeg CLI (the recorder mwr-worker replaces
# it in a later issue), judges every recording frame by frame, and leaves the
# simulator running so you can watch it.  `scripts/demo.sh stop` ends it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${MWR_DEMO_DIR:-/tmp/mwr-demo}
CAMERAS=${CAMERAS:-4}
SECONDS_REC=${SECONDS_REC:-10}

stop() {
    if [ -f "$DEMO/camsim.pid" ]; then
        kill "$(cat "$DEMO/camsim.pid")" 2>/dev/null && echo "demo: stopped camsim (pid $(cat "$DEMO/camsim.pid"))"
        rm -f "$DEMO/camsim.pid"
    fi
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

stop
mkdir -p "$DEMO/recordings"
rm -f "$DEMO"/recordings/*.mp4
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); CTL=$(free_port)

echo "demo: starting camera simulator: $CAMERAS cameras, 640x360 at 25 fps, 1 Mbps"
"$ROOT/build/tests/camsim" --cameras "$CAMERAS" --port "$PORT" --control-port "$CTL" --gop 25 \
    > "$DEMO/camsim.out" 2> "$DEMO/camsim.log" &
echo $! > "$DEMO/camsim.pid"
for _ in $(seq 100); do grep -q ready "$DEMO/camsim.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$DEMO/camsim.out" || { echo "demo: camsim did not start, see $DEMO/camsim.log" >&2; exit 1; }

echo "demo: recording ${SECONDS_REC} s of every camera with ffmpeg -c copy ..."
pids=()
for i in $(seq "$CAMERAS"); do
    ffmpeg -nostdin -v error -rtsp_transport tcp -i "rtsp://127.0.0.1:$PORT/cam$i" -c copy \
        -t "$SECONDS_REC" -y "$DEMO/recordings/cam$i.mp4" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

echo "demo: judging every recording frame by frame (tests/framecheck)"
for i in $(seq "$CAMERAS"); do
    "$ROOT/build/tests/framecheck" --json --camera "cam$i" "$DEMO/recordings/cam$i.mp4" 2>/dev/null |
        /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); print("  cam%s: %d frames, numbers %d..%d, missing %d, duplicated %d: %s" % (sys.argv[1], r["frames"], r["first"], r["last"], r["missing"], r["duplicated"], "clean" if r["clean"] else "DEFECTS"))' "$i" || true
done

cat <<EOT

demo: the simulator keeps running (pid $(cat "$DEMO/camsim.pid")):
  cameras     rtsp://127.0.0.1:$PORT/cam1 .. cam$CAMERAS   (ffplay -rtsp_transport tcp URL)
  control     127.0.0.1:$CTL   e.g.  echo 'outage cam1 5' | python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",$CTL)); s.sendall(sys.stdin.buffer.read()); print(s.recv(4096).decode())'
  recordings  $DEMO/recordings/   (judge: build/tests/framecheck FILE)
  stop it     scripts/demo.sh stop
EOT
