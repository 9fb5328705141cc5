"""mwr-supervisor run: it starts the active worker with a notify socket of its
own, tells its own manager READY only once that worker is ready, restarts a
SIGKILLed worker at once (footage lost judged by the frame judge), adopts a
running worker after being SIGKILLed and started again, and stops the
workers gracefully on SIGTERM."""
import json
import os
import pwd
import signal
import socket
import subprocess
import time
import urllib.request

from conftest import BUILD, framecheck, free_port, wait_for
from test_worker_records import FPS, WORKER, recording_frames, segments, write_config

SUPERVISOR = os.path.join(BUILD, "bin", "mwr-supervisor")
LOGIN = pwd.getpwuid(os.geteuid()).pw_name  # haproxy's admin socket is made ours


def sup_config(tmp, cs, cameras=2):
    run = os.path.join(tmp, "run")
    os.makedirs(run, exist_ok=True)
    ports = [free_port(), free_port()]
    return write_config(tmp, cs, cameras, worker={"binary": WORKER, "bind": "127.0.0.1", "ports": ports},
                        haproxy={"socket": os.path.join(run, "haproxy.sock"), "frontend_port": free_port(),
                                 "stats_port": free_port(), "plain_http": True, "socket_user": LOGIN},
                        auth={"required": False},  # test_security.py covers the door
                        deploy={"overlap_seconds": 5, "health_timeout_seconds": 20, "stop_timeout_seconds": 10},
                        supervisor={"metrics_port": free_port()},
                        control_socket=os.path.join(run, "supervisor.sock"))


class Notify:
    """A NOTIFY_SOCKET of the test's own: what the supervisor tells systemd."""
    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.msgs = []

    def drain(self):
        try:
            while True:
                self.msgs.append(self.sock.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            pass
        return "\n".join(self.msgs)


def start_supervisor(procs, cfg_path, notify=None, name="supervisor"):
    env = dict(os.environ)
    if notify:
        env["NOTIFY_SOCKET"] = notify.path
    return procs.start(name, [SUPERVISOR, "run", "--config", cfg_path], env=env)


def status(cfg_path):
    r = subprocess.run([SUPERVISOR, "status", "--json", "--config", cfg_path], capture_output=True, timeout=10)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def active_slot(cfg_path):
    st = status(cfg_path)
    if not st:
        return None
    return next(s for s in st["slots"] if s["active"])


def healthy(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
    except Exception:
        return False


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[1].split()[0] != "Z"


def test_supervisor_restarts_a_killed_worker_within_a_second(procs, camsim, tmp_path):
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), cs)
    notify = Notify(str(tmp_path))
    sup = start_supervisor(procs, cfg_path, notify)
    wait_for(lambda: "READY=1" in notify.drain(), 30, "supervisor READY=1")
    a = active_slot(cfg_path)
    assert a["slot"] == "a" and a["state"] == "ready" and a["pid"] > 0, a
    procs.track_pid(a["pid"])
    wait_for(lambda: healthy(cfg["worker"]["ports"][0]), 30, "worker healthy")
    wait_for(recording_frames(cfg, 3 * FPS), 30, "3 s recorded")  # something to lose
    assert "STATUS=active a pid" in notify.drain()
    pid = a["pid"]
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    new = wait_for(lambda: (s := active_slot(cfg_path)) and s["pid"] not in (0, pid) and s, 5, "worker restarted")
    restart_s = time.monotonic() - t0
    procs.track_pid(new["pid"])
    assert restart_s < 1.0, restart_s
    wait_for(lambda: healthy(cfg["worker"]["ports"][0]), 30, "restarted worker healthy")
    time.sleep(3)
    st = status(cfg_path)
    assert st["restarts"] == 1 and not st["crash_loop"], st
    # the recovery is in the supervisor's metrics, over HTTP and the control socket
    url = f"http://127.0.0.1:{cfg['supervisor']['metrics_port']}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    assert "mwr_supervisor_worker_restarts_total 1" in text, text
    assert "mwr_supervisor_recovery_seconds_count 1" in text, text
    rec = float(next(l.split()[1] for l in text.splitlines() if l.startswith("mwr_supervisor_last_recovery_seconds ")))
    assert 0 < rec < 5, rec
    cli = subprocess.run([SUPERVISOR, "metrics", "--config", cfg_path], capture_output=True, timeout=10)
    assert cli.returncode == 0 and b'mwr_supervisor_slot_active{slot="a"} 1' in cli.stdout, cli.stdout
    # graceful stop of everything
    os.kill(sup.pid, signal.SIGTERM)
    assert sup.wait(timeout=20) == 0, open(sup.err_path).read()[-3000:]
    assert not alive(new["pid"])
    assert "STOPPING=1" in notify.drain()
    for cam in ("cam1", "cam2"):
        segs = segments(cfg, cam)
        # a segment the SIGKILL hit before its first fragment holds nothing: corrupt, 0 frames
        assert all(s["status"] in ("complete", "partial") or (s["status"] == "corrupt" and s["frames"] == 0)
                   for s in segs), segs
        rep, _ = framecheck([s["path"] for s in segs if s["frames"] > 0], "--camera", cam)
        assert rep["duplicated"] == 0
        # SIGKILL: at most the last fragment (1 s) plus the restart and reconnect
        assert rep["missing"] <= FPS * (1 + restart_s) + 2 * FPS, (rep["missing_ranges"], restart_s)


def test_supervisor_killed_and_restarted_adopts_the_worker(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), cs, cameras=1)
    sup = start_supervisor(procs, cfg_path)
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker ready")
    procs.track_pid(a["pid"])
    wait_for(lambda: healthy(cfg["worker"]["ports"][0]), 30, "worker healthy")
    os.kill(sup.pid, signal.SIGKILL)
    sup.wait(timeout=10)
    time.sleep(1)
    assert alive(a["pid"]) and healthy(cfg["worker"]["ports"][0])  # the worker outlived its supervisor
    sup2 = start_supervisor(procs, cfg_path, name="supervisor-2")
    b = wait_for(lambda: active_slot(cfg_path), 10, "second supervisor answering")
    assert b["pid"] == a["pid"] and b["adopted"], (a, b)
    time.sleep(2)
    assert active_slot(cfg_path)["pid"] == a["pid"]  # not restarted behind our back
    os.kill(sup2.pid, signal.SIGTERM)
    assert sup2.wait(timeout=20) == 0, open(sup2.err_path).read()[-3000:]
    wait_for(lambda: not alive(a["pid"]), 10, "adopted worker stopped")
    segs = segments(cfg, "cam1")
    assert segs and all(s["status"] == "complete" for s in segs), segs


def test_supervisor_status_without_daemon_and_bad_usage(tmp_path):
    cfg = os.path.join(tmp_path, "c.json")
    with open(cfg, "w") as f:
        json.dump({"storage_dir": str(tmp_path), "db_path": os.path.join(tmp_path, "m.db"), "segment_seconds": 4,
                   "cameras": [], "control_socket": os.path.join(tmp_path, "none.sock")}, f)
    r = subprocess.run([SUPERVISOR, "status", "--config", cfg], capture_output=True, timeout=10)
    assert r.returncode == 1 and b"none.sock" in r.stderr and b"running" in r.stderr
    r = subprocess.run([SUPERVISOR, "explode", "--config", cfg], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"unknown command" in r.stderr
    r = subprocess.run([SUPERVISOR, "deploy", "--overlap", "x", "--config", cfg], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"--overlap" in r.stderr
    r = subprocess.run([SUPERVISOR, "--version"], capture_output=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith(b"mwr-supervisor ")


def test_supervisor_upgrades_itself_without_stopping_the_worker(procs, camsim, tmp_path):
    """upgrade --binary NEW: the daemon re-execs (same pid, so systemd keeps
    it), adopts its worker, and still restarts it when it dies."""
    import shutil
    cs = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), cs, cameras=1)
    v1, v2 = os.path.join(tmp_path, "sup-v1"), os.path.join(tmp_path, "sup-v2")
    shutil.copy(SUPERVISOR, v1)
    shutil.copy(SUPERVISOR, v2)
    sup = procs.start("supervisor", [v1, "run", "--config", cfg_path])
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker ready")
    procs.track_pid(a["pid"])
    assert status(cfg_path)["binary"] == v1
    r = subprocess.run([SUPERVISOR, "upgrade", "--binary", v2, "--config", cfg_path], capture_output=True,
                       timeout=20)
    assert r.returncode == 0 and b"re-executing" in r.stdout, r.stdout + r.stderr
    st = wait_for(lambda: (x := status(cfg_path)) and x["binary"] == v2 and x, 10, "re-executed supervisor")
    assert st["pid"] == sup.pid  # exec keeps the pid
    b = next(s for s in st["slots"] if s["active"])
    assert b["pid"] == a["pid"] and b["adopted"], b
    assert healthy(cfg["worker"]["ports"][0])
    # the re-executed image watches (and reaps) its worker
    os.kill(a["pid"], signal.SIGKILL)
    new = wait_for(lambda: (s := active_slot(cfg_path)) and s["pid"] not in (0, a["pid"]) and s, 5, "restart")
    procs.track_pid(new["pid"])
    r = subprocess.run([SUPERVISOR, "upgrade", "--binary", os.path.join(tmp_path, "missing"), "--config",
                        cfg_path], capture_output=True, timeout=20)
    assert r.returncode == 1 and b"not re-executing" in r.stderr, r.stderr
    os.kill(sup.pid, signal.SIGTERM)
    assert sup.wait(timeout=20) == 0
    wait_for(lambda: not alive(new["pid"]), 10, "worker stopped")


def test_supervisor_kills_and_restarts_a_worker_whose_watchdog_expires(procs, camsim, tmp_path):
    """A recorder thread that hangs (test hook) stops the worker's WATCHDOG=1
    pings: the supervisor kills it after 10 s of silence and restarts it."""
    cs = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), cs, cameras=1)
    sup = procs.start("supervisor", [SUPERVISOR, "run", "--config", cfg_path],
                      env=dict(os.environ, MWR_TEST_STALL_CAMERA="cam1"))
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker ready")
    procs.track_pid(a["pid"])
    t0 = time.monotonic()
    new = wait_for(lambda: (s := active_slot(cfg_path)) and s["pid"] not in (0, a["pid"]) and s, 40,
                   "hung worker replaced")
    procs.track_pid(new["pid"])
    took = time.monotonic() - t0
    assert 8 < took < 30, took  # 4 s of frames, then 10 s without a ping
    log = open(sup.err_path).read()
    assert "sent nothing for" in log and "killed by signal 9" in log, log[-2000:]


def test_supervisor_watchdog_covers_an_adopted_worker(procs, camsim, tmp_path):
    """A worker adopted by a restarted supervisor (it outlived the old one)
    that hangs is killed and restarted like one the supervisor started: the
    adopted were never watchdog-checked."""
    cs = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), cs, cameras=1)
    sup = procs.start("supervisor", [SUPERVISOR, "run", "--config", cfg_path],
                      env=dict(os.environ, MWR_TEST_STALL_CAMERA="cam1"))
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker ready")
    procs.track_pid(a["pid"])
    os.kill(sup.pid, signal.SIGKILL)  # before the worker's stall (after 100 frames)
    sup.wait(timeout=10)
    sup2 = start_supervisor(procs, cfg_path, name="supervisor-2")
    b = wait_for(lambda: active_slot(cfg_path), 10, "second supervisor answering")
    assert b["pid"] == a["pid"] and b["adopted"], (a, b)
    new = wait_for(lambda: (s := active_slot(cfg_path)) and s["pid"] not in (0, a["pid"]) and s, 40,
                   "hung adopted worker replaced")
    procs.track_pid(new["pid"])
    assert not alive(a["pid"])
    log = open(sup2.err_path).read()
    assert "sent nothing for" in log, log[-2000:]
    os.kill(sup2.pid, signal.SIGTERM)
    assert sup2.wait(timeout=20) == 0
