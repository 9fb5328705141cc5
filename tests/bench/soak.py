#!/usr/bin/python3
"""Soak: recording under repeated deploys, judged frame by frame, with the
processes' memory, fds and threads watched for leaks.

usage: tests/bench/soak.py [--cameras 16] [--minutes 60] [--deploy-every 300]
                           [--camsim-args "..."] [--overlap 5] [--sample-every 30]
                           [--warmup 120] [--rss-limit 10] [--keep]

camsim with CAMERAS cameras (640x360 25 fps, GOP 1 s, plus --camsim-args),
haproxy with the generated config and mwr-supervisor with its workers, as
tests/e2e/test_deploy.py runs them (cold standby, 10 s segments).  Every
--deploy-every seconds `mwr-supervisor deploy` (the same binary: a restart)
must end `ok:`, move the active slot, stop the old worker and leave the new
one healthy through haproxy.  A client asks haproxy's frontend for /health
twice a second throughout.  Every --sample-every seconds: VmRSS, open fds
(/proc/PID/fd) and threads of every running worker and of the supervisor,
and the RTSP sessions camsim has open.

At the end the supervisor is stopped (SIGTERM: it stops its workers), then
every camera is exported over the whole run with `mwr export`, checked with
`mwr verify` and judged by framecheck.  The goal: 0 frames missing and 0
duplicated across every deploy; a missing stretch is placed on the deploy
whose window holds it (camsim's frame clock gives each number its time).

Trends, per worker generation (one worker process: slot and pid) and for
the supervisor: first and last sample, and over the samples from --warmup
seconds into its life on (and outside deploys for fds and threads): the
least-squares slope of RSS in MiB per hour, which must stay under
--rss-limit (judged when the samples span at least 60 s; all generations'
samples are also pooled by age), and fds and threads, which must not
change.  The supervisor's fds and threads must be the same outside every
deploy, and its RSS slope is judged from the end of the first deploy on
(that one sets up what later deploys reuse: a one-time step).  The camsim
sessions must be CAMERAS outside deploys.

Prints key=value lines (progress lines `sample ...` and `deploy ...` as they
happen), then `result=PASS` or `result=FAIL` with one `failure=` line per
problem (which camera, which deploy, which worker).  Exit 0 on PASS, 1 on
FAIL, 2 when the setup failed.  Its own temp dir (kept with --keep, and its
logs and DB on FAIL), free ports, every process stopped by pid at the end.
Needs `make all` and haproxy.  Disk: about 0.5 GB per camera-hour.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "bin")
CAMSIM = os.path.join(ROOT, "build", "tests", "camsim")
FRAMECHECK = os.path.join(ROOT, "build", "tests", "framecheck")
SUPERVISOR = os.path.join(BIN, "mwr-supervisor")
WORKER = os.path.join(BIN, "mwr-worker")
MWR = os.path.join(BIN, "mwr")
HZ = os.sysconf("SC_CLK_TCK")
LOOKBACK_S, GRACE_S = 2.0, 3.0  # a deploy's window for missing frames: [start - 2 s, end + 3 s]


def out(line):
    print(line, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, timeout, what, interval=0.1):
    """Polls pred() until truthy; raises after timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


# ---- /proc ----------------------------------------------------------------------------
def proc_sample(pid):
    """{rss_kib, threads, fds, age_s, fd_kinds} of pid, None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            st = dict(l.split(":", 1) for l in f if ":" in l)
        if st.get("State", "").strip().startswith("Z"):
            return None
        with open(f"/proc/{pid}/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        kinds = {}
        names = os.listdir(f"/proc/{pid}/fd")
        for n in names:
            try:
                t = os.readlink(f"/proc/{pid}/fd/{n}")
            except OSError:
                continue
            if t.startswith("socket:"):
                k = "socket"
            elif t.startswith("pipe:"):
                k = "pipe"
            elif t.startswith("anon_inode:"):
                k = t
            elif t.startswith("/dev/"):
                k = t
            else:
                base = os.path.basename(t)
                k = "file:" + (base.rsplit(".", 1)[1] if "." in base else base)
            kinds[k] = kinds.get(k, 0) + 1
        return {"rss_kib": int(st["VmRSS"].split()[0]), "threads": int(st["Threads"]), "fds": len(names),
                "age_s": up - start_ticks / HZ, "fd_kinds": kinds}
    except (FileNotFoundError, ProcessLookupError, KeyError):
        return None


def is_our_worker(pid, cfg_path):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return cfg_path.encode() in f.read()
    except OSError:
        return False


def alive(pid):
    return proc_sample(pid) is not None


def slope_per_hour(points):
    """Least-squares slope of (seconds, value) points, per hour."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return 0.0
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx * 3600


class Soak:
    def __init__(self, a):
        self.a = a
        self.dir = tempfile.mkdtemp(prefix="mwr-soak-")
        self.procs = {}
        self.worker_pids = set()
        self.samples = []       # dicts, one per sample round
        self.deploys = []
        self.failures = []
        self.lock = threading.Lock()
        self.in_deploy = False
        self.stop_ev = threading.Event()
        self.http_ok, self.http_fail = 0, []
        self.cfg_path = None
        self.live = True  # failures are printed as they happen during the run, all at the end

    # ---- processes ------------------------------------------------------------------
    def start(self, name, argv):
        with open(os.path.join(self.dir, f"{name}.log"), "ab") as log:
            p = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = p
        return p

    def log_text(self, name):
        try:
            with open(os.path.join(self.dir, f"{name}.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop_proc(self, name, timeout):
        p = self.procs.get(name)
        if not p or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"{name} pid {p.pid} did not exit within {timeout} s of SIGTERM: SIGKILL")
            p.kill()
            return p.wait()

    def kill_all(self):
        """Everything we started, by pid: SIGTERM, then SIGKILL."""
        for name in ("supervisor", "haproxy", "camsim"):
            p = self.procs.get(name)
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for pid in self.worker_pids:
            if self.cfg_path and alive(pid) and is_our_worker(pid, self.cfg_path):
                try:
                    os.kill(pid, signal.SIGTERM)
                    for _ in range(100):
                        if not alive(pid):
                            break
                        time.sleep(0.1)
                    else:
                        os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def sup(self, *args, timeout=20):
        r = subprocess.run([SUPERVISOR, *args, "--config", self.cfg_path], capture_output=True, timeout=timeout)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def status(self):
        try:
            rc, so, _ = self.sup("status", "--json")
            return json.loads(so) if rc == 0 else None
        except (ValueError, subprocess.TimeoutExpired):
            return None

    def active(self, st=None):
        st = st or self.status()
        return next((s for s in st["slots"] if s["active"]), None) if st else None

    def camsim_cmd(self, line):
        with socket.create_connection(("127.0.0.1", self.camsim_ctl), timeout=5) as s:
            s.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return buf.decode().strip()

    def frontend_healthy(self):
        try:
            url = f"http://127.0.0.1:{self.cfg['haproxy']['frontend_port']}/health"
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.loads(r.read()).get("status") == "healthy"
        except Exception:  # noqa: BLE001 - not yet
            return False

    def fail(self, msg):
        with self.lock:
            self.failures.append(msg)
        if self.live:
            out(f"failure={msg}")

    # ---- setup ----------------------------------------------------------------------
    def setup(self):
        a = self.a
        self.camsim_ctl = free_port()
        argv = [CAMSIM, "--cameras", str(a.cameras), "--port", str(free_port()), "--control-port",
                str(self.camsim_ctl), "--gop", "25"] + shlex.split(a.camsim_args)
        cs = self.start("camsim", argv)

        def camsim_ready():
            if cs.poll() is not None:
                raise RuntimeError(f"camsim exited {cs.returncode}: {self.log_text('camsim')[-1000:]}")
            return next((l for l in self.log_text("camsim").splitlines() if "camsim ready" in l), None)
        line = wait(camsim_ready, 15, "camsim's ready line")
        kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
        rtsp = int(kv["rtsp_port"])
        self.camsim_ctl = int(kv["control_port"])
        run = os.path.join(self.dir, "run")
        os.makedirs(run)
        self.cfg = {
            "storage_dir": os.path.join(self.dir, "rec"), "db_path": os.path.join(self.dir, "mwr.db"),
            "segment_seconds": 10,
            "cameras": [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:{rtsp}/cam{i}", "enabled": True}
                        for i in range(1, a.cameras + 1)],
            "worker": {"binary": WORKER, "bind": "127.0.0.1", "ports": [free_port(), free_port()]},
            "haproxy": {"socket": os.path.join(run, "haproxy.sock"), "frontend_port": free_port(),
                        "stats_port": free_port(), "plain_http": True,
                        "socket_user": __import__("pwd").getpwuid(os.geteuid()).pw_name},
            "auth": {"required": False},
            "deploy": {"overlap_seconds": a.overlap, "health_timeout_seconds": 30, "stop_timeout_seconds": 15},
            "disk": {"min_free_mb": 0},
            "control_socket": os.path.join(run, "supervisor.sock"),
            "supervisor": {"metrics_port": free_port()},
        }
        self.cfg_path = os.path.join(self.dir, "mwr.json")
        with open(os.open(self.cfg_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(self.cfg, f, indent=1)
        rc, hcfg, err = self.sup("proxy-config")
        if rc != 0:
            raise RuntimeError(f"proxy-config exited {rc}: {err.strip()}")
        hpath = os.path.join(self.dir, "haproxy.cfg")
        with open(hpath, "w") as f:
            f.write(hcfg)
        hp = self.start("haproxy", ["haproxy", "-db", "-f", hpath])

        def hap_up():
            if hp.poll() is not None:
                raise RuntimeError(f"haproxy exited {hp.returncode}: {self.log_text('haproxy')[-1000:]}")
            return os.path.exists(self.cfg["haproxy"]["socket"])
        wait(hap_up, 10, "haproxy's runtime socket")
        self.t_setup = time.time()
        sp = self.start("supervisor", [SUPERVISOR, "run", "--config", self.cfg_path])

        def first_ready():
            if sp.poll() is not None:
                raise RuntimeError(f"supervisor exited {sp.returncode}: {self.log_text('supervisor')[-1000:]}")
            s = self.active()
            return s if s and s["state"] == "ready" and s["pid"] > 0 else None
        w = wait(first_ready, 60, "worker a ready")
        self.worker_pids.add(w["pid"])
        wait(self.frontend_healthy, 60, "every camera recording (healthy through haproxy)")
        st = json.loads(self.camsim_cmd("status"))
        self.fps = float(st["fps"])
        self.anchor = (time.time(), int(st["frame"]))  # camsim frame number n is due at t + (n - N) / fps

    def frame_time(self, n):
        return self.anchor[0] + (n - self.anchor[1]) / self.fps

    # ---- the run ----------------------------------------------------------------------
    def client(self):
        url = f"http://127.0.0.1:{self.cfg['haproxy']['frontend_port']}/health"
        while not self.stop_ev.is_set():
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
                self.http_ok += 1
            except Exception:  # noqa: BLE001 - every failure counts
                self.http_fail.append(time.time())
            self.stop_ev.wait(0.5)

    def sample(self):
        st = self.status()
        t = time.time()
        s = {"t": t, "rel": t - self.t_start, "in_deploy": self.in_deploy, "workers": []}
        for slot in (st["slots"] if st else []):
            if slot["pid"] <= 0:
                continue
            ps = proc_sample(slot["pid"])
            if ps:
                self.worker_pids.add(slot["pid"])
                ps.update(slot=slot["slot"], pid=slot["pid"], state=slot["state"], active=slot["active"])
                s["workers"].append(ps)
        s["supervisor"] = proc_sample(self.procs["supervisor"].pid)
        s["camsim"] = proc_sample(self.procs["camsim"].pid)
        try:
            sess = json.loads(self.camsim_cmd("sessions"))
            s["sessions_open"] = sum(c["open"] for c in sess.values())
            s["sessions_opened"] = sum(c["opened"] for c in sess.values())
        except (OSError, ValueError, KeyError) as e:
            s["sessions_open"] = s["sessions_opened"] = -1
            s["sessions_error"] = repr(e)[:100]
        s["in_deploy"] = s["in_deploy"] or self.in_deploy
        if not st:
            self.fail(f"sample at {s['rel']:.0f} s: `mwr-supervisor status` did not answer")
        with self.lock:
            self.samples.append(s)
        parts = [f"sample t_s={s['rel']:.0f}", f"in_deploy={int(s['in_deploy'])}"]
        for w in s["workers"]:
            parts.append(f"{w['slot']}_pid={w['pid']} {w['slot']}_state={w['state']} "
                         f"{w['slot']}_rss_mib={w['rss_kib'] / 1024:.1f} {w['slot']}_fds={w['fds']} "
                         f"{w['slot']}_threads={w['threads']}")
        if s["supervisor"]:
            sv = s["supervisor"]
            parts.append(f"sup_rss_mib={sv['rss_kib'] / 1024:.1f} sup_fds={sv['fds']} sup_threads={sv['threads']}")
        else:
            parts.append("sup=gone")
        parts.append(f"camsim_sessions={s['sessions_open']}")
        out(" ".join(parts))

    def sampler(self):
        """A sample at the start, then every sample_every seconds from half a
        period on: between deploys (which come on whole periods), not in them."""
        nxt = time.monotonic() - self.a.sample_every / 2
        while not self.stop_ev.is_set():
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 - a sampler crash is a finding, not the end
                self.fail(f"sampler: {e!r}"[:300])
            nxt += self.a.sample_every
            self.stop_ev.wait(max(0.0, nxt - time.monotonic()))

    def deploy(self, idx):
        before = self.active()
        d = {"idx": idx, "start": time.time(), "problems": [], "from": before["slot"] if before else "?",
             "from_pid": before["pid"] if before else 0}
        d["rel"] = d["start"] - self.t_start
        self.in_deploy = True
        limit = self.a.overlap + 30 + 15 + 90
        try:
            rc, so, se = self.sup("deploy", timeout=limit)
        except subprocess.TimeoutExpired:
            rc, so, se = -1, "", f"no end within {limit} s"
        d["end"] = time.time()
        d["seconds"] = d["end"] - d["start"]
        text = (so + se).strip()
        with open(os.path.join(self.dir, f"deploy-{idx}.log"), "w") as f:
            f.write(text + "\n")
        d["rc"] = rc
        lines = [re.sub(r"^\[\s*[0-9.]+ s\]\s*", "", l) for l in text.splitlines()]
        d["last"] = lines[-1] if lines else ""
        m = next((re.search(r"READY after ([0-9.]+) s", l) for l in lines if "READY after" in l), None)
        d["ready_s"] = float(m.group(1)) if m else None
        m = next((re.search(r"continuity over the handover window: (.*)", l) for l in lines
                  if "continuity over the handover window" in l), None)
        d["continuity"] = m.group(1) if m else None
        g = re.search(r"(\d+) gaps?", d["continuity"] or "")
        if d["continuity"] is None:
            d["problems"].append("no `continuity over the handover window` line")
        elif not g or int(g.group(1)) != 0:
            d["problems"].append(f"handover continuity: {d['continuity']}")
        d["warnings"] = [l for l in text.splitlines() if "WARNING" in l or "warning" in l]
        if rc != 0 or not d["last"].startswith("ok:"):
            d["problems"].append(f"exit {rc}, last line {d['last'][:200]!r}")
        try:
            now = wait(lambda: (s := self.active()) and s["slot"] != d["from"] and s["state"] == "ready"
                       and s["pid"] > 0 and s, 30, "the other slot active and ready")
            d["to"], d["to_pid"] = now["slot"], now["pid"]
            self.worker_pids.add(now["pid"])
        except RuntimeError as e:
            d["to"], d["to_pid"] = "?", 0
            d["problems"].append(str(e))
        if d["from_pid"]:
            try:
                wait(lambda: not alive(d["from_pid"]), 30, f"old worker pid {d['from_pid']} gone")
            except RuntimeError as e:
                d["problems"].append(str(e))
        try:
            wait(self.frontend_healthy, 30, "healthy through haproxy after the deploy")
        except RuntimeError as e:
            d["problems"].append(str(e))
        st = self.status()
        row = (st or {}).get("deploys", [{}])[0] if st and st.get("deploys") else {}
        d["row_result"] = row.get("result", "?")
        if d["row_result"] != "ok":
            d["problems"].append(f"deploys row says {d['row_result']!r}: {row.get('reason', '')!r}")
        for w in d["warnings"]:
            d["problems"].append(f"warning line: {w[:200]}")
        d["ok"] = not d["problems"]
        self.in_deploy = False
        self.deploys.append(d)
        out(f"deploy n={idx} t_s={d['rel']:.0f} from={d['from']} to={d['to']} result={'ok' if d['ok'] else 'FAILED'} "
            f"seconds={d['seconds']:.1f} ready_s={d['ready_s']} "
            f"continuity={shlex.quote(d['continuity'] or '-')} last={shlex.quote(d['last'][:160])}")
        for p in d["problems"]:
            self.fail(f"deploy {idx} ({d['from']}->{d['to']} at {d['rel']:.0f} s): {p}")

    def run(self):
        a = self.a
        self.t_start = time.time()
        m0 = time.monotonic()
        threads = [threading.Thread(target=self.client, daemon=True),
                   threading.Thread(target=self.sampler, daemon=True)]
        for t in threads:
            t.start()
        end = m0 + a.minutes * 60
        k = 1
        while True:
            due = m0 + k * a.deploy_every
            if due >= end:
                break
            self.stop_ev.wait(max(0.0, due - time.monotonic()))  # the schedule itself
            if self.procs["supervisor"].poll() is not None:
                self.fail(f"supervisor exited {self.procs['supervisor'].returncode} before deploy {k}")
                break
            self.deploy(k)
            k += 1
        self.stop_ev.wait(max(0.0, end - time.monotonic()))
        self.stop_ev.set()
        for t in threads:
            t.join(15)
        self.sample()  # the last one, at the end
        self.t_end = time.time()
        self.final_status = self.status()
        # stop: the supervisor stops its workers (SIGTERM, SIGKILL after stop_timeout)
        pids = {s["pid"] for s in (self.final_status or {}).get("slots", []) if s["pid"] > 0}
        rc = self.stop_proc("supervisor", self.cfg["deploy"]["stop_timeout_seconds"] + 30)
        if rc != 0:
            self.fail(f"supervisor exited {rc} on SIGTERM")
        for pid in pids:
            try:
                wait(lambda: not alive(pid), 20, f"worker pid {pid} gone")
            except RuntimeError as e:
                self.fail(f"after stopping the supervisor: {e}")
        self.t_stop = time.time()
        self.stop_proc("haproxy", 10)
        self.stop_proc("camsim", 10)

    # ---- judging ----------------------------------------------------------------------
    def judge(self):
        cams = {}
        exp_dir = os.path.join(self.dir, "export")
        os.makedirs(exp_dir, exist_ok=True)
        for c in self.cfg["cameras"]:
            cam = c["id"]
            o = os.path.join(exp_dir, f"{cam}.mp4")
            t0 = time.monotonic()
            r = subprocess.run([MWR, "export", "--quiet", "--config", self.cfg_path, "--camera", cam, "--from",
                                f"{self.t_setup - 5:.3f}", "--to", f"{self.t_stop + 5:.3f}", "-o", o],
                               capture_output=True, timeout=1800)
            if r.returncode != 0:
                cams[cam] = {"error": f"mwr export exited {r.returncode}: {r.stderr.decode()[-300:].strip()}"}
                continue
            files = [o] + sorted((os.path.join(exp_dir, n) for n in os.listdir(exp_dir)
                                  if n.startswith(cam + ".") and n != cam + ".mp4" and n.endswith(".mp4")),
                                 key=lambda p: int(p.rsplit(".", 2)[1]) if p.rsplit(".", 2)[1].isdigit() else 0)
            v = subprocess.run([MWR, "verify", "--json", *files], capture_output=True, timeout=1800)
            j = subprocess.run([FRAMECHECK, "--json", "--no-audio", "--camera", cam, *files], capture_output=True,
                               timeout=3600)
            try:
                rep = json.loads(j.stdout)
            except ValueError:
                rep = {"error": f"framecheck exited {j.returncode}: {j.stderr.decode()[-300:].strip()}"}
            rep["export_files"] = len(files)
            rep["export_bytes"] = sum(os.path.getsize(f) for f in files)
            rep["verify_rc"] = v.returncode
            rep["verify_out"] = (v.stdout.decode() + v.stderr.decode())[-400:]
            rep["judge_s"] = time.monotonic() - t0
            cams[cam] = rep
            for f in files:
                if not self.a.keep:
                    os.unlink(f)
        return cams

    def place(self, t):
        """The deploy whose window holds wall time t, or None."""
        return next((d for d in self.deploys if d["start"] - LOOKBACK_S <= t <= d["end"] + GRACE_S), None)

    # ---- report -----------------------------------------------------------------------
    def report(self, cams):
        a = self.a
        out(f"run_seconds={self.t_end - self.t_start:.0f} stop_seconds={self.t_stop - self.t_end:.1f}")
        # deploys
        secs = [d["seconds"] for d in self.deploys]
        nok = sum(d["ok"] for d in self.deploys)
        out(f"deploys={len(self.deploys)} deploys_ok={nok} deploys_failed={len(self.deploys) - nok}")
        if secs:
            out(f"deploy_seconds_min={min(secs):.1f} deploy_seconds_median={statistics.median(secs):.1f} "
                f"deploy_seconds_max={max(secs):.1f}")
        for d in self.deploys:
            out(f"deploy_{d['idx']} t_s={d['rel']:.0f} from={d['from']}:{d['from_pid']} to={d['to']}:{d['to_pid']} "
                f"seconds={d['seconds']:.1f} result={'ok' if d['ok'] else 'FAILED'}")
        fails_in = sum(1 for t in self.http_fail if self.place(t))
        out(f"http_ok={self.http_ok} http_failed={len(self.http_fail)} http_failed_in_deploys={fails_in}")
        if self.http_fail:
            self.fail(f"{len(self.http_fail)} /health requests through haproxy failed "
                      f"({fails_in} inside a deploy window)")
        st = self.final_status or {}
        out(f"supervisor_restarts={st.get('restarts', '?')} crash_loop={st.get('crash_loop', '?')}")
        if st.get("restarts"):
            self.fail(f"the supervisor restarted a worker {st['restarts']} time(s) (a worker died unasked)")
        # the supervisor's log (its workers' stderr too): sd-daemon priorities <0>..<4>
        log = self.log_text("supervisor").splitlines()
        errs = [l for l in log if re.match(r"<[0-3]>", l)]
        warns = [l for l in log if l.startswith("<4>")]
        libav = [l for l in log if l.startswith("[") and " @ 0x" in l]
        out(f"log_errors={len(errs)} log_warnings={len(warns)} log_decoder_messages={len(libav)}")
        for l in warns[:10]:
            out(f"log_warning={l[:300]}")
        for l in errs[:10]:
            self.fail(f"supervisor log: {l[:300]}")

        # cameras
        tot_m = tot_d = 0
        for cam, rep in cams.items():
            if "error" in rep:
                self.fail(f"camera {cam}: {rep['error']}")
                out(f"camera={cam} error={shlex.quote(rep['error'][:200])}")
                continue
            m, dup = rep.get("missing", 0), rep.get("duplicated", 0)
            tot_m, tot_d = tot_m + m, tot_d + dup
            extra = {k: rep.get(k, 0) for k in ("out_of_order", "unreadable", "camera_mismatch", "decode_errors")}
            out(f"camera={cam} frames={rep.get('frames')} first={rep.get('first')} last={rep.get('last')} "
                f"missing={m} duplicated={dup} " + " ".join(f"{k}={v}" for k, v in extra.items()) +
                f" export_files={rep['export_files']} export_mib={rep['export_bytes'] / 2**20:.0f} "
                f"verify_rc={rep['verify_rc']} judge_s={rep['judge_s']:.0f}")
            for lo, hi in rep.get("missing_ranges", []):
                t_lo, t_hi = self.frame_time(lo), self.frame_time(hi + 1)
                d = self.place(t_lo) or self.place(t_hi)
                where = (f"deploy {d['idx']} ({d['from']}->{d['to']} at {d['rel']:.0f} s)" if d
                         else "outside every deploy")
                self.fail(f"camera {cam}: frames {lo}..{hi} missing ({hi - lo + 1}) at "
                          f"{t_lo - self.t_start:.1f}..{t_hi - self.t_start:.1f} s of the run: {where}")
            if len(rep.get("missing_ranges", [])) < (1 if m else 0):
                self.fail(f"camera {cam}: {m} frames missing")
            if dup:
                nums = rep.get("duplicate_numbers", [])[:10]
                places = sorted({(self.place(self.frame_time(n)) or {}).get("idx", 0) for n in nums})
                self.fail(f"camera {cam}: {dup} frames duplicated (first numbers {nums}; "
                          f"deploys {[p for p in places if p] or 'none'})")
            for k, v in extra.items():
                if v:
                    self.fail(f"camera {cam}: {k}={v}")
            if rep.get("export_files", 1) != 1:
                self.fail(f"camera {cam}: the export is {rep['export_files']} files (a stream change?)")
            if rep["verify_rc"] != 0:
                self.fail(f"camera {cam}: mwr verify exited {rep['verify_rc']}: {rep['verify_out'][-200:]!r}")
        out(f"frames_missing_total={tot_m} frames_duplicated_total={tot_d}")

        self.trends()

    def trends(self):
        a = self.a
        gens = {}  # pid -> list of (sample, worker-sample)
        for s in self.samples:
            for w in s["workers"]:
                gens.setdefault(w["pid"], []).append((s, w))
        pooled = []
        if len(gens) != len(self.deploys) + 1:
            self.fail(f"{len(gens)} worker processes sampled, expected {len(self.deploys) + 1} "
                      f"(one per deploy and the first): a worker was restarted")
        for gi, (pid, rows) in enumerate(sorted(gens.items(), key=lambda kv: kv[1][0][0]["t"]), 1):
            slot = rows[0][1]["slot"]
            f, l = rows[0][1], rows[-1][1]
            steady = [(s, w) for s, w in rows if w["age_s"] >= a.warmup and w["state"] == "ready"]
            quiet = [(s, w) for s, w in steady if not s["in_deploy"]]
            line = (f"worker gen={gi} slot={slot} pid={pid} samples={len(rows)} "
                    f"life_sampled_s={rows[-1][0]['t'] - rows[0][0]['t']:.0f} "
                    f"first_age_s={f['age_s']:.0f} rss_first_mib={f['rss_kib'] / 1024:.1f} "
                    f"rss_last_mib={l['rss_kib'] / 1024:.1f} fds_first={f['fds']} fds_last={l['fds']} "
                    f"threads_first={f['threads']} threads_last={l['threads']} steady_samples={len(steady)}")
            pooled += [(w["age_s"], w["rss_kib"] / 1024) for s, w in steady]
            span = steady[-1][1]["age_s"] - steady[0][1]["age_s"] if steady else 0
            if len(steady) >= 2:
                sl = slope_per_hour([(w["age_s"], w["rss_kib"] / 1024) for s, w in steady])
                judged = len(steady) >= 3 and span >= 60
                verdict = ("flat" if sl <= a.rss_limit else "GROWING") if judged else "too_short"
                line += f" rss_slope_mib_per_h={sl:.1f} rss_span_s={span:.0f} rss_verdict={verdict}"
                if verdict == "GROWING":
                    self.fail(f"worker gen {gi} (slot {slot}, pid {pid}): RSS grows {sl:.1f} MiB/h over "
                              f"{span:.0f} s (limit {a.rss_limit})")
            else:
                line += " rss_verdict=too_short"
            for k in ("fds", "threads"):
                vals = [w[k] for s, w in quiet]
                if vals:
                    line += f" {k}_steady_min={min(vals)} {k}_steady_max={max(vals)}"
                    if min(vals) != max(vals):
                        kinds = " -> ".join(json.dumps(w["fd_kinds"], sort_keys=True) for s, w in
                                            (quiet[0], quiet[-1])) if k == "fds" else ""
                        self.fail(f"worker gen {gi} (slot {slot}, pid {pid}): {k} not constant after "
                                  f"{a.warmup} s: {[w[k] for s, w in quiet]} {kinds}".strip())
            out(line)
        if len(pooled) >= 3:
            sl = slope_per_hour(pooled)
            span = max(p[0] for p in pooled) - min(p[0] for p in pooled)
            verdict = ("flat" if sl <= a.rss_limit else "GROWING") if span >= 60 else "too_short"
            out(f"workers_pooled_rss_samples={len(pooled)} workers_pooled_rss_slope_mib_per_h={sl:.1f} "
                f"workers_pooled_age_span_s={span:.0f} workers_pooled_rss_verdict={verdict}")
            if verdict == "GROWING":
                self.fail(f"workers' RSS, pooled by age over every generation, grows {sl:.1f} MiB/h")
        # generation to generation: the RSS of each worker at its first steady sample
        firsts = []
        for pid, rows in sorted(gens.items(), key=lambda kv: kv[1][0][0]["t"]):
            st = [w for s, w in rows if w["age_s"] >= a.warmup and w["state"] == "ready"]
            if st:
                firsts.append(st[0]["rss_kib"] / 1024)
        if firsts:
            out("workers_rss_at_warmup_mib=" + ",".join(f"{x:.1f}" for x in firsts))

        # the supervisor: one life over every deploy
        sv = [(s, s["supervisor"]) for s in self.samples if s["supervisor"]]
        if sv:
            f, l = sv[0][1], sv[-1][1]
            # judged from the first deploy's end on: that deploy sets up what every later one reuses
            # (a one-time step in RSS); a leak per deploy shows as a staircase after it
            t_from = self.deploys[0]["end"] if self.deploys else 0
            steady = [(s, p) for s, p in sv if s["rel"] >= a.warmup and s["t"] > t_from]
            after = [next((p["rss_kib"] for s, p in sv if s["t"] > d["end"]), None) for d in self.deploys]
            if any(x is not None for x in after):
                out("supervisor_rss_after_each_deploy_mib=" +
                    ",".join("-" if x is None else f"{x / 1024:.1f}" for x in after))
            quiet = [(s, p) for s, p in sv if not s["in_deploy"]]
            line = (f"supervisor samples={len(sv)} rss_first_mib={f['rss_kib'] / 1024:.1f} "
                    f"rss_last_mib={l['rss_kib'] / 1024:.1f} fds_first={f['fds']} fds_last={l['fds']} "
                    f"threads_first={f['threads']} threads_last={l['threads']}")
            if len(steady) >= 3:
                sl = slope_per_hour([(s["rel"], p["rss_kib"] / 1024) for s, p in steady])
                span = steady[-1][0]["rel"] - steady[0][0]["rel"]
                verdict = ("flat" if sl <= a.rss_limit else "GROWING") if span >= 60 else "too_short"
                line += (f" rss_slope_mib_per_h={sl:.1f} rss_span_s={span:.0f} rss_judged_from_t_s="
                         f"{steady[0][0]['rel']:.0f} rss_verdict={verdict}")
                if verdict == "GROWING":
                    self.fail(f"supervisor: RSS grows {sl:.1f} MiB/h over {span:.0f} s")
            for k in ("fds", "threads"):
                vals = [p[k] for s, p in quiet]
                line += f" {k}_quiet_min={min(vals)} {k}_quiet_max={max(vals)}"
                if min(vals) != max(vals):
                    after = [(round(s["rel"]), p[k]) for s, p in quiet]
                    self.fail(f"supervisor: {k} not constant outside deploys (t_s, {k}): {after} "
                              + (json.dumps(quiet[0][1]["fd_kinds"], sort_keys=True) + " -> " +
                                 json.dumps(quiet[-1][1]["fd_kinds"], sort_keys=True) if k == "fds" else ""))
            out(line)
        cs = [s["camsim"] for s in self.samples if s["camsim"]]
        if cs:
            out(f"camsim rss_first_mib={cs[0]['rss_kib'] / 1024:.1f} rss_last_mib={cs[-1]['rss_kib'] / 1024:.1f} "
                f"threads_first={cs[0]['threads']} threads_last={cs[-1]['threads']}")
        quiet_sess = [s["sessions_open"] for s in self.samples if not s["in_deploy"]]
        opened = [s["sessions_opened"] for s in self.samples]
        if quiet_sess:
            out(f"camsim_sessions_quiet_min={min(quiet_sess)} camsim_sessions_quiet_max={max(quiet_sess)} "
                f"camsim_sessions_opened={opened[-1]} camsim_sessions_opened_expected={self.a.cameras * (len(self.deploys) + 1)}")
            bad = [(round(s["rel"]), s["sessions_open"]) for s in self.samples
                   if not s["in_deploy"] and s["sessions_open"] != self.a.cameras]
            if bad:
                self.fail(f"camsim sessions outside deploys are not {self.a.cameras} (t_s, open): {bad}")
            if opened[-1] > self.a.cameras * (len(self.deploys) + 1):
                self.fail(f"camsim saw {opened[-1]} sessions opened, expected "
                          f"{self.a.cameras * (len(self.deploys) + 1)} (cameras x worker generations): reconnects")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--deploy-every", type=float, default=300, help="seconds between deploys")
    ap.add_argument("--camsim-args", default="", help="more camsim options, one string")
    ap.add_argument("--overlap", type=int, default=5, help="deploy.overlap_seconds")
    ap.add_argument("--sample-every", type=float, default=30, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=120, help="seconds of a life not judged for trends")
    ap.add_argument("--rss-limit", type=float, default=10, help="MiB per hour of RSS growth allowed")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (recordings, exports, logs)")
    a = ap.parse_args()
    for b in (CAMSIM, FRAMECHECK, SUPERVISOR, WORKER, MWR):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"soak: missing {b}: run make all")
    if not shutil.which("haproxy"):
        raise SystemExit("soak: haproxy is not installed")
    argv = ["tests/bench/soak.py", "--cameras", str(a.cameras), "--minutes", f"{a.minutes:g}",
            "--deploy-every", f"{a.deploy_every:g}"] + (["--camsim-args", a.camsim_args] if a.camsim_args else [])
    out("command=" + " ".join(shlex.quote(x) for x in argv))
    out(f"cameras={a.cameras} minutes={a.minutes:g} deploy_every_s={a.deploy_every:g} overlap_s={a.overlap} "
        f"sample_every_s={a.sample_every:g} warmup_s={a.warmup:g} rss_limit_mib_per_h={a.rss_limit:g}")
    soak = Soak(a)
    out(f"dir={soak.dir}")
    need = a.cameras * a.minutes / 60 * 0.6e9
    free = shutil.disk_usage(soak.dir).free
    if free < need:
        shutil.rmtree(soak.dir, ignore_errors=True)
        raise SystemExit(f"soak: {free / 1e9:.1f} GB free under {soak.dir}, about {need / 1e9:.1f} GB needed")

    def on_term(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    t0 = time.monotonic()
    rc = 1
    try:
        try:
            soak.setup()
        except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
            out(f"setup_failed={shlex.quote(str(e)[:500])}")
            rc = 2
            return rc
        soak.run()
        soak.live = False
        cams = soak.judge()
        soak.report(cams)
        out(f"wall_seconds={time.monotonic() - t0:.0f}")
        out(f"failures={len(soak.failures)}")
        for f in soak.failures:
            out(f"failure={f}")
        out("result=" + ("PASS" if not soak.failures else "FAIL"))
        rc = 0 if not soak.failures else 1
        return rc
    except KeyboardInterrupt:
        out("result=INTERRUPTED")
        rc = 1
        return rc
    finally:
        soak.stop_ev.set()
        soak.kill_all()
        if a.keep:
            out(f"kept={soak.dir}")
        elif rc != 0:  # evidence: logs and the DB stay, the footage goes
            shutil.rmtree(os.path.join(soak.dir, "rec"), ignore_errors=True)
            shutil.rmtree(os.path.join(soak.dir, "export"), ignore_errors=True)
            out(f"kept_logs={soak.dir}")
        else:
            shutil.rmtree(soak.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
