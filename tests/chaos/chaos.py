#!/usr/bin/python3
"""make chaos: a seeded, bounded attack on a running mwr, and a scorecard of
what was lost.

One camsim (8 cameras), haproxy with the generated config, mwr-supervisor
with its workers, and a steady request load through haproxy.  A schedule
made from CHAOS_SEED spreads faults over CHAOS_MINUTES: deploys, SIGKILL of
the active worker, SIGKILL of the standby during a deploy's overlap,
SIGKILL of the supervisor, camera outages, all RTSP sessions dropped, the
DB locked by another process, haproxy restarted, a local clock step (the
workers' wall clock, through libfaketime), storage filled to the floor,
storage gone for a few seconds (its link dangles, as an unmounted disk),
and a deploy whose client hangs up in the overlap.
At the end every camera is exported for the whole run and judged frame by
frame; each missing stretch is attributed to the fault whose window holds
it, and each fault kind is scored against its budget.

  tests/chaos/chaos.py [--minutes N] [--seed S] [--out DIR] [--cameras N] [--no-break-overlap]
Exit 0 when every budget is met, 1 otherwise, 2 on a setup error.
"""
import argparse
import json
import os
import pwd
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "build", "bin")
CAMSIM = os.path.join(ROOT, "build", "tests", "camsim")
FRAMECHECK = os.path.join(ROOT, "build", "tests", "framecheck")
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
FPS = 25
FRAME_US = 1_000_000 // FPS

KINDS = ["deploy", "kill_worker", "kill_standby_in_overlap", "kill_supervisor", "camera_outage",
         "drop_sessions", "db_lock", "haproxy_restart", "clock_step", "disk_fill", "storage_unavailable",
         "deploy_client_hangup"]
# frames a fault may cost per camera; None: not budgeted (reported only)
BUDGET = {
    "deploy": 0,
    "kill_worker": 25,            # + the time until it records again, added per event
    "kill_standby_in_overlap": 0,
    "kill_supervisor": 0,
    "camera_outage": 0,           # beyond the outage itself
    "drop_sessions": None,        # a camera reconnect: reported
    "db_lock": 0,
    "haproxy_restart": 0,
    "clock_step": 0,
    "disk_fill": 0,
    "storage_unavailable": 0,     # beyond the time it was gone + 2 s; and no row may go
    "deploy_client_hangup": 0,    # and the supervisor idle (< 0.05 core) while the deploy goes on
    "sabotage": 0,                # --sabotage: deletes footage; the scorecard must fail
}
GRACE_S = 3.0     # a fault's window: from its start to its end + this
LOOKBACK_S = 2.0  # ... and from this long before its start


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    """CPU time (user + system) a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"chaos [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Run:
    def __init__(self, args):
        self.args = args
        self.dir = args.out or tempfile.mkdtemp(prefix="mwr-chaos-")
        os.makedirs(self.dir, exist_ok=True)
        self.procs = {}
        self.faults = []
        self.http_ok = 0
        self.http_fail = []  # wall times of failed requests
        self.stop_load = threading.Event()
        self.faketime_rc = os.path.join(self.dir, "faketime.rc")

    # ---- processes ------------------------------------------------------------------
    def start(self, name, argv, env=None):
        out = open(os.path.join(self.dir, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True,
                             env=env)
        self.procs[name] = p
        return p

    def cfg_run(self, *args, timeout=180, stdout_only=False):
        """rc and what mwr-supervisor printed; stdout_only where the output is
        a file to write (proxy-config's warnings go to stderr)."""
        r = subprocess.run([os.path.join(BIN, "mwr-supervisor"), *args, "--config", self.cfg_path],
                           capture_output=True, timeout=timeout)
        if stdout_only and r.returncode == 0:
            return r.returncode, r.stdout.decode()
        return r.returncode, r.stdout.decode() + r.stderr.decode()

    def status(self):
        rc, out = self.cfg_run("status", "--json", timeout=20)
        try:
            return json.loads(out) if rc == 0 else None
        except ValueError:
            return None

    def wait(self, pred, timeout, what):
        end = time.time() + timeout
        while time.time() < end:
            v = pred()
            if v:
                return v
            time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}")

    def camsim(self, line):
        s = socket.create_connection(("127.0.0.1", self.camsim_ctl), timeout=5)
        s.sendall(line.encode() + b"\n")
        r = s.recv(4096).decode().strip()
        s.close()
        return r

    def setup(self):
        a = self.args
        with open(self.faketime_rc, "w") as f:
            f.write("+0\n")
        rtsp, self.camsim_ctl = free_port(), free_port()
        self.start("camsim", [CAMSIM, "--cameras", str(a.cameras), "--port", str(rtsp), "--control-port",
                              str(self.camsim_ctl), "--gop", str(FPS)])
        self.wait(lambda: "ready" in open(os.path.join(self.dir, "camsim.log")).read(), 15, "camsim")
        run = os.path.join(self.dir, "run")
        os.makedirs(run, exist_ok=True)
        self.storage = os.path.join(self.dir, "rec")
        os.makedirs(self.storage, exist_ok=True)
        self.storage_link = os.path.join(self.dir, "storage")  # what the config names: it can dangle
        os.symlink(self.storage, self.storage_link)
        self.tmpfs = False
        if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={a.storage_mb}m", "tmpfs",
                                                 self.storage], capture_output=True).returncode == 0:
            self.tmpfs = True
        self.cfg = {
            "storage_dir": self.storage_link, "db_path": os.path.join(self.dir, "mwr.db"), "segment_seconds": 4,
            "cameras": [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:{rtsp}/cam{i}"} for i in range(1, a.cameras + 1)],
            "worker": {"binary": self.worker_binary(run), "bind": "127.0.0.1",
                       "ports": [free_port(), free_port()]},
            "haproxy": {"socket": os.path.join(run, "haproxy.sock"), "frontend_port": free_port(),
                        "stats_port": free_port(), "plain_http": True,
                        "socket_user": pwd.getpwuid(os.geteuid()).pw_name},
            "auth": {"required": False},
            "deploy": {"overlap_seconds": a.overlap, "health_timeout_seconds": 30, "stop_timeout_seconds": 15},
            "disk": {"min_free_mb": 64 if self.tmpfs else 0},
            "control_socket": os.path.join(run, "supervisor.sock"),
            "supervisor": {"metrics_port": free_port(), "standby": a.standby},
        }
        self.cfg_path = os.path.join(self.dir, "mwr.json")
        with open(self.cfg_path, "w") as f:
            json.dump(self.cfg, f, indent=1)
        rc, text = self.cfg_run("proxy-config", stdout_only=True)
        assert rc == 0, text
        self.hcfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.hcfg, "w") as f:
            f.write(text)
        self.start_haproxy()
        self.start_supervisor()
        self.wait(lambda: self.all_recording(), 60, "every camera recording")

    def start_haproxy(self):
        self.start("haproxy", ["haproxy", "-db", "-f", self.hcfg])
        self.wait(lambda: os.path.exists(self.cfg["haproxy"]["socket"]), 10, "haproxy socket")

    def worker_binary(self, run):
        """mwr-worker, under libfaketime when it is installed (clock_step).
        Each worker gets a faketime state of its own: libfaketime shares a
        semaphore with every child of the process that made it, and a
        worker SIGKILLed while holding it wedged the next one in its
        constructor (seen as kill_worker never recovering)."""
        real = os.path.join(BIN, "mwr-worker")
        if not os.path.exists(FAKETIME_LIB):
            return real
        path = os.path.join(run, "mwr-worker")
        with open(path, "w") as f:
            f.write("#!/bin/sh\nunset FAKETIME_SHARED\n"
                    f"export LD_PRELOAD={FAKETIME_LIB} FAKETIME_TIMESTAMP_FILE={self.faketime_rc} "
                    "FAKETIME_CACHE_DURATION=1 FAKETIME_DONT_FAKE_MONOTONIC=1\n"
                    f'exec {real} "$@"\n')
        os.chmod(path, 0o755)
        return path

    def start_supervisor(self):
        self.start("supervisor", [os.path.join(BIN, "mwr-supervisor"), "run", "--config", self.cfg_path])
        self.wait(lambda: self.status(), 15, "supervisor answering")

    def active(self):
        st = self.status()
        return next((s for s in st["slots"] if s["active"]), None) if st else None

    def all_recording(self):
        a = self.active()
        if not a or a["pid"] <= 0:
            return False
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{a['port']}/health", timeout=2).read()
            return json.loads(body).get("status") == "healthy"
        except Exception:
            return False

    # ---- load -------------------------------------------------------------------------
    def load(self):
        url = f"http://127.0.0.1:{self.cfg['haproxy']['frontend_port']}/health"
        while not self.stop_load.is_set():
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
                self.http_ok += 1
            except Exception:
                self.http_fail.append(time.time())
            time.sleep(0.05)

    # ---- faults -------------------------------------------------------------------------
    def fault(self, kind, rng):
        t0 = time.time()
        info = {"kind": kind, "start": t0}
        try:
            getattr(self, "f_" + kind)(info, rng)
        except Exception as e:  # noqa: BLE001 - a fault that cannot be injected is reported
            info["error"] = repr(e)[:300]
        info["end"] = time.time()
        t_rec = time.time()
        try:
            self.wait(self.all_recording, 90, "recovery")
            info["recovery_s"] = round(time.time() - t0, 2)
        except RuntimeError:
            info["recovery_s"] = None
        info.setdefault("window_end", max(info["end"], t_rec) + GRACE_S)
        log(f"{kind}: {json.dumps({k: v for k, v in info.items() if k not in ('start', 'end', 'window_end')})}")
        self.faults.append(info)

    def f_deploy(self, info, rng):
        rc, out = self.cfg_run("deploy")
        info["deploy_rc"] = rc
        info["deploy_last"] = out.strip().splitlines()[-1][:200] if out.strip() else ""

    def f_kill_worker(self, info, rng):
        a = self.active()
        os.kill(a["pid"], signal.SIGKILL)
        info["pid"] = a["pid"]
        self.wait(lambda: (x := self.active()) and x["pid"] not in (0, a["pid"]), 10, "worker restarted")
        info["restart_s"] = round(time.time() - info["start"], 2)

    def f_kill_standby_in_overlap(self, info, rng):
        res = {}

        def run():
            res["rc"], res["out"] = self.cfg_run("deploy")
        th = threading.Thread(target=run)
        th.start()
        before = self.active()
        # the new slot: started, switched (it is active) and recording in the overlap
        new = self.wait(lambda: (x := self.active()) and x["slot"] != before["slot"] and x["pid"] > 0 and x, 60,
                        "the switch")
        time.sleep(1)
        # the standby is the old worker, still recording in the overlap
        st = self.status()
        old = next(s for s in st["slots"] if s["slot"] == before["slot"])
        if old["pid"] > 0:
            os.kill(old["pid"], signal.SIGKILL)
            info["killed"] = old["slot"]
        th.join(120)
        info["deploy_rc"] = res.get("rc")
        info["new_slot"] = new["slot"]

    def f_kill_supervisor(self, info, rng):
        p = self.procs["supervisor"]
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        time.sleep(rng.uniform(0.5, 3))
        self.start_supervisor()

    def f_camera_outage(self, info, rng):
        cam = f"cam{rng.randint(1, self.args.cameras)}"
        secs = round(rng.uniform(2, 5), 1)
        info.update(camera=cam, seconds=secs)
        assert self.camsim(f"outage {cam} {secs}") == "ok"
        time.sleep(secs + 1)

    def f_drop_sessions(self, info, rng):
        info["answer"] = self.camsim("drop all")
        time.sleep(2)

    def f_db_lock(self, info, rng):
        secs = round(rng.uniform(2, 6), 1)
        info["seconds"] = secs
        con = sqlite3.connect(self.cfg["db_path"], timeout=10, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        time.sleep(secs)
        con.execute("COMMIT")
        con.close()

    def f_haproxy_restart(self, info, rng):
        p = self.procs["haproxy"]
        p.terminate()
        p.wait(10)
        time.sleep(0.5)
        self.start_haproxy()

    def f_clock_step(self, info, rng):
        if not os.path.exists(FAKETIME_LIB):
            info["skipped"] = "libfaketime not installed"
            return
        with open(self.faketime_rc, "w") as f:
            f.write("-3600\n")
        time.sleep(5)
        with open(self.faketime_rc, "w") as f:
            f.write("+0\n")
        time.sleep(2)

    def f_sabotage(self, info, rng):
        """Deletes recorded footage of cam1 (rows and files of every copy
        of one stretch): loss no fault explains, so the scorecard has to fail."""
        con = sqlite3.connect(self.cfg["db_path"], timeout=10)
        row = con.execute("SELECT start_us, end_us FROM video_segments WHERE camera_id = 'cam1' "
                          "AND status = 'complete' ORDER BY start_us DESC LIMIT 1 OFFSET 2").fetchone()
        deleted = []
        if row:
            for sid, path in con.execute("SELECT id, path FROM video_segments WHERE camera_id = 'cam1' AND "
                                         "start_us < ? AND end_us > ?", (row[1], row[0])).fetchall():
                con.execute("DELETE FROM video_segments WHERE id = ?", (sid,))
                os.unlink(path)
                deleted.append(os.path.basename(path))
            con.commit()
        con.close()
        info["deleted"] = deleted

    def f_disk_fill(self, info, rng):
        if not self.tmpfs:
            info["skipped"] = "storage is not a tmpfs of the run's own (needs root)"
            return
        st = os.statvfs(self.storage)
        free_mb = st.f_bavail * st.f_frsize // (1 << 20)
        fill_mb = max(0, free_mb - 48)  # below the 64 MB floor: the disk guard deletes the oldest segments
        ballast = os.path.join(self.storage, "ballast")
        with open(ballast, "wb") as f:
            for _ in range(fill_mb):
                f.write(b"\0" * (1 << 20))
        info["filled_mb"] = fill_mb
        time.sleep(6)
        os.unlink(ballast)

    def relink(self, target):
        tmp = self.storage_link + ".tmp"
        os.symlink(target, tmp)
        os.replace(tmp, self.storage_link)

    def finished_rows(self):
        con = sqlite3.connect(self.cfg["db_path"], timeout=10)
        try:
            return {r[0] for r in con.execute("SELECT id FROM video_segments WHERE status != 'recording'")}
        finally:
            con.close()

    def f_storage_unavailable(self, info, rng):
        secs = round(rng.uniform(2, 6), 1)
        info["seconds"] = secs
        before = self.finished_rows()
        self.relink(os.path.join(self.dir, "nowhere"))
        time.sleep(secs)
        self.relink(self.storage)
        t_back = time.time()
        self.wait(self.all_recording, 30, "recording after the storage came back")
        info["resume_s"] = round(time.time() - t_back, 2)
        info["rows_lost"] = len(before - self.finished_rows())
        info["ok_extra"] = info["rows_lost"] == 0 and info["resume_s"] <= 2.0

    def f_deploy_client_hangup(self, info, rng):
        sup = self.procs["supervisor"].pid
        before = self.active()
        # SIGINT as a terminal's foreground job has it (a background shell job inherits it ignored)
        client = subprocess.Popen([os.path.join(BIN, "mwr-supervisor"), "deploy", "--config", self.cfg_path],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.wait(lambda: (x := self.active()) and x["slot"] != before["slot"], 60, "the switch")
        client.send_signal(signal.SIGINT)  # Ctrl-C in the overlap
        info["client_rc"] = client.wait(10)
        if info["client_rc"] != -signal.SIGINT:
            raise RuntimeError(f"the deploy client was not interrupted (exit {info['client_rc']})")
        t0, c0 = time.time(), cpu_seconds(sup)
        old_slot = before["slot"]  # the deploy goes on without its client: it ends by stopping the old worker
        self.wait(lambda: (st := self.status()) and next(s for s in st["slots"] if s["slot"] == old_slot)["pid"] <= 0,
                  self.args.overlap + 60, "the deploy to end")
        info["supervisor_cores"] = round((cpu_seconds(sup) - c0) / max(0.1, time.time() - t0), 4)
        info["ok_extra"] = info["supervisor_cores"] < 0.05

    # ---- the end ------------------------------------------------------------------------
    def stop(self):
        for name in ("supervisor", "haproxy", "camsim"):
            p = self.procs.get(name)
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(40)
                except subprocess.TimeoutExpired:
                    p.kill()
        # workers of a supervisor killed at the very end
        try:
            con = sqlite3.connect(self.cfg["db_path"], timeout=10)
            pids = [r[0] for r in con.execute("SELECT pid FROM supervisor_slots WHERE pid > 0")]
            con.close()
        except sqlite3.Error:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def cleanup(self):
        if self.tmpfs:
            subprocess.run(["umount", "-l", self.storage], capture_output=True)


def judge(run, t_start, t_end):
    cams = {}
    for c in run.cfg["cameras"]:
        out = os.path.join(run.dir, f"{c['id']}.mp4")
        r = subprocess.run([os.path.join(BIN, "mwr"), "export", "--quiet", "--config", run.cfg_path, "--camera",
                            c["id"], "--from", str(t_start - 5), "--to", str(t_end + 5), "-o", out],
                           capture_output=True, timeout=600)
        if r.returncode != 0:
            cams[c["id"]] = {"error": r.stderr.decode()[-300:]}
            continue
        j = subprocess.run([FRAMECHECK, "--json", "--camera", c["id"], out], capture_output=True, timeout=600)
        rep = json.loads(j.stdout)
        # frame number -> wall time: the camera clock at the first frame (from the index)
        con = sqlite3.connect(run.cfg["db_path"], timeout=10)
        first_seg = con.execute("SELECT path, start_us FROM video_segments WHERE camera_id = ? "
                                "ORDER BY start_us LIMIT 1", (c["id"],)).fetchone()
        con.close()
        seg_rep = json.loads(subprocess.run([FRAMECHECK, "--json", "--camera", c["id"], first_seg[0]],
                                            capture_output=True, timeout=60).stdout)
        t0_us = first_seg[1] - seg_rep["first"] * FRAME_US
        rep["ranges_time"] = [((lo * FRAME_US + t0_us) / 1e6, ((hi + 1) * FRAME_US + t0_us) / 1e6, hi - lo + 1)
                              for lo, hi in rep["missing_ranges"]]
        cams[c["id"]] = rep
    return cams


def score(run, cams):
    for f in run.faults:
        f["frames_lost"] = {}
        f["failed_requests"] = sum(1 for t in run.http_fail if f["start"] <= t <= f["window_end"])
    unattributed = []
    for cam, rep in cams.items():
        for (t_lo, t_hi, n) in rep.get("ranges_time", []):
            # a SIGKILL loses the fragment in progress (up to 1 s before the fault); each RTSP
            # session's clock mapping can differ by up to ~0.75 s: look back 2 s
            owner = next((f for f in run.faults if f["start"] - LOOKBACK_S <= t_lo <= f["window_end"]), None)
            if owner is None:
                unattributed.append({"camera": cam, "from": t_lo, "to": t_hi, "frames": n})
                continue
            lost = n
            if owner["kind"] == "camera_outage" and owner.get("camera") == cam:
                lost = max(0, n - int(round(owner["seconds"] * FPS)) - 2 * FPS)  # the outage and a reconnect
            elif owner["kind"] == "storage_unavailable":
                lost = max(0, n - int(round(owner["seconds"] * FPS)) - 2 * FPS)  # paused while gone, 2 s to resume
            owner["frames_lost"][cam] = owner["frames_lost"].get(cam, 0) + lost
    kinds = {}
    for f in run.faults:
        k = kinds.setdefault(f["kind"], {"count": 0, "frames_lost_max": 0, "frames_lost_total": 0,
                                         "failed_requests": 0, "recovery_s_max": 0, "budget": BUDGET[f["kind"]],
                                         "ok": True, "skipped": 0})
        k["count"] += 1
        if f.get("skipped"):
            k["skipped"] += 1
        lost = max(f["frames_lost"].values(), default=0)
        k["frames_lost_max"] = max(k["frames_lost_max"], lost)
        k["frames_lost_total"] += sum(f["frames_lost"].values())
        k["failed_requests"] += f["failed_requests"]
        k["recovery_s_max"] = max(k["recovery_s_max"], f.get("recovery_s") or 0)
        budget = BUDGET[f["kind"]]
        if budget is not None:
            # kill_worker: 25 frames (the fragment in progress) + the restart until recording again
            # cold: a killed worker may lose its last second and its restart; hot: the standby has it all
            allowed = budget + (int((f.get("recovery_s") or 0) * FPS + 0.999)
                                if f["kind"] == "kill_worker" and not run.args.hot else 0)
            f["budget_frames"] = allowed
            f["ok"] = lost <= allowed and f.get("recovery_s") is not None and "error" not in f and \
                f.get("ok_extra", True)
        else:
            f["ok"] = f.get("recovery_s") is not None and "error" not in f
        k["ok"] = k["ok"] and f["ok"]
    dup = sum(r.get("duplicated", 0) for r in cams.values())
    ok = all(k["ok"] for k in kinds.values()) and not unattributed and dup == 0 and \
        all("error" not in r for r in cams.values())
    return {"ok": ok, "kinds": kinds, "unattributed_missing": unattributed, "duplicated_frames": dup,
            "http": {"ok": run.http_ok, "failed": len(run.http_fail)}}


def schedule(minutes, seed, kinds):
    """The run's faults in order, the same for the same seed.  From 10
    minutes on every kind comes at least twice; a short run takes the
    first kinds in their listed order (CI: deploys and kills first)."""
    rng = random.Random(seed)
    n = max(4, int(minutes * 2))
    if minutes >= 10:
        plan = kinds * 2 + [rng.choice(kinds) for _ in range(max(0, n - 2 * len(kinds)))]
    else:
        plan = (kinds * (n // len(kinds) + 1))[:n]
    rng.shuffle(plan)
    return plan, rng


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("CHAOS_MINUTES", 10)))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", 1)))
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--overlap", type=int, default=5)
    ap.add_argument("--storage-mb", type=int, default=1024)
    ap.add_argument("--out", default=os.environ.get("CHAOS_OUT"))
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated fault kinds")
    ap.add_argument("--standby", choices=("cold", "hot"), default="cold",
                    help="supervisor.standby: hot makes kill_worker's budget 0 frames")
    ap.add_argument("--sabotage", action="store_true",
                    help="also delete a recorded segment mid-run: proves the scorecard can fail")
    args = ap.parse_args()
    args.hot = args.standby == "hot"
    if args.hot:
        BUDGET["kill_worker"] = 0
    kinds = [k for k in args.kinds.split(",") if k]
    plan, rng = schedule(args.minutes, args.seed, kinds)
    if args.sabotage:
        plan.insert(len(plan) // 2 + 1, "sabotage")
    run = Run(args)
    log(f"seed {args.seed}, {args.minutes} min, {len(plan)} faults: {' '.join(plan)}; dir {run.dir}")
    try:
        run.setup()
    except Exception as e:  # noqa: BLE001
        log(f"setup failed: {e}")
        run.stop()
        run.cleanup()
        return 2
    load = threading.Thread(target=run.load, daemon=True)
    load.start()
    t_start = time.time()
    budget_s = args.minutes * 60
    gap = budget_s / (len(plan) + 1)
    for i, kind in enumerate(plan):
        at = t_start + gap * (i + 1) + rng.uniform(-gap / 4, gap / 4)
        while time.time() < at:
            time.sleep(0.2)
        run.fault(kind, rng)
    while time.time() < t_start + budget_s:
        time.sleep(0.5)
    time.sleep(3)
    run.stop_load.set()
    t_end = time.time()
    run.stop()
    cams = judge(run, t_start, t_end)
    card = score(run, cams)
    card.update(seed=args.seed, minutes=args.minutes, cameras=args.cameras, overlap=args.overlap,
                schedule=plan, faults=[{k: v for k, v in f.items()} for f in run.faults],
                judge={c: {k: r.get(k) for k in ("frames", "missing", "duplicated", "first", "last", "error")}
                       for c, r in cams.items()},
                standby=args.standby,
                command=" ".join(["tests/chaos/chaos.py", f"--minutes {args.minutes}", f"--seed {args.seed}"] +
                                 (["--standby hot"] if args.hot else [])))
    with open(os.path.join(run.dir, "scorecard.json"), "w") as f:
        json.dump(card, f, indent=1)
    print(f"\nscorecard (seed {args.seed}, {args.minutes} min, {args.cameras} cameras): "
          f"{'PASS' if card['ok'] else 'FAIL'}")
    print(f"{'fault':26} {'n':>3} {'lost max':>9} {'lost tot':>9} {'budget':>7} {'http fail':>9} "
          f"{'recov max s':>11}  ok")
    for kind, k in sorted(card["kinds"].items()):
        b = "-" if k["budget"] is None else str(k["budget"]) + ("+rst" if kind == "kill_worker" and not args.hot else "")
        print(f"{kind:26} {k['count']:3} {k['frames_lost_max']:9} {k['frames_lost_total']:9} {b:>7} "
              f"{k['failed_requests']:9} {k['recovery_s_max']:11.1f}  {'yes' if k['ok'] else 'NO'}"
              + (f" ({k['skipped']} skipped)" if k["skipped"] else ""))
    print(f"duplicated frames: {card['duplicated_frames']}; missing not explained by a fault: "
          f"{len(card['unattributed_missing'])}; HTTP requests {card['http']['ok']} ok, {card['http']['failed']} failed")
    print(f"scorecard: {os.path.join(run.dir, 'scorecard.json')}")
    run.cleanup()
    if not args.out:
        shutil.rmtree(os.path.join(run.dir, "rec"), ignore_errors=True)
    return 0 if card["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
