"""The door: haproxy terminates TLS and asks every request for a user of
auth.users_file (SHA-512-crypt hashes written by `mwr-supervisor passwd`);
viewers get footage of their own cameras, admins also the stats page and
/metrics; the worker logs who fetched which footage (`audit:` lines); passwd
reloads haproxy without failing a request; a deploy through TLS + auth
fails no authenticated request and loses no frame."""
import base64
import json
import os
import re
import ssl
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request

from conftest import free_port, wait_for
from test_deploy import deploy, judge_exports
from test_supervisor import LOGIN, SUPERVISOR, active_slot, start_supervisor
from test_worker_records import FPS, WORKER, recording_frames, write_config

PASSWORDS = {"alice": "alice-Pw-7f3e9", "bob": "bob-Pw-91c2d", "carol": "carol-Pw-5a0b4"}


def make_cert(tmp):
    key, crt, pem = (os.path.join(tmp, n) for n in ("tls.key", "tls.crt", "tls.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", crt], check=True, capture_output=True, timeout=60)
    with open(pem, "wb") as f:
        f.write(open(crt, "rb").read() + open(key, "rb").read())
    os.chmod(pem, 0o600)
    return pem, crt


def passwd(cfg_path, user, *args, password=None):
    r = subprocess.run([SUPERVISOR, "passwd", "--config", cfg_path, *args, user], capture_output=True,
                       input=((PASSWORDS[user] if password is None else password) + "\n").encode(), timeout=30)
    return r.returncode, r.stderr.decode()


class Door:
    """A TLS client of the frontend that knows the test's users."""
    def __init__(self, cfg, crt):
        self.ctx = ssl.create_default_context(cafile=crt)
        self.front = f"https://127.0.0.1:{cfg['haproxy']['frontend_port']}"
        self.stats = f"https://127.0.0.1:{cfg['haproxy']['stats_port']}/stats"

    def get(self, url, user=None, password=None, timeout=10):
        """(status, body) of GET url (a path is on the frontend)."""
        req = urllib.request.Request(url if url.startswith("https:") else self.front + url)
        if user:
            tok = base64.b64encode(f"{user}:{password or PASSWORDS[user]}".encode()).decode()
            req.add_header("Authorization", "Basic " + tok)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


def setup_door(procs, camsim, tmp_path):
    tmp = str(tmp_path)
    run = os.path.join(tmp, "run")
    os.makedirs(run)
    pem, crt = make_cert(tmp)
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(
        tmp, cs, 2, worker={"binary": WORKER, "ports": [free_port(), free_port()]},
        haproxy={"socket": os.path.join(run, "haproxy.sock"), "frontend_port": free_port(),
                 "stats_port": free_port(), "tls_cert": pem, "socket_user": LOGIN,
                 "config_file": os.path.join(tmp, "haproxy.cfg"),
                 "master_socket": os.path.join(run, "haproxy-master.sock")},
        auth={"users_file": os.path.join(tmp, "users.json")},
        deploy={"overlap_seconds": 5, "health_timeout_seconds": 20, "stop_timeout_seconds": 10},
        control_socket=os.path.join(run, "supervisor.sock"))
    os.chmod(cfg_path, 0o644)  # as an operator's umask 022 leaves it: the supervisor warns
    # users before haproxy runs: passwd writes haproxy.cfg and says haproxy reads it when it starts
    rc, out = passwd(cfg_path, "alice", "--role", "admin")
    assert rc == 0 and "haproxy is not running" in out, out
    rc, out = passwd(cfg_path, "bob", "--cameras", "cam1")
    assert rc == 0, out
    hap = procs.start("haproxy", ["haproxy", "-W", "-db", "-S", cfg["haproxy"]["master_socket"],
                                  "-f", cfg["haproxy"]["config_file"]])
    wait_for(lambda: os.path.exists(cfg["haproxy"]["socket"]), 10, "haproxy admin socket")
    sup = start_supervisor(procs, cfg_path)
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker a ready")
    procs.track_pid(a["pid"])
    wait_for(recording_frames(cfg, 2 * FPS), 30, "recording")
    door = Door(cfg, crt)
    wait_for(lambda: door.get("/health", "alice")[0] == 200, 15, "healthy through the door")
    return cs, cfg_path, cfg, door, hap, sup


def media_urls(playlist):
    text = playlist.decode()
    return re.findall(r'URI="([^"]+)"', text) + [l for l in text.splitlines() if l and not l.startswith("#")]


def test_only_users_pass_and_each_sees_its_own_cameras(procs, camsim, tmp_path):
    cs, cfg_path, cfg, door, hap, sup = setup_door(procs, camsim, tmp_path)
    wait_for(lambda: door.get("/api/cameras/cam2/playlist.m3u8", "alice")[0] == 200, 30, "a playlist of cam2")
    st, pl1 = door.get("/api/cameras/cam1/playlist.m3u8", "alice")
    assert st == 200, pl1
    cam1_media = media_urls(pl1)[1]
    assert cam1_media.startswith("/api/cameras/cam1/segments/"), cam1_media  # the camera is in the path
    cam2_media = media_urls(door.get("/api/cameras/cam2/playlist.m3u8", "alice")[1])[1]
    cam2_seg = int(cam2_media.split("/")[5])

    # no credentials, a wrong password, an unknown user: 401 on the API, a playlist, media, the stats page
    for path in ("/api/cameras", "/api/cameras/cam1/playlist.m3u8", cam1_media, f"/api/segments/{cam2_seg}/media.mp4"):
        assert door.get(path)[0] == 401, path
        assert door.get(path, "bob", "not-his-password")[0] == 401, path
        assert door.get(path, "mallory", "x")[0] == 401, path
    assert door.get(door.stats)[0] == 401
    # a viewer of cam1
    assert door.get("/api/cameras/cam1/playlist.m3u8", "bob")[0] == 200
    st, body = door.get(cam1_media, "bob")
    assert st == 200 and len(body) > 0
    st, body = door.get("/api/cameras", "bob")
    assert st == 200 and [c["id"] for c in json.loads(body)] == ["cam1"], body  # only his own
    assert door.get("/api/segments?camera=cam1", "bob")[0] == 200
    # ... and not of cam2, however it is asked for
    for path in ("/api/cameras/cam2/playlist.m3u8",                    # haproxy: the path names cam2
                 "/api/cameras/%63am2/playlist.m3u8",                  # escaped: matches no camera of his
                 cam2_media,
                 f"/api/segments/{cam2_seg}/media.mp4",                 # by id: the worker knows whose it is
                 "/api/segments?camera=cam2", "/api/gaps",             # listings must name one of his
                 "/api/gaps?camera=cam2"):
        assert door.get(path, "bob")[0] == 403, path
    assert door.get(f"/api/cameras/cam1/segments/{cam2_seg}/media.mp4", "bob")[0] == 404  # not cam1's segment
    assert door.get("/api/segments?camera=cam1&camera=cam2", "bob")[0] == 400
    # roles: the stats page and /metrics are the admin's
    assert door.get(door.stats, "bob")[0] == 403
    assert door.get("/metrics", "bob")[0] == 403
    assert door.get(door.stats, "alice")[0] == 200
    st, body = door.get("/metrics", "alice")
    assert st == 200 and b"mwr_" in body
    st, body = door.get(f"/api/segments/{cam2_seg}/media.mp4", "alice")
    assert st == 200 and len(body) > 0

    # the users file: hashes only, for the service user alone
    users_file = cfg["auth"]["users_file"]
    assert stat.S_IMODE(os.stat(users_file).st_mode) == 0o600
    text = open(users_file).read()
    assert all(pw not in text for pw in PASSWORDS.values()) and text.count('"$6$') == 2, text
    assert stat.S_IMODE(os.stat(cfg["haproxy"]["config_file"]).st_mode) & 0o007 == 0

    # passwd re-syncs haproxy while a client keeps asking: nobody fails, the new user gets in
    client = Hammer(door, "/api/cameras/cam1/playlist.m3u8", "bob", rate=50)
    client.start()
    wait_for(lambda: client.ok >= 10, 10, "the client's first answers")
    assert door.get("/api/cameras", "carol")[0] == 401
    rc, out = passwd(cfg_path, "carol", "--cameras", "cam2")
    assert rc == 0 and "haproxy reloaded" in out, out
    assert door.get("/api/cameras/cam2/playlist.m3u8", "carol")[0] == 200
    assert door.get("/api/cameras/cam1/playlist.m3u8", "carol")[0] == 403
    n = client.ok
    wait_for(lambda: client.ok >= n + 10, 10, "answers after the reload")
    client.finish()
    assert client.failed == 0 and client.ok > 20, (client.failed, client.ok, client.errors[:5])
    assert hap.poll() is None

    # the audit log: who fetched which camera's footage, and what was refused
    logs = "".join(open(p, errors="replace").read() for p in (sup.err_path, hap.err_path, hap.out_path))
    # the test wrote the config under umask 022: the supervisor says it is everyone's to read
    assert f"{cfg_path} is readable by every user of this host (mode 0644)" in logs
    assert all(pw not in logs for pw in PASSWORDS.values())
    audit = [l for l in logs.splitlines() if "audit: " in l]
    seg1 = cam1_media.split("/")[5]
    rng = cam1_media.rsplit("/", 1)[1].split(".")[0]
    assert any(f"user=bob from=127.0.0.1 camera=cam1 request=segment:{seg1} range={rng} status=200 "
               f"bytes={int(rng.split('-')[1])} done" in l for l in audit), audit[-20:]
    assert any("user=bob" in l and "camera=cam1 request=playlist" in l and "status=200" in l for l in audit)
    assert any(f"user=bob from=127.0.0.1 camera=cam2 request=segment:{cam2_seg} range=whole status=403" in l
               for l in audit), audit[-20:]
    assert any("user=carol" in l and "camera=cam2 request=playlist" in l for l in audit)


class Hammer(threading.Thread):
    """GETs one URL through the door at a steady rate; counts every failure."""
    def __init__(self, door, path, user, rate):
        super().__init__(daemon=True)
        self.door, self.path, self.user, self.pause = door, path, user, 1.0 / rate
        self.ok = self.failed = 0
        self.errors = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                st, body = self.door.get(self.path, self.user)
                if st == 200:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append((st, body[:200]))
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.failed += 1
                self.errors.append(repr(e)[:200])
            time.sleep(self.pause)

    def finish(self):
        self.halt.set()
        self.join(15)


def test_deploy_through_tls_and_auth_fails_no_request_and_loses_no_frame(procs, camsim, tmp_path):
    cs, cfg_path, cfg, door, hap, sup = setup_door(procs, camsim, tmp_path)
    client = Hammer(door, "/api/cameras", "bob", rate=20)
    client.start()
    t0 = time.time()
    wait_for(lambda: client.ok >= 10, 10, "the client's first answers")
    rc, out = deploy(cfg_path, "--overlap", "5")
    n = client.ok
    wait_for(lambda: client.ok >= n + 20, 10, "answers after the deploy")
    client.finish()
    t1 = time.time()
    assert rc == 0 and "ok: slot b" in out, out
    assert client.failed == 0 and client.ok > 50, (client.failed, client.ok, client.errors[:5])
    b = active_slot(cfg_path)
    assert b["slot"] == "b"
    procs.track_pid(b["pid"])
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, t1)


def test_an_open_door_is_refused_unless_the_config_says_so(tmp_path):
    """A worker on a non-loopback address, or a frontend with neither TLS nor
    plain_http: exit 2 naming the key that would allow it."""
    def cfg(**extra):
        c = {"storage_dir": str(tmp_path / "rec"), "db_path": str(tmp_path / "mwr.db"),
             "cameras": [{"id": "cam1", "url": "rtsp://127.0.0.1:1/cam1"}]}
        c.update(extra)
        p = tmp_path / "mwr.json"
        p.write_text(json.dumps(c))
        return str(p)

    r = subprocess.run([WORKER, "--config", cfg(worker={"bind": "0.0.0.0"}), "--check-config"], capture_output=True,
                       timeout=10)
    assert r.returncode == 2 and b"worker.allow_remote" in r.stderr, r.stderr
    r = subprocess.run([WORKER, "--config", cfg(worker={"bind": "0.0.0.0", "allow_remote": True}), "--check-config"],
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([SUPERVISOR, "proxy-config", "--config", cfg()], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"haproxy.tls_cert" in r.stderr and b"haproxy.plain_http" in r.stderr, r.stderr
    assert r.stdout == b""
    r = subprocess.run([SUPERVISOR, "proxy-config", "--config", cfg(haproxy={"plain_http": True},
                                                                  auth={"required": False})],
                       capture_output=True, timeout=10)
    assert r.returncode == 0 and b"auth.required is false" in r.stderr and b"bind 127.0.0.1:8000\n" in r.stdout
    # a password from stdin that is empty, and a user name haproxy would misread
    path = cfg(haproxy={"plain_http": True}, auth={"users_file": str(tmp_path / "users.json")})
    rc, out = passwd(path, "eve", password="")
    assert rc == 2 and "empty password" in out and not (tmp_path / "users.json").exists(), out
    rc, out = passwd(path, "e#ve", password="x")
    assert rc == 2 and "must match" in out, out
