#!/usr/bin/python3
"""How long the web timeline's one request for a day takes:
GET /api/cameras/cam1/coverage over 24 h of 10 s segments.

usage: tests/bench/coverage_day.py [COPIES=2] [REQUESTS=30]

A worker creates the index (its one camera points at a closed port: it
records nothing); the day is then written into video_segments as COPIES
instances' rows (8640 each, 10 s apart, like a hot standby's two copies,
inserted in time order as recording writes them),
with a 60 s outage in every copy and its gap row.  REQUESTS sequential
requests on loopback, timed from the client: median, p95 and max, and the
answer's size.  Needs `make all`."""
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "build/bin/mwr-worker")
COPIES = int(sys.argv[1]) if len(sys.argv) > 1 else 2
N = int(sys.argv[2]) if len(sys.argv) > 2 else 30
SEG_US = 10_000_000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    tmp = tempfile.mkdtemp(prefix="mwr-coverage-")
    port = free_port()
    cfg = {"storage_dir": os.path.join(tmp, "rec"), "db_path": os.path.join(tmp, "mwr.db"), "segment_seconds": 10,
           "disk": {"min_free_mb": 0},
           "cameras": [{"id": "cam1", "url": f"rtsp://127.0.0.1:{free_port()}/cam1"}]}
    with open(os.path.join(tmp, "mwr.json"), "w") as f:
        json.dump(cfg, f)
    w = subprocess.Popen([WORKER, "--config", os.path.join(tmp, "mwr.json"), "--instance-id", "bench",
                          "--port", str(port)], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "w.err"), "w"))
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/api/cameras", timeout=2).read()
                break
            except Exception:
                time.sleep(0.1)
        day0 = (int(time.time()) // 86400 - 1) * 86400 * 1_000_000  # yesterday, UTC midnight
        out_s, out_e = day0 + 12 * 3600 * 1_000_000, day0 + 12 * 3600 * 1_000_000 + 60_000_000
        db = sqlite3.connect(cfg["db_path"], timeout=30)
        rows, n = [], 0
        for c in range(COPIES):
            inst = f"i{c}"
            for k in range(86400 * 1_000_000 // SEG_US):
                s = day0 + k * SEG_US + c * 20_000  # copies 20 ms apart, as two sessions are
                if out_s <= s < out_e:
                    continue
                n += 1
                rows.append(("cam1", inst, f"{tmp}/rec/cam1/x_{inst}_{k}.mp4", k, s, s + SEG_US, 250, 1_250_000,
                             10, 10, "complete", "rtcp", s, s))
            db.execute("INSERT INTO gaps(camera_id, instance_id, start_us, end_us, reason, detail, created_us) "
                       "VALUES ('cam1', ?, ?, ?, 'camera_down', 'bench outage', ?)", (inst, out_s, out_e, out_e))
        rows.sort(key=lambda r: r[4])  # in the order recording writes them: by time, copies interleaved
        db.executemany("INSERT INTO video_segments(camera_id, instance_id, path, segment_num, start_us, end_us, "
                       "frames, bytes, keyframes, fragments, status, time_source, created_us, updated_us) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.commit()
        db.close()
        url = f"{base}/api/cameras/cam1/coverage?from={day0 / 1e6}&to={day0 / 1e6 + 86400}"
        times, size, body = [], 0, None
        for _ in range(N):
            t0 = time.perf_counter()
            body = urllib.request.urlopen(url, timeout=30).read()
            times.append((time.perf_counter() - t0) * 1000)
            size = len(body)
        j = json.loads(body)
        assert j["segments"] == n and len(j["gaps"]) == 1 and len(j["copies"]) == COPIES, (j["segments"], j["gaps"])
        times.sort()
        print(f"command=tests/bench/coverage_day.py {COPIES} {N}")
        print(f"segments={n}")
        print(f"coverage_ms_median={statistics.median(times):.1f}")
        print(f"coverage_ms_p95={times[int(len(times) * 0.95) - 1]:.1f}")
        print(f"coverage_ms_max={times[-1]:.1f}")
        print(f"answer_bytes={size}")
    finally:
        w.terminate()
        w.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
