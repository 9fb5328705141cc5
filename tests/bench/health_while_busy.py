#!/usr/bin/python3
"""mwr-worker's /health latency while the worker does its heaviest work.

usage: tests/bench/health_while_busy.py [CAMERAS=16] [OLD_ROWS=100000]

camsim with CAMERAS cameras and one worker recording all of them; its DB is
first given OLD_ROWS segment rows older than retention_days (files gone), so
the disk guard sweeps them while the worker records, and six hours of cam1
rows (copies of rows it recorded, with their frame indexes) so a 6-hour
playlist is real work.  /health is asked 200 times a second (4 keep-alive
clients, paced) through three phases of load, each measured alone:
  sweep     the retention sweep of OLD_ROWS rows, from the worker's start
            until the rows are gone (or 60 s);
  playlist  6-hour playlists of cam1 requested back to back for 20 s;
  sighup    SIGHUP with every camera's URL changed (all 16 stop and start),
            three times, 5 s apart.
Prints key=value lines: per phase the /health count, p50/p99/max ms,
failures, and what the phase did.  Needs `make all`.
"""
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAMSIM = os.path.join(ROOT, "build/tests/camsim")
WORKER = os.path.join(ROOT, "build/bin/mwr-worker")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 16
OLD_ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
RATE, THREADS = 200.0, 4
SEGMENT_S = 4
SWEEP_MAX_S = float(os.environ.get('SWEEP_MAX_S', 300))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"health_while_busy: timed out waiting for {what}")


class Pacer:
    """THREADS keep-alive clients asking /health at RATE in total; latency
    from each request's send to its whole body, per phase."""

    def __init__(self, port):
        self.port, self.phase, self.lat, self.fail = port, None, {}, {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ts = [threading.Thread(target=self.run, args=(k,), daemon=True) for k in range(THREADS)]
        for t in self.ts:
            t.start()

    def run(self, k):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        period, nxt = THREADS / RATE, time.monotonic() + k / RATE
        while not self.stop.is_set():
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            nxt += period
            phase, s = self.phase, time.monotonic()
            try:
                c.request("GET", "/health")
                r = c.getresponse()
                r.read()
                ok = r.status in (200, 503)  # a 503 is an answer: the worker is up
            except Exception:
                ok = False
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            if phase:
                with self.lock:
                    if ok:
                        self.lat.setdefault(phase, []).append(time.monotonic() - s)
                    else:
                        self.fail[phase] = self.fail.get(phase, 0) + 1

    def report(self, phase):
        lat = sorted(self.lat.get(phase, []))

        def pct(p):
            return lat[max(0, math.ceil(p * len(lat)) - 1)] * 1e3 if lat else float("nan")
        print(f"{phase}_health_requests={len(lat)}")
        print(f"{phase}_health_p50_ms={pct(.5):.3f}")
        print(f"{phase}_health_p99_ms={pct(.99):.3f}")
        print(f"{phase}_health_max_ms={(lat[-1] * 1e3 if lat else float('nan')):.3f}")
        print(f"{phase}_health_failures={self.fail.get(phase, 0)}")


def main():
    tmp = tempfile.mkdtemp(prefix="mwr-bench-")
    procs = []
    try:
        cs = subprocess.Popen([CAMSIM, "--cameras", str(N), "--port", "0", "--control-port", "0", "--gop", "50"],
                              stdout=open(f"{tmp}/camsim.out", "w"), stderr=open(f"{tmp}/camsim.err", "w"))
        procs.append(cs)
        wait(lambda: "ready" in open(f"{tmp}/camsim.out").read(), 30, "camsim")
        rtsp = open(f"{tmp}/camsim.out").read().split("rtsp_port=")[1].split()[0]
        cfg = {"storage_dir": f"{tmp}/rec", "db_path": f"{tmp}/mwr.db", "segment_seconds": SEGMENT_S,
               "disk": {"retention_days": 7, "min_free_mb": 1},
               "cameras": [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:{rtsp}/cam{i}"} for i in range(1, N + 1)]}

        def write_cfg(suffix=""):
            for i, c in enumerate(cfg["cameras"]):
                c["url"] = f"rtsp://127.0.0.1:{rtsp}/cam{i + 1}{suffix}"
            with open(f"{tmp}/mwr.json", "w") as f:
                json.dump(cfg, f)
        write_cfg()
        port = free_port()

        def start_worker(name):
            w = subprocess.Popen([WORKER, "--config", f"{tmp}/mwr.json", "--instance-id", "bench", "--port",
                                  str(port)], stdout=open(f"{tmp}/{name}.out", "w"),
                                 stderr=open(f"{tmp}/{name}.err", "w"))
            procs.append(w)
            wait(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200, 60,
                 "/health 200")
            return w
        # a first run records real rows to copy from
        w = start_worker("worker0")
        wait(lambda: sqlite3.connect(cfg["db_path"]).execute(
            "SELECT count(*) FROM video_segments WHERE camera_id='cam1' AND status='complete'").fetchone()[0] >= 3,
            60, "three complete cam1 segments")
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=30)
        con = sqlite3.connect(cfg["db_path"])
        now_us = int(time.time() * 1e6)
        src = con.execute("SELECT id, start_us, end_us, path FROM video_segments WHERE camera_id='cam1' AND "
                          "status='complete' ORDER BY start_us LIMIT 1").fetchone()
        dur = src[2] - src[1]
        cols = [r[1] for r in con.execute("PRAGMA table_info(video_segments)")]
        other = [c for c in cols if c not in ("id", "path", "start_us", "end_us", "segment_num", "camera_id")]
        # six hours of cam1 before the recording, each a copy of a real row and its frame index
        n6 = int(6 * 3600e6 // dur)
        with con:
            for k in range(n6):
                st = src[1] - (n6 - k) * dur
                cur = con.execute(f"INSERT INTO video_segments(camera_id, path, start_us, end_us, segment_num, "
                                  f"{', '.join(other)}) SELECT camera_id, path || '.copy{k}', ?, ?, ?, "
                                  f"{', '.join(other)} FROM video_segments WHERE id = ?",
                                  (st, st + dur, 100000 + k, src[0]))
                con.execute("INSERT INTO segment_frames(segment_id, blob) SELECT ?, blob FROM segment_frames "
                            "WHERE segment_id = ?", (cur.lastrowid, src[0]))
                os.link(src[3], f"{src[3]}.copy{k}")  # the playlist reads each file's init section
            old = now_us - 8 * 86400 * 10**6 - OLD_ROWS * dur  # every one past retention_days (7)
            con.executemany(f"INSERT INTO video_segments(camera_id, path, start_us, end_us, segment_num, "
                            f"{', '.join(other)}) SELECT 'old', ?, ?, ?, ?, {', '.join(other)} "
                            f"FROM video_segments WHERE id = {src[0]}",
                            ((f"{tmp}/rec/old/gone_{k}.mp4", old + k * dur, old + (k + 1) * dur, k)
                             for k in range(OLD_ROWS)))
        con.close()
        print(f"cameras={N}")
        print(f"playlist_rows_6h={n6}")
        print(f"old_rows={OLD_ROWS}")

        # phase 1: the sweep, from the start
        def old_left():
            c = sqlite3.connect(cfg["db_path"], timeout=10)
            try:
                return c.execute("SELECT count(*) FROM video_segments WHERE camera_id='old'").fetchone()[0]
            finally:
                c.close()
        t0 = time.monotonic()  # the sweep starts with the worker
        w = subprocess.Popen([WORKER, "--config", f"{tmp}/mwr.json", "--instance-id", "bench", "--port", str(port)],
                             stdout=open(f"{tmp}/worker.out", "w"), stderr=open(f"{tmp}/worker.err", "w"))
        procs.append(w)
        pacer = Pacer(port)

        def answers():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            except urllib.error.HTTPError:
                return True  # 503 while the cameras connect: an answer
        wait(answers, 30, "/health")
        pacer.phase = "sweep"
        print(f"sweep_rows_left_at_first_answer={old_left()}")

        while time.monotonic() - t0 < SWEEP_MAX_S and old_left() > 0:
            time.sleep(1)
        pacer.phase = None
        print(f"sweep_s={time.monotonic() - t0:.1f}")
        print(f"sweep_rows_left={old_left()}")
        pacer.report("sweep")

        # phase 2: 6-hour playlists back to back
        pacer.phase = "playlist"
        t0, n, took = time.monotonic(), 0, []
        frm, to = int(time.time()) - 6 * 3600 + 60, int(time.time())
        while time.monotonic() - t0 < 20:
            s = time.monotonic()
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras/cam1/playlist.m3u8?from={frm}"
                                              f"&to={to}", timeout=120).read()
            except urllib.error.HTTPError as e:
                raise SystemExit(f"health_while_busy: playlist: {e.code} {e.read().decode(errors='replace')}")
            took.append(time.monotonic() - s)
            n += 1
        pacer.phase = None
        print(f"playlist_requests={n}")
        print(f"playlist_s_each={sum(took) / len(took):.3f}")
        print(f"playlist_bytes={len(body)}")
        pacer.report("playlist")

        # phase 3: SIGHUP, every camera changed
        pacer.phase = "sighup"
        for k in range(3):
            write_cfg(f"?v={k}")
            w.send_signal(signal.SIGHUP)
            time.sleep(5)
        pacer.phase = None
        print(f"sighup_reloads={open(f'{tmp}/worker.err').read().count('reloaded')}")
        pacer.report("sighup")
        pacer.stop.set()
        w.send_signal(signal.SIGTERM)
        print(f"worker_exit={w.wait(timeout=30)}")
        print("command=tests/bench/health_while_busy.py " + " ".join(sys.argv[1:]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("KEEP_LOGS"):
            for f in os.listdir(tmp):
                if f.endswith((".err", ".out")):
                    shutil.copy(os.path.join(tmp, f), os.environ["KEEP_LOGS"])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
