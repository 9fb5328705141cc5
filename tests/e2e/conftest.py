"""End-to-end fixtures: real processes on loopback, each test in its own temp
dir with free ports.  Everything a test starts is registered with `procs` and
killed by pid at the end (SIGTERM, then SIGKILL); every wait is bounded."""
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MWR_BUILD", os.path.join(ROOT, "build"))
CAMSIM = os.path.join(BUILD, "tests", "camsim")
FRAMECHECK = os.path.join(BUILD, "tests", "framecheck")


def wait_for(pred, timeout, what, interval=0.05):
    """Polls pred() until it is truthy; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class Procs:
    """Processes a test started; all are stopped by pid when it ends."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.started = []
        self.foreign = []  # pids the test did not start (a supervisor's workers)

    def track_pid(self, pid):
        """Also stop pid at the end (SIGTERM, then SIGKILL after 5 s)."""
        if pid and pid not in self.foreign:
            self.foreign.append(pid)

    def start(self, name, argv, **kw):
        out = open(os.path.join(self.tmp, f"{name}.out"), "wb")
        err = open(os.path.join(self.tmp, f"{name}.err"), "wb")
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        p.name, p.out_path, p.err_path = name, out.name, err.name
        out.close()
        err.close()
        self.started.append(p)
        return p

    def stop(self, p, timeout=5):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
            except ProcessLookupError:
                pass
        return p.returncode

    def stop_all(self):
        for p in reversed(self.started):
            self.stop(p)
        for pid in self.foreign:
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def procs(tmp_path):
    ps = Procs(str(tmp_path))
    yield ps
    ps.stop_all()


def _port_block():
    """This xdist worker's own block of ports, below the kernel's ephemeral
    range: a port bound with 0 or an outgoing connection (a worker's RTSP
    session, a curl) takes its local port from that range, so a port picked
    there could be taken before the process meant to listen on it does
    (seen: a deploy's new worker 'cannot listen on 127.0.0.1:43835')."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    w = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(w[2:]) if w[2:].isdigit() else 0
    size = max(200, (low - 10000) // 4)
    return 10000 + (n % 4) * size, size


_PORT_BASE, _PORT_SIZE = _port_block()
_PORT_NEXT = itertools.count(random.randrange(_PORT_SIZE))


def free_port():
    """A port no other test and no port-0 bind is handed: the next free one
    of this worker's block, never the same twice in a session."""
    for _ in range(_PORT_SIZE):
        p = _PORT_BASE + next(_PORT_NEXT) % _PORT_SIZE
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return p
    raise RuntimeError(f"no free port in {_PORT_BASE}..{_PORT_BASE + _PORT_SIZE - 1}")


class Camsim:
    def __init__(self, proc, rtsp_port, control_port, cameras):
        self.proc, self.rtsp_port, self.control_port = proc, rtsp_port, control_port
        self.cameras = cameras

    def url(self, cam="cam1"):
        return f"rtsp://127.0.0.1:{self.rtsp_port}/{cam}"

    def control(self, line, timeout=5):
        """Sends one control command; returns the reply line."""
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=timeout) as s:
            s.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return buf.decode().strip()

    def status(self):
        return json.loads(self.control("status"))


@pytest.fixture
def camsim(procs):
    """Factory: camsim(cameras=N, **options) starts a simulator on free ports."""
    def start(cameras=1, **opts):
        argv = [CAMSIM, "--cameras", str(cameras), "--port", str(free_port()),
                "--control-port", str(free_port())]
        for k, v in opts.items():
            if v is True:  # a personality flag without a value (no_rtcp=True)
                argv.append("--" + k.replace("_", "-"))
            elif v is not False and v is not None:
                argv += ["--" + k.replace("_", "-"), str(v)]
        started = sum(1 for q in procs.started if q.name.startswith("camsim"))
        p = procs.start("camsim" if started == 0 else f"camsim{started + 1}", argv)

        def ready():
            if p.poll() is not None:
                pytest.fail(f"camsim exited {p.returncode}: {open(p.err_path).read()[-2000:]}")
            line = open(p.out_path).read()
            return line if "ready" in line else None
        t0 = time.time()
        line = wait_for(ready, 10, "camsim ready line")
        kv = dict(f.split("=") for f in line.split() if "=" in f)
        cs = Camsim(p, int(kv["rtsp_port"]), int(kv["control_port"]), cameras)
        cs.started_real_us = int(t0 * 1e6)  # its frame 0 is due just after its start
        return cs
    return start


def ffmpeg_record(procs, url, seconds, out, name="ffmpeg"):
    """Starts recording url for `seconds` of stream time into out (stream copy)."""
    return procs.start(name, ["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
                              "-i", url, "-c", "copy", "-t", str(seconds), "-y", out])


def wait_exit(p, timeout):
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{p.name} still running after {timeout} s")


def framecheck(files, *extra, expect_rc=None, timeout=120):
    """Runs the frame judge with --json; returns (report, exit code)."""
    r = subprocess.run([FRAMECHECK, "--json", *extra, *files], capture_output=True, timeout=timeout)
    if r.returncode not in (0, 1):
        pytest.fail(f"framecheck failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    if expect_rc is not None:
        assert r.returncode == expect_rc, r.stdout.decode()[-3000:]
    return json.loads(r.stdout), r.returncode


@pytest.fixture
def tmpfs(tmp_path):
    """A 48 MB tmpfs of the test's own (needs root: skipped otherwise)."""
    mnt = os.path.join(tmp_path, "tmpfs")
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", mnt], capture_output=True)
