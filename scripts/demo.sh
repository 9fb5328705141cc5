#!/bin/bash
# make demo: the whole system on this machine.  Starts the camera simulator
# (4 cameras), haproxy with the config mwr-supervisor generates, and
# mwr-supervisor, which starts worker A; the frontend is HTTPS (a
# self-signed certificate made here) and asks for a user: `demo`, an admin
# with a password made here and printed at the end.  Records a while, performs one
# zero-downtime deploy (A -> B) with progress, judges the handover window
# frame by frame, and leaves everything running with the URLs to look at.
# `scripts/demo.sh stop` ends it all.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${MWR_DEMO_DIR:-/tmp/mwr-demo}
CAMERAS=${CAMERAS:-4}
SECONDS_REC=${SECONDS_REC:-10}
OVERLAP=${OVERLAP:-10}
BIN=$ROOT/build/bin

stop() {
    # the supervisor stops its workers itself (SIGTERM, then SIGKILL after stop_timeout)
    for name in supervisor haproxy camsim; do
        if [ -f "$DEMO/$name.pid" ]; then
            pid=$(cat "$DEMO/$name.pid")
            if kill "$pid" 2>/dev/null; then
                for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                echo "demo: stopped $name (pid $pid)"
            fi
            rm -f "$DEMO/$name.pid"
        fi
    done
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

stop
rm -rf "$DEMO"
mkdir -p "$DEMO/run"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); CTL=$(free_port); WA=$(free_port); WB=$(free_port); FRONT=$(free_port); STATS=$(free_port)

echo "demo: starting camera simulator: $CAMERAS cameras, 640x360 at 25 fps, 1 Mbps"
"$ROOT/build/tests/camsim" --cameras "$CAMERAS" --port "$PORT" --control-port "$CTL" --gop 25 \
    > "$DEMO/camsim.out" 2> "$DEMO/camsim.log" &
echo $! > "$DEMO/camsim.pid"
for _ in $(seq 100); do grep -q ready "$DEMO/camsim.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$DEMO/camsim.out" || { echo "demo: camsim did not start, see $DEMO/camsim.log" >&2; exit 1; }

echo "demo: a self-signed TLS certificate for the frontend ($DEMO/tls.pem)"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$DEMO/tls.key" -out "$DEMO/tls.crt" 2> /dev/null
(umask 077; cat "$DEMO/tls.crt" "$DEMO/tls.key" > "$DEMO/tls.pem")

(umask 027; /usr/bin/python3 - "$DEMO" "$PORT" "$CAMERAS" "$BIN" "$WA" "$WB" "$FRONT" "$STATS" "$OVERLAP" "$(id -un)" > "$DEMO/mwr.json") <<'EOF'
import json, sys
demo, port, n, bin_, wa, wb, front, stats, overlap, me = sys.argv[1:]
print(json.dumps({
    "storage_dir": demo + "/recordings", "db_path": demo + "/mwr.db", "segment_seconds": 4,
    "cameras": [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:{port}/cam{i}"} for i in range(1, int(n) + 1)],
    "worker": {"binary": bin_ + "/mwr-worker", "bind": "127.0.0.1", "ports": [int(wa), int(wb)]},
    "haproxy": {"socket": demo + "/run/haproxy.sock", "backend": "mwr", "servers": ["a", "b"],
                "frontend_port": int(front), "stats_port": int(stats), "tls_cert": demo + "/tls.pem",
                "socket_user": me, "config_file": demo + "/haproxy.cfg",
                "master_socket": demo + "/run/haproxy-master.sock"},
    "auth": {"users_file": demo + "/users.json"},
    "deploy": {"overlap_seconds": int(overlap), "health_timeout_seconds": 30, "stop_timeout_seconds": 45},
    "control_socket": demo + "/run/supervisor.sock"}, indent=2))
EOF

echo "demo: user 'demo' (admin); passwd writes the users file and haproxy's config ($DEMO/haproxy.cfg)"
PASSWORD=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
echo "$PASSWORD" | "$BIN/mwr-supervisor" passwd --config "$DEMO/mwr.json" --role admin demo 2> "$DEMO/passwd.log"
(umask 077; echo "demo:$PASSWORD" > "$DEMO/credentials")
haproxy -W -db -S "$DEMO/run/haproxy-master.sock" -f "$DEMO/haproxy.cfg" > "$DEMO/haproxy.log" 2>&1 &
echo $! > "$DEMO/haproxy.pid"
for _ in $(seq 100); do [ -S "$DEMO/run/haproxy.sock" ] && break; sleep 0.1; done
[ -S "$DEMO/run/haproxy.sock" ] || { echo "demo: haproxy did not start, see $DEMO/haproxy.log" >&2; exit 1; }

echo "demo: mwr-supervisor (starts worker a)"
"$BIN/mwr-supervisor" run --config "$DEMO/mwr.json" > /dev/null 2> "$DEMO/supervisor.log" &
echo $! > "$DEMO/supervisor.pid"
for _ in $(seq 300); do
    "$BIN/mwr-supervisor" status --json --config "$DEMO/mwr.json" 2>/dev/null | grep -q '"state":"ready","active":true' && break
    sleep 0.1
done
"$BIN/mwr-supervisor" status --config "$DEMO/mwr.json"
for i in $(seq "$SECONDS_REC"); do
    printf '\rdemo: recording ... %2d/%d s' "$i" "$SECONDS_REC"
    sleep 1
done
echo

T0=$(date +%s.%N)
echo "demo: zero-downtime deploy (a -> b, both record for ${OVERLAP} s):"
"$BIN/mwr-supervisor" deploy --config "$DEMO/mwr.json" | sed 's/^/  /'
T1=$(date +%s.%N)
"$BIN/mwr-supervisor" status --config "$DEMO/mwr.json"

echo "demo: the handover window, exported per camera and judged frame by frame:"
for i in $(seq "$CAMERAS"); do
    out="$DEMO/cam$i-handover.mp4"
    "$BIN/mwr" export --quiet --config "$DEMO/mwr.json" --camera "cam$i" \
        --from "$(awk -v t="$T0" 'BEGIN { printf "%.3f", t - 5 }')" --to "$T1" -o "$out"
    "$ROOT/build/tests/framecheck" --json --camera "cam$i" "$out" 2>/dev/null |
        /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); print("  cam%s: %d frames, numbers %d..%d, missing %d, duplicated %d: %s" % (sys.argv[1], r["frames"], r["first"], r["last"], r["missing"], r["duplicated"], "clean" if r["clean"] else "DEFECTS"))' "$i" || true
done

cat <<EOT

demo: everything keeps running.  haproxy is the one door: HTTPS, user demo, password $PASSWORD
(also in $DEMO/credentials; the certificate is $DEMO/tls.crt):
  haproxy stats   https://127.0.0.1:$STATS/stats
  web UI          https://127.0.0.1:$FRONT/ui/   (user demo; cameras, timeline, deploys)
  through haproxy curl --cacert $DEMO/tls.crt -u demo:$PASSWORD https://127.0.0.1:$FRONT/api/cameras
  worker a        http://127.0.0.1:$WA/health   (loopback only; stopped by the deploy, back after the next one)
  worker b        http://127.0.0.1:$WB/health   http://127.0.0.1:$WB/api/health
  playback (HLS)  ffplay -ca_file $DEMO/tls.crt https://demo:$PASSWORD@127.0.0.1:$FRONT/api/cameras/cam1/playlist.m3u8
  add a viewer    echo PASSWORD | $BIN/mwr-supervisor passwd --config $DEMO/mwr.json --cameras cam1 NAME
  audit log       grep 'audit: ' $DEMO/supervisor.log
  supervisor      $BIN/mwr-supervisor status --config $DEMO/mwr.json
  deploy again    $BIN/mwr-supervisor deploy --config $DEMO/mwr.json
  gaps            $BIN/mwr gaps --config $DEMO/mwr.json --from $(date -d '-1 hour' +%s) --to $(date -d '+1 hour' +%s)
  logs            $DEMO/supervisor.log (workers log there too), $DEMO/haproxy.log
  stop it all     scripts/demo.sh stop
EOT
