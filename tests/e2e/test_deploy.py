"""mwr-supervisor deploy against a real haproxy: the switch fails no request
through the frontend and loses no frame (judged on the export of the
handover window); bad new binaries roll back by themselves; a missing
haproxy is a clear error that changes nothing."""
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import framecheck, wait_for
from test_continuity import MWR
from test_supervisor import SUPERVISOR, Notify, active_slot, alive, healthy, start_supervisor, status, sup_config
from test_worker_records import FPS, WORKER, recording_frames, segments


def hap(sock_path, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(cmd.encode() + b"\n")
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out.decode()


MAINT, DRAIN = 0x23, 0x18  # srv_admin_state bits; 0x04 only records `disabled` in the config


def admin_states(cfg):
    """server name -> srv_admin_state from `show servers state`."""
    text = hap(cfg["haproxy"]["socket"], f"show servers state {cfg['haproxy'].get('backend', 'mwr')}")
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) > 6 and f[0].isdigit():
            out[f[3]] = int(f[6])
    return out


def start_haproxy(procs, tmp, cfg_path, cfg):
    hcfg = os.path.join(tmp, "haproxy.cfg")
    with open(hcfg, "w") as f:
        r = subprocess.run([SUPERVISOR, "proxy-config", "--config", cfg_path], stdout=f, timeout=10)
    assert r.returncode == 0
    p = procs.start("haproxy", ["haproxy", "-db", "-f", hcfg])
    wait_for(lambda: os.path.exists(cfg["haproxy"]["socket"]), 10, "haproxy socket")
    return p


class Client(threading.Thread):
    """Requests /health through the haproxy frontend, one every `every`
    seconds at most (default: as fast as it can, 10 ms apart)."""
    def __init__(self, port, every=0.0):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/health"
        self.every = every
        self.ok = self.failed = 0
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    r.read()
                    self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.failed += 1
                self.errors.append(repr(e)[:200])
            time.sleep(max(0.01, self.every - (time.monotonic() - t)))


def deploy(cfg_path, *args, timeout=120):
    r = subprocess.run([SUPERVISOR, "deploy", "--config", cfg_path, *args], capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def setup_all(procs, camsim, tmp_path, cameras=2):
    cs = camsim(cameras=cameras, gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), cs, cameras)
    start_haproxy(procs, str(tmp_path), cfg_path, cfg)
    sup = start_supervisor(procs, cfg_path)
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker a ready")
    procs.track_pid(a["pid"])
    wait_for(recording_frames(cfg, 2 * FPS), 30, "recording")
    wait_for(lambda: healthy(cfg["haproxy"]["frontend_port"]), 15, "healthy through haproxy")
    return cs, cfg_path, cfg, sup, a


def judge_exports(tmp, cfg_path, cfg, t_from, t_to):
    for cam in cfg["cameras"]:
        out = os.path.join(tmp, f"{cam['id']}-handover.mp4")
        r = subprocess.run([MWR, "export", "--config", cfg_path, "--camera", cam["id"], "--from", str(t_from),
                            "--to", str(t_to), "-o", out, "--quiet"], capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        rep, _ = framecheck([out], "--camera", cam["id"])
        assert rep["missing"] == 0 and rep["duplicated"] == 0, (cam["id"], rep)


def test_deploy_fails_no_request_and_loses_no_frame(procs, camsim, tmp_path):
    cs, cfg_path, cfg, sup, a = setup_all(procs, camsim, tmp_path)
    client = Client(cfg["haproxy"]["frontend_port"])
    client.start()
    t0 = time.time()
    time.sleep(1)
    rc, out = deploy(cfg_path, "--overlap", "5")
    time.sleep(2)
    client.stop.set()
    client.join(10)
    t1 = time.time()
    assert rc == 0, out
    assert "ok: slot b" in out and "continuity over the handover window" in out, out
    assert client.failed == 0 and client.ok > 50, (client.failed, client.ok, client.errors[:5])
    states = admin_states(cfg)
    assert states["b"] & (MAINT | DRAIN) == 0 and states["a"] & MAINT, states  # b ready, a in maint
    b = active_slot(cfg_path)
    assert b["slot"] == "b" and b["pid"] > 0
    procs.track_pid(b["pid"])
    assert not alive(a["pid"])
    st = status(cfg_path)
    assert [d["result"] for d in st["deploys"]] == ["ok"], st["deploys"]
    m = subprocess.run([SUPERVISOR, "metrics", "--config", cfg_path], capture_output=True, timeout=10).stdout.decode()
    assert 'mwr_supervisor_deploys_total{result="ok"} 1' in m and "mwr_supervisor_last_handover_gaps 0" in m, m
    ratio = float(next(l.split()[1] for l in m.splitlines() if l.startswith("mwr_supervisor_last_handover_overlap")))
    assert 0.1 < ratio < 0.9, m
    # the handover window, judged frame by frame on every camera
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, t1)
    dup = json.loads(subprocess.run([MWR, "timeline", "--config", cfg_path, "--camera", "cam1", "--from",
                                     str(t0 - 3), "--to", str(t1), "--json"], capture_output=True,
                                    timeout=60).stdout)
    assert dup["switches"] == 1 and dup["duplicate_frames"] >= 3 * FPS, dup


def test_five_deploys_in_a_row(procs, camsim, tmp_path):
    cs, cfg_path, cfg, sup, a = setup_all(procs, camsim, tmp_path, cameras=1)
    t0 = time.time()
    for i in range(5):
        rc, out = deploy(cfg_path, "--overlap", "2")
        assert rc == 0, (i, out)
        procs.track_pid(active_slot(cfg_path)["pid"])
    time.sleep(1)
    st = status(cfg_path)
    assert [d["result"] for d in st["deploys"]] == ["ok"] * 5, st["deploys"]
    assert st["active"] == "b"  # a->b->a->b->a->b
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, time.time())


def script(tmp, name, body):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, stat.S_IRWXU)
    return path


@pytest.mark.parametrize("kind", ["never_healthy", "exits_at_start", "crashes_in_overlap"])
def test_bad_binary_rolls_back(procs, camsim, tmp_path, kind):
    cs, cfg_path, cfg, sup, a = setup_all(procs, camsim, tmp_path, cameras=1)
    tmp = str(tmp_path)
    passthru = f'case "$*" in *--version*|*--check-config*) exec {WORKER} "$@";; esac\n'
    bodies = {
        "never_healthy": passthru + "exec sleep 600\n",
        "exits_at_start": passthru + "echo 'cannot start' >&2; exit 3\n",
        # dies 5 s after starting: after READY and the switch, inside the 8 s overlap
        "crashes_in_overlap": passthru + f'(sleep 5; kill -9 $$) & exec {WORKER} "$@"\n',
    }
    binary = script(tmp, f"bad-{kind}", bodies[kind])
    t0 = time.time()
    client = Client(cfg["haproxy"]["frontend_port"])
    client.start()
    rc, out = deploy(cfg_path, "--binary", binary, "--overlap", "8", "--health-timeout", "6")
    client.stop.set()
    client.join(10)
    assert rc == 1, out
    assert out.strip().splitlines()[-1].startswith("failed:"), out
    st = active_slot(cfg_path)
    assert st["slot"] == "a" and st["pid"] == a["pid"], (st, out)  # traffic stays on / returns to a
    other = next(s for s in status(cfg_path)["slots"] if s["slot"] == "b")
    assert other["pid"] == 0, other
    assert subprocess.run(["pgrep", "-f", binary], capture_output=True).returncode == 1  # nothing left
    states = admin_states(cfg)
    assert states["a"] & (MAINT | DRAIN) == 0 and states["b"] & MAINT, states
    assert client.failed == 0, client.errors[:5]
    assert [d["result"] for d in status(cfg_path)["deploys"]] == ["failed"]
    time.sleep(2)
    judge_exports(tmp, cfg_path, cfg, t0 - 3, time.time())


def test_deploy_without_haproxy_is_a_clear_error(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), cs, 1)
    start_supervisor(procs, cfg_path)
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker a ready")
    procs.track_pid(a["pid"])
    rc, out = deploy(cfg_path)
    assert rc == 1 and "haproxy runtime socket" in out, out
    time.sleep(1)
    st = active_slot(cfg_path)
    assert st["slot"] == "a" and st["pid"] == a["pid"]
    wait_for(recording_frames(cfg, 3 * FPS), 30, "still recording")


def test_supervisor_restart_then_deploy_and_haproxy_restart_keep_the_slot(procs, camsim, tmp_path):
    """SIGKILL of the supervisor, start again: the worker's pid is unchanged
    and a deploy works.  haproxy restarted afterwards comes back with the
    new slot active (the state file the supervisor keeps)."""
    cs, cfg_path, cfg, sup, a = setup_all(procs, camsim, tmp_path, cameras=1)
    os.kill(sup.pid, signal.SIGKILL)
    sup.wait(timeout=10)
    sup2 = start_supervisor(procs, cfg_path, name="supervisor-2")
    again = wait_for(lambda: active_slot(cfg_path), 10, "second supervisor answering")
    assert again["pid"] == a["pid"] and again["adopted"], again
    t0 = time.time()
    rc, out = deploy(cfg_path, "--overlap", "3")
    assert rc == 0, out
    b = active_slot(cfg_path)
    procs.track_pid(b["pid"])
    assert b["slot"] == "b" and not alive(a["pid"])
    # haproxy restarted: the state file brings b back as the active server
    hp = next(p for p in procs.started if p.name == "haproxy")
    procs.stop(hp)
    hcfg = os.path.join(tmp_path, "haproxy.cfg")
    procs.start("haproxy-2", ["haproxy", "-db", "-f", hcfg])
    def back():
        try:
            return admin_states(cfg)
        except OSError:  # the old socket file stays until the new haproxy binds
            return None
    states = wait_for(back, 10, "haproxy back")
    assert states["b"] & (MAINT | DRAIN) == 0 and states["a"] & MAINT, states
    wait_for(lambda: healthy(cfg["haproxy"]["frontend_port"]), 15, "healthy through the restarted haproxy")
    # a hand-made mistake (the active server put in maint) is put right within seconds
    assert hap(cfg["haproxy"]["socket"], "set server mwr/b state maint").strip() == ""
    wait_for(lambda: admin_states(cfg)["b"] & MAINT == 0, 10, "supervisor re-synced haproxy")
    # the line is logged when the sync's answer is back on the loop, a moment after haproxy changed
    wait_for(lambda: "haproxy re-synced" in open(sup2.err_path).read(), 10, "the re-sync logged")
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, time.time())


def test_rollback_returns_to_the_previous_binary(procs, camsim, tmp_path):
    cs, cfg_path, cfg, sup, a = setup_all(procs, camsim, tmp_path, cameras=1)
    v2 = script(str(tmp_path), "mwr-worker-v2", f'exec {WORKER} "$@"\n')  # "a new release"
    t0 = time.time()
    rc, out = deploy(cfg_path, "--binary", v2, "--overlap", "2")
    assert rc == 0, out
    b = active_slot(cfg_path)
    procs.track_pid(b["pid"])
    assert b["slot"] == "b" and b["binary"] == v2
    r = subprocess.run([SUPERVISOR, "rollback", "--config", cfg_path], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    back = active_slot(cfg_path)
    procs.track_pid(back["pid"])
    assert back["slot"] == "a" and back["binary"] == WORKER, back
    assert [d["result"] for d in status(cfg_path)["deploys"]] == ["ok", "ok"]
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, time.time())


def test_supervisor_killed_mid_deploy_loses_no_frame(procs, camsim, tmp_path):
    """SIGKILL of the supervisor in the middle of a deploy's overlap: the
    deploy client fails (it did not finish), the restarted supervisor stops
    the slot the interrupted deploy left behind, marks the deploy failed,
    and the recording has every frame."""
    cs, cfg_path, cfg, sup, a = setup_all(procs, camsim, tmp_path, cameras=1)
    t0 = time.time()
    client = subprocess.Popen([SUPERVISOR, "deploy", "--config", cfg_path, "--overlap", "20"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    b = wait_for(lambda: (s := next((x for x in (status(cfg_path) or {}).get("slots", []) if x["slot"] == "b"),
                                    None)) and s["pid"] > 0 and s, 30, "slot b started")
    procs.track_pid(b["pid"])
    time.sleep(5)  # READY, healthy, switched: inside the overlap
    os.kill(sup.pid, signal.SIGKILL)
    out, err = client.communicate(timeout=30)
    assert client.returncode == 1 and b"went away" in err, (out, err)
    sup2 = start_supervisor(procs, cfg_path, name="supervisor-2")
    active = wait_for(lambda: active_slot(cfg_path), 10, "second supervisor")
    other = "a" if active["slot"] == "b" else "b"
    wait_for(lambda: next(s for s in status(cfg_path)["slots"] if s["slot"] == other)["pid"] == 0, 20,
             "leftover slot stopped")
    d = status(cfg_path)["deploys"][0]
    assert d["result"] == "failed" and "restarted during the deploy" in d["reason"], d
    states = wait_for(lambda: (x := admin_states(cfg)) and x[other] & MAINT and x, 10, "haproxy re-synced")
    assert states[active["slot"]] & (MAINT | DRAIN) == 0, states
    time.sleep(2)
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, time.time())
    assert sup2.poll() is None


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_deploy_client_hang_up_leaves_the_supervisor_idle(procs, camsim, tmp_path):
    """Ctrl-C of `mwr-supervisor deploy` during the overlap: the supervisor
    ends that connection, stays idle (< 0.05 core; it spun at a full core
    on the hung-up socket) and finishes the deploy as it would have."""
    cs, cfg_path, cfg, sup, a = setup_all(procs, camsim, tmp_path, cameras=1)
    # SIGINT as a terminal's foreground job has it: a shell's background job
    # (a CI runner's) inherits it ignored, and the Ctrl-C would do nothing
    client = procs.start("deploy", [SUPERVISOR, "deploy", "--config", cfg_path, "--overlap", "8"],
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: "both record for" in open(client.out_path).read() + open(client.err_path).read(), 60,
             "the deploy's overlap")
    os.kill(client.pid, signal.SIGINT)
    assert client.wait(timeout=10) != 0
    c0, t0 = cpu_seconds(sup.pid), time.monotonic()
    time.sleep(3)  # measuring a rate: the interval is the measurement
    load = (cpu_seconds(sup.pid) - c0) / (time.monotonic() - t0)
    assert load < 0.05, f"supervisor at {load:.2f} core after the client hung up"
    d = wait_for(lambda: (st := status(cfg_path)) and st["deploys"] and st["deploys"][0]["result"] != "running"
                 and st["deploys"][0], 60, "the deploy's end")
    assert d["result"] == "ok", d
    b = active_slot(cfg_path)
    assert b["slot"] == "b" and b["pid"] > 0, b
    procs.track_pid(b["pid"])
    wait_for(lambda: not alive(a["pid"]), 20, "old worker stopped")
    assert sup.poll() is None


def watchdog_gaps(notify, seconds, during=None):
    """The longest time between two WATCHDOG=1 the supervisor sent in the
    next `seconds` (during() is called once a second meanwhile)."""
    last, worst, end, tick = time.monotonic(), 0.0, time.monotonic() + seconds, time.monotonic() + 1
    while time.monotonic() < end:
        try:
            msg = notify.sock.recv(4096).decode()
        except (socket.timeout, BlockingIOError):
            msg = ""
        now = time.monotonic()
        if "WATCHDOG=1" in msg:
            worst, last = max(worst, now - last), now
        if during and now >= tick:
            during()
            tick = now + 1
    return max(worst, time.monotonic() - last)


def watched_supervisor(procs, camsim, tmp_path):
    """One camera, haproxy, and a supervisor with WATCHDOG_USEC=2s whose
    notify messages come to `notify`; its worker a ready."""
    cs = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), cs, 1)
    hp = start_haproxy(procs, str(tmp_path), cfg_path, cfg)
    notify = Notify(str(tmp_path))
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="2000000")
    sup = procs.start("supervisor", [SUPERVISOR, "run", "--config", cfg_path], env=env)
    wait_for(lambda: "READY=1" in notify.drain(), 30, "supervisor READY=1")
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker a ready")
    procs.track_pid(a["pid"])
    return cfg_path, cfg, hp, notify, sup, a


def test_hung_haproxy_and_locked_database_do_not_stall_the_supervisor(procs, camsim, tmp_path):
    """Regression: the supervisor's loop waited on haproxy runtime commands
    (2 s each, a re-sync every 3 s) and on SQLite writes (5 s busy timeout
    a row): a stopped haproxy or a database another process keeps locked
    held back its WATCHDOG=1 for seconds at a time, and systemd would kill
    it.  Now they run in the background: the watchdog keeps its pace, a
    killed worker is still restarted at once, and everything is written
    once the database is free."""
    cfg_path, cfg, hp, notify, sup, a = watched_supervisor(procs, camsim, tmp_path)
    # sd-event pings between 1/2 and 3/4 of WATCHDOG_USEC; systemd kills at WATCHDOG_USEC
    assert watchdog_gaps(notify, 3) < 2.0

    # haproxy hung: it takes connections and answers nothing
    os.kill(hp.pid, signal.SIGSTOP)
    try:
        slow = []

        def ask():
            t0 = time.monotonic()
            assert active_slot(cfg_path)["slot"] == "a"
            slow.append(time.monotonic() - t0)
        worst = watchdog_gaps(notify, 8, ask)
    finally:
        os.kill(hp.pid, signal.SIGCONT)
    assert worst < 2.0, f"no WATCHDOG=1 for {worst:.1f} s while haproxy hung"
    assert max(slow) < 1.5, slow

    # the database locked by another process; the worker is killed meanwhile
    con = sqlite3.connect(cfg["db_path"], timeout=10, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        os.kill(a["pid"], signal.SIGKILL)

        def restarts():
            r = subprocess.run([SUPERVISOR, "metrics", "--config", cfg_path], capture_output=True, timeout=5)
            return b"mwr_supervisor_worker_restarts_total 1" in r.stdout
        worst = watchdog_gaps(notify, 8)
        assert restarts(), "the killed worker was not restarted"
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert worst < 2.0, f"no WATCHDOG=1 for {worst:.1f} s while the database was locked"
    # once it is free, the slots are saved: the restarted worker's pid is in the table
    new = wait_for(lambda: (s := active_slot(cfg_path)) and s["pid"] not in (0, a["pid"]) and s, 30, "restarted")
    procs.track_pid(new["pid"])
    def saved():
        db = sqlite3.connect(cfg["db_path"])
        try:
            return db.execute("SELECT pid FROM supervisor_slots WHERE name = 'a'").fetchone()
        finally:
            db.close()
    wait_for(lambda: saved() == (new["pid"],), 30, "slot row saved")
    assert sup.poll() is None


def test_hung_haproxy_during_a_deploy_does_not_stall_the_supervisor(procs, camsim, tmp_path):
    """Regression: a deploy's own haproxy commands (the check, the switch,
    the drain poll, maint, the rollback) ran on the supervisor's loop, 2 s
    each: a hung haproxy held back WATCHDOG=1 for 2-4 s at a time.  Now
    they run on the haproxy thread: the watchdog keeps its pace, a deploy
    against a hung haproxy fails with its reason, and one whose haproxy
    hangs after the switch still ends with the new worker recording."""
    cfg_path, cfg, hp, notify, sup, a = watched_supervisor(procs, camsim, tmp_path)

    # hung before the deploy: its first step, asking for the servers, times out
    os.kill(hp.pid, signal.SIGSTOP)
    try:
        client = procs.start("deploy1", [SUPERVISOR, "deploy", "--config", cfg_path, "--overlap", "2"])
        worst = watchdog_gaps(notify, 7)
        assert client.wait(timeout=30) != 0
    finally:
        os.kill(hp.pid, signal.SIGCONT)
    out = open(client.out_path).read() + open(client.err_path).read()
    assert worst < 2.0, f"no WATCHDOG=1 for {worst:.1f} s during a deploy against a hung haproxy"
    assert "haproxy runtime socket" in out and "timed out" in out, out
    assert active_slot(cfg_path)["slot"] == "a"

    # hung after the switch: the drain poll and maint time out, the deploy goes on
    client = procs.start("deploy2", [SUPERVISOR, "deploy", "--config", cfg_path, "--overlap", "2"])
    wait_for(lambda: "both record for" in open(client.out_path).read(), 60, "the deploy's switch")
    os.kill(hp.pid, signal.SIGSTOP)
    try:
        worst = watchdog_gaps(notify, 8)
        assert client.wait(timeout=60) == 0, open(client.out_path).read()
    finally:
        os.kill(hp.pid, signal.SIGCONT)
    out = open(client.out_path).read()
    assert worst < 2.0, f"no WATCHDOG=1 for {worst:.1f} s while haproxy hung during a deploy"
    assert "reading a's sessions" in out and "a maint:" in out, out
    b = active_slot(cfg_path)
    assert b["slot"] == "b" and b["pid"] > 0, b
    procs.track_pid(b["pid"])
    wait_for(lambda: not alive(a["pid"]), 20, "old worker stopped")
    # haproxy awake again: the re-sync puts the old server in maint
    wait_for(lambda: (x := admin_states(cfg)) and x["a"] & MAINT, 15, "haproxy re-synced")
    assert sup.poll() is None
