#!/usr/bin/python3
"""What hot standby costs beside cold: the same cameras recorded by
mwr-supervisor with supervisor.standby "cold", then "hot".

usage: tests/bench/standby_cost.py [CAMERAS=8] [SECONDS=60]

For each mode: camsim with CAMERAS cameras (640x360 25 fps, its defaults),
mwr-supervisor with its workers (no haproxy: it is not on the recording
path), 10 s to settle once every worker is ready, then over SECONDS: CPU
(utime+stime from /proc/PID/stat) of every worker and of the supervisor,
RSS (VmRSS) of the workers at the end, bytes added under storage_dir, and
the RTSP sessions camsim serves.  Prints key=value lines per mode; bytes a
day is the window's bytes scaled to 86400 s.  Hot mode then stops and runs
what supervisor.standby_retention_seconds runs, `mwr dedup --delete`, over
everything recorded: its time and CPU, and the share of the bytes kept.
Needs `make all`.
"""
import json
import resource
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAMSIM = os.path.join(ROOT, "build/tests/camsim")
SUPERVISOR = os.path.join(ROOT, "build/bin/mwr-supervisor")
WORKER = os.path.join(ROOT, "build/bin/mwr-worker")
MWR = os.path.join(ROOT, "build/bin/mwr")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 8
SECS = int(sys.argv[2]) if len(sys.argv) > 2 else 60
SETTLE = 10
HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for n in files:
            try:
                total += os.lstat(os.path.join(d, n)).st_size
            except FileNotFoundError:
                pass
    return total


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise SystemExit(f"standby_cost: timed out after {timeout} s waiting for {what}")


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(mode):
    tmp = tempfile.mkdtemp(prefix=f"mwr-standby-{mode}-")
    procs = []
    try:
        rtsp, ctl = free_port(), free_port()
        cs = subprocess.Popen([CAMSIM, "--cameras", str(N), "--port", str(rtsp), "--control-port", str(ctl)],
                              stdout=open(os.path.join(tmp, "camsim.out"), "w"), stderr=subprocess.DEVNULL)
        procs.append(cs)
        wait(lambda: "ready" in open(os.path.join(tmp, "camsim.out")).read(), 15, "camsim")
        run_dir = os.path.join(tmp, "run")
        os.makedirs(run_dir)
        cfg = {"storage_dir": os.path.join(tmp, "rec"), "db_path": os.path.join(tmp, "mwr.db"),
               "segment_seconds": 10,
               "cameras": [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:{rtsp}/cam{i}"} for i in range(1, N + 1)],
               "worker": {"binary": WORKER, "bind": "127.0.0.1", "ports": [free_port(), free_port()]},
               "haproxy": {"socket": os.path.join(run_dir, "haproxy.sock"), "plain_http": True},
               "auth": {"required": False}, "disk": {"min_free_mb": 0},
               "control_socket": os.path.join(run_dir, "supervisor.sock"),
               "supervisor": {"standby": mode}}
        cfg_path = os.path.join(tmp, "mwr.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        sup = subprocess.Popen([SUPERVISOR, "run", "--config", cfg_path], stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(tmp, "supervisor.err"), "w"))
        procs.append(sup)

        def status():
            r = subprocess.run([SUPERVISOR, "status", "--json", "--config", cfg_path], capture_output=True,
                               timeout=10)
            return json.loads(r.stdout) if r.returncode == 0 else None

        want = 2 if mode == "hot" else 1

        def ready():
            st = status()
            pids = [s["pid"] for s in st["slots"] if s["state"] == "ready" and s["pid"] > 0] if st else []
            return pids if len(pids) == want else None
        pids = wait(ready, 60, f"{want} ready worker(s)")
        time.sleep(SETTLE)
        c0 = sum(cpu_s(p) for p in pids)
        s0, b0, t0 = cpu_s(sup.pid), du(cfg["storage_dir"]), time.monotonic()
        time.sleep(SECS)
        c1 = sum(cpu_s(p) for p in pids)
        s1, b1, t1 = cpu_s(sup.pid), du(cfg["storage_dir"]), time.monotonic()
        rss = sum(rss_kb(p) for p in pids)
        sessions = 0
        with socket.create_connection(("127.0.0.1", ctl), timeout=5) as s:
            s.sendall(b"sessions\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        try:
            sessions = sum(c["open"] for c in json.loads(buf).values())
        except (ValueError, AttributeError):
            sessions = -1
        dt = t1 - t0
        print(f"{mode}_workers={len(pids)}")
        print(f"{mode}_worker_cpu_pct={(c1 - c0) / dt * 100:.1f}")
        print(f"{mode}_supervisor_cpu_pct={(s1 - s0) / dt * 100:.2f}")
        print(f"{mode}_worker_rss_mib={rss / 1024:.1f}")
        print(f"{mode}_bytes_per_s={(b1 - b0) / dt:.0f}")
        print(f"{mode}_gib_per_day={(b1 - b0) / dt * 86400 / 2**30:.1f}")
        print(f"{mode}_camera_sessions={sessions}", flush=True)
        if mode == "hot":
            retention(cfg_path, cfg, procs, sup)
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def retention(cfg_path, cfg, procs, sup):
    """The second copy deleted, as the standby retention does it."""
    stop(sup)
    procs.remove(sup)
    total = du(cfg["storage_dir"])
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run([MWR, "dedup", "--config", cfg_path, "--from", "0", "--to", str(time.time() + 60),
                        "--json", "--delete"], capture_output=True, timeout=600)
    dt = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"standby_cost: mwr dedup --delete: {r.stderr.decode()[-500:]}")
    cams = json.loads(r.stdout)["cameras"]
    with sqlite3.connect(cfg["db_path"]) as db:  # camera-hours that remain: one copy
        recorded_h = db.execute("SELECT SUM(end_us - start_us) FROM video_segments").fetchone()[0] / 3.6e9
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    print(f"hot_retention_deleted_segments={sum(c['deleted_segments'] for c in cams)}")
    print(f"hot_retention_seconds={dt:.2f}")
    print(f"hot_retention_cpu_s_per_camera_hour={cpu / recorded_h:.2f}")
    print(f"hot_retention_bytes_kept_pct={du(cfg['storage_dir']) / total * 100:.1f}", flush=True)


def main():
    for b in (CAMSIM, SUPERVISOR, WORKER):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"standby_cost: missing {b}: run make all")
    print(f"command=tests/bench/standby_cost.py {N} {SECS}")
    run("cold")
    run("hot")


if __name__ == "__main__":
    main()
