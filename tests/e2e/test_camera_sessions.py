"""Camera sessions as real cameras run them: a refused request is named by
its RTSP status and reason, logged once while it lasts, and shown on
/health and /api/cameras; a refused login backs off instead of knocking
every few seconds; credentials are shown nowhere; a camera that allows
one session is handed over between our instances instead of fought over
(camsim --max-sessions 1 --policy refuse|kick)."""
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import framecheck, free_port, wait_for
from test_continuity import MWR
from test_deploy import deploy, start_haproxy
from test_scripts import SCRIPTS
from test_supervisor import active_slot, start_supervisor, sup_config
from test_worker_records import WORKER, recording_frames, write_config


def start(procs, cfg_path, instance="a"):
    port = free_port()
    p = procs.start(f"worker-{instance}", [WORKER, "--config", cfg_path, "--instance-id", instance,
                                            "--port", str(port)])
    return p, port


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # /health answers 503 with its JSON
        return json.loads(e.read())


def metric(port, name, cam="cam1"):
    """A worker's /metrics sample: name{camera="cam"}, or the full series name when cam is None."""
    series = f'{name}{{camera="{cam}"}}' if cam else name
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in /metrics")


def camera(port, cam="cam1"):
    """The camera's row of /api/cameras; None while the worker does not answer yet."""
    try:
        return next(c for c in get(port, "/api/cameras") if c["id"] == cam)
    except urllib.error.URLError:
        return None


def log_of(p):
    return open(p.err_path).read() + open(p.out_path).read()


def test_unsupported_transport_is_named_by_its_status_and_logged_once(procs, camsim, tmp_path):
    """Regression: 461 Unsupported transport was logged as "Protocol not
    supported" (libavformat's errno for it), every 0.25-5 s."""
    cs = camsim(cameras=2, transport="udp-only")
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    cfg["cameras"][1]["transport"] = "udp"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    w, port = start(procs, cfg_path)
    c = wait_for(lambda: (k := camera(port)) and k["reconnects"] >= 3 and k, 30, "three refused attempts")
    assert c["error"] == "unsupported_transport", c
    assert c["error_detail"] == "SETUP answered 461 Unsupported transport", c
    assert c["rtsp_status"] == 461, c
    h = get(port, "/health")
    assert h["camera_errors"] == {"cam1": "unsupported_transport"}, h
    log = log_of(w)
    assert log.count("camera cam1: SETUP answered 461 Unsupported transport") == 1, log[-3000:]
    assert log.count("461") == 1, log[-3000:]  # libavformat's own line, once per attempt, is not passed on
    # the camera over UDP records, and has no error
    c2 = wait_for(lambda: (k := camera(port, "cam2")) and k["frames"] >= 25 and k, 30, "cam2 records over udp")
    assert c2["error"] == "" and c2["rtsp_status"] is None, c2


def write_cfg(tmp, cameras, **extra):
    """A worker config for explicit cameras [(id, url, {keys})]."""
    cfg = {"storage_dir": os.path.join(tmp, "rec"), "db_path": os.path.join(tmp, "mwr.db"), "segment_seconds": 4,
           "cameras": [dict({"id": i, "url": u}, **k) for i, u, k in cameras]}
    cfg.update(extra)
    path = os.path.join(tmp, "mwr.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path, cfg


def with_credentials(url, userinfo):
    return url.replace("rtsp://", f"rtsp://{userinfo}@", 1)


def test_passwords_with_at_and_colon_record_and_show_nowhere(procs, camsim, tmp_path):
    """Regression: a raw '@' in the password (rtsp://admin:p@ss@word@host/)
    leaked its tail into the log, the DB and /api/cameras: redaction split
    at the first '@', libavformat at the last.  pre-start-check.sh put
    every camera URL, credentials and all, on ffprobe's command line."""
    digest = camsim(cameras=2, auth="digest:admin:p@ss@word")
    basic = camsim(cameras=1, auth="basic:admin:a:b")
    cfg_path, cfg = write_cfg(str(tmp_path), [
        ("raw", with_credentials(digest.url("cam1"), "admin:p@ss@word"), {}),
        ("encoded", with_credentials(digest.url("cam2"), "admin:p%40ss%40word"), {}),
        ("colon", with_credentials(basic.url("cam1"), "admin:a:b"), {}),
    ])
    secrets = ["ss@word", "p%40ss", "ss%40word", "admin:a:b", ":a:b@"]

    # pre-start-check: no credentials on any command line while it runs
    pre = procs.start("pre-start-check", [os.path.join(SCRIPTS, "pre-start-check.sh"), "--config", cfg_path,
                                              "--binary", WORKER])
    seen = []
    while pre.poll() is None:
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
            except OSError:
                continue
            if any(s in cmd for s in secrets):
                seen.append(cmd)
    out = log_of(pre)
    assert not seen, seen
    assert out.count("): ok: h264") == 3, out
    assert not any(s in out for s in secrets), out

    w, port = start(procs, cfg_path)
    wait_for(lambda: all((c := camera(port, i)) and c["frames"] >= 25 for i in ("raw", "encoded", "colon")), 30,
             "every camera records")
    shown = [json.dumps(get(port, p)) for p in ("/api/cameras", "/health", "/api/health")]
    shown.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
    procs.stop(w)
    shown.append(log_of(w))
    with open(cfg["db_path"], "rb") as f:  # every byte of the index: rows, free pages, the WAL is checkpointed
        shown.append(f.read().decode("latin-1"))
    for s in secrets:
        for text in shown:
            assert s not in text, (s, text[:3000])
    assert "rtsp://***@127.0.0.1:" in shown[0], shown[0]


def camsim_events(cs, cam="cam1"):
    return json.loads(cs.control(f"sessions {cam}"))[cam]["events"]


def test_wrong_password_backs_off_to_its_maximum_and_health_says_auth_failed(procs, camsim, tmp_path):
    """Regression: a refused login was retried every 0.25-5 s forever, and
    cameras that lock an account after a few failed logins locked it."""
    cs = camsim(cameras=1, auth="basic:admin:right")
    cfg_path, cfg = write_cfg(str(tmp_path), [
        ("cam1", with_credentials(cs.url("cam1"), "admin:wrong"), {"auth_retry_max_seconds": 4})])
    w, port = start(procs, cfg_path)
    waits, last = [], [None]

    def five_waits():  # each refused attempt's wait before the next one
        c = camera(port)
        if c and c["retry_in_s"] > 0 and c["reconnects"] != last[0]:
            waits.append(c["retry_in_s"])
            last[0] = c["reconnects"]
        return len(waits) >= 5
    wait_for(five_waits, 30, "five refused logins")
    assert waits == [1, 2, 4, 4, 4], waits
    c = camera(port)
    assert c["error"] == "auth_failed" and c["rtsp_status"] == 401, c
    assert c["error_detail"] == "DESCRIBE answered 401 Unauthorized", c
    h = get(port, "/health")
    assert h["status"] in ("starting", "unhealthy") and h["camera_errors"] == {"cam1": "auth_failed"}, h
    # the camera's side: the attempts (libavformat asks twice: without, then with credentials) back off
    starts = []
    for ev in camsim_events(cs):
        if ev["event"] == "auth_failed" and (not starts or ev["t"] - starts[-1] > 0.5):
            starts.append(ev["t"])
    gaps = [round(b - a, 1) for a, b in zip(starts, starts[1:])]
    assert len(gaps) >= 4 and all(abs(g - want) < 0.6 for g, want in zip(gaps, [1, 2, 4, 4])), gaps
    assert log_of(w).count("DESCRIBE answered 401 Unauthorized") == 1, log_of(w)[-3000:]


GOP_S = 1.0
FPS = 25


def export_report(tmp, cfg_path, cam, t_from, t_to):
    """The frame judge's report of the camera's export over [t_from, t_to]
    (every instance's copies, deduplicated), and the gap rows there."""
    out = os.path.join(tmp, f"{cam}-{int(t_from)}.mp4")
    r = subprocess.run([MWR, "export", "--config", cfg_path, "--camera", cam, "--from", str(t_from), "--to",
                        str(t_to), "-o", out, "--quiet"], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    rep, _ = framecheck([out], "--camera", cam)
    g = subprocess.run([MWR, "gaps", "--config", cfg_path, "--camera", cam, "--from", str(t_from), "--to",
                        str(t_to), "--json"], capture_output=True, timeout=60)
    assert g.returncode == 0, g.stderr.decode()
    return rep, json.loads(g.stdout)["gaps"]


def test_refusing_camera_second_worker_stands_by_then_takes_over(procs, camsim, tmp_path):
    """A camera that refuses a second session (453): a second worker does
    not retry against it but stands by, healthy, while the first holds it,
    and takes it as soon as the first stops: one 'handover' gap, at most
    the reconnect plus one GOP."""
    cs = camsim(cameras=1, max_sessions=1, policy="refuse", gop=FPS)
    cfg_path, cfg = write_cfg(str(tmp_path), [("cam1", cs.url("cam1"), {})])
    a, port_a = start(procs, cfg_path, "a")
    wait_for(lambda: (c := camera(port_a)) and c["frames"] >= 2 * FPS, 30, "a records")
    b, port_b = start(procs, cfg_path, "b")
    c = wait_for(lambda: (k := camera(port_b)) and k["state"] == "standby" and k, 30, "b stands by")
    assert c["held_by"] == "a" and c["frames"] == 0, c
    h = wait_for(lambda: (x := get(port_b, "/health")) and x["status"] == "healthy" and x, 30, "b healthy")
    assert h["cameras"] == {"cam1": "standby"} and h["camera_errors"] == {}, h
    assert "SETUP answered 453 Not Enough Bandwidth" in log_of(b), log_of(b)[-2000:]
    refused = json.loads(cs.control("sessions cam1"))["cam1"]["refused"]
    time.sleep(3)  # standing by: b asks the camera nothing meanwhile (measured over an interval)
    assert json.loads(cs.control("sessions cam1"))["cam1"]["refused"] == refused
    t0 = time.time() - 4
    procs.stop(a)
    t_stop = time.time()
    wait_for(lambda: (k := camera(port_b)) and k["state"] == "recording" and k["frames"] > FPS, 30, "b takes over")
    time.sleep(1)
    procs.stop(b)
    rep, gaps = export_report(str(tmp_path), cfg_path, "cam1", t0, time.time())
    assert rep["duplicated"] == 0, rep
    assert 0 < rep["missing"] <= FPS * (GOP_S + 1.0), rep  # reconnect (well under 1 s) + one GOP
    assert [g["reason"] for g in gaps] == ["handover"], gaps
    assert t_stop - 2 < gaps[0]["start_us"] / 1e6 < t_stop + 2, gaps


def test_kicking_camera_two_workers_settle_within_two_handovers(procs, camsim, tmp_path):
    """Regression: on a camera that keeps the newest session and ends the
    oldest, two workers kicked each other every 0.25-0.5 s (245 of 1296
    frames lost in 45 s).  Now the kicked one sees that another instance
    of ours took the camera and stands by: they settle within two
    hand-overs and lose at most two hand-overs' worth."""
    cs = camsim(cameras=1, max_sessions=1, policy="kick", gop=FPS)
    cfg_path, cfg = write_cfg(str(tmp_path), [("cam1", cs.url("cam1"), {})])
    t0 = time.time()
    a, port_a = start(procs, cfg_path, "a")
    wait_for(lambda: (c := camera(port_a)) and c["frames"] >= FPS, 30, "a records")
    b, port_b = start(procs, cfg_path, "b")
    wait_for(lambda: (x := camera(port_a)) and x["state"] == "standby", 30, "a stands by for b")
    # the hole in a's own recording is a row, counted in a's metrics, and no
    # alert: b records it (regression: the row was not counted)
    wait_for(lambda: metric(port_a, "mwr_gaps_total") == 1, 10, "a counts its handover gap")
    assert metric(port_a, "mwr_gap_alerts_total") == 0
    assert metric(port_a, 'mwr_gap_seconds_total{camera="cam1",reason="handover"}', None) > 0
    time.sleep(45)  # the two of them on one camera for 45 s: the interval is the test
    kicked = json.loads(cs.control("sessions cam1"))["cam1"]["kicked"]
    assert kicked <= 2, cs.control("sessions cam1")
    states = {camera(port_a)["state"], camera(port_b)["state"]}
    assert states == {"recording", "standby"}, states
    t1 = time.time()
    procs.stop(a)
    procs.stop(b)
    rep, gaps = export_report(str(tmp_path), cfg_path, "cam1", t0 + 3, t1)
    assert rep["duplicated"] == 0, rep
    assert rep["missing"] <= 2 * FPS * (GOP_S + 1.0), rep
    assert all(g["reason"] == "handover" for g in gaps) and len(gaps) <= 2, gaps


def test_a_learnt_session_limit_is_remembered_by_every_instance(procs, camsim, tmp_path):
    """An instance kicked off a "newest wins" camera by another of ours
    learns that the camera allows one session, and the leases keep it
    (schema 6, limited_us).  A third instance started then stands by
    instead of kicking the holder.  Regression: each new instance (each
    deploy's new worker) kicked the holder once more before learning it."""
    cs = camsim(cameras=1, max_sessions=1, policy="kick", gop=FPS)
    cfg_path, cfg = write_cfg(str(tmp_path), [("cam1", cs.url("cam1"), {})])
    a, port_a = start(procs, cfg_path, "a")
    wait_for(lambda: (c := camera(port_a)) and c["frames"] >= FPS, 30, "a records")
    b, port_b = start(procs, cfg_path, "b")
    wait_for(lambda: (x := camera(port_a)) and x["state"] == "standby" and x["session_limited"], 30,
             "a, kicked, stands by for b")
    wait_for(lambda: (x := camera(port_b)) and x["state"] == "recording", 30, "b records")
    assert json.loads(cs.control("sessions cam1"))["cam1"]["kicked"] == 1
    c, port_c = start(procs, cfg_path, "c")
    wait_for(lambda: (x := camera(port_c)) and x["state"] == "standby", 30, "c stands by without a try")
    x = camera(port_c)
    assert x["session_limited"] and x["held_by"] == "b", x
    assert camera(port_b)["state"] == "recording"
    log = json.loads(cs.control("sessions cam1"))["cam1"]
    assert log["kicked"] == 1 and log["opened"] == 2, log  # c never opened a session


@pytest.mark.parametrize("policy", ["refuse", "kick"])
def test_deploy_hands_a_one_session_camera_over(procs, camsim, tmp_path, policy):
    """Regression: a deploy against a camera that allows one session rolled
    back every time (refused: the new worker never got healthy) or lost
    ~250 frames to the two workers kicking each other.  Now the new worker
    stands by on that camera, the deploy goes on, and the camera is handed
    over when the old worker stops: one 'handover' gap of at most the
    reconnect plus one GOP; the other camera loses nothing."""
    limited = camsim(cameras=1, max_sessions=1, policy=policy, gop=FPS)
    normal = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), normal, 1)
    cfg["cameras"] = [{"id": "cam1", "url": limited.url("cam1")}, {"id": "cam2", "url": normal.url("cam1")}]
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    start_haproxy(procs, str(tmp_path), cfg_path, cfg)
    sup = start_supervisor(procs, cfg_path)
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker a ready")
    procs.track_pid(a["pid"])
    wait_for(recording_frames(cfg, 2 * FPS), 30, "recording")
    t0 = time.time()
    opened = json.loads(limited.control("sessions cam1"))["cam1"]
    rc, out = deploy(cfg_path, "--overlap", "3")
    assert rc == 0, out
    b = active_slot(cfg_path)
    assert b["slot"] == "b", b
    procs.track_pid(b["pid"])
    port_b = cfg["worker"]["ports"][1]
    wait_for(lambda: (k := camera(port_b)) and k["state"] == "recording" and k["frames"] > FPS, 30,
             "b records the one-session camera")
    after = json.loads(limited.control("sessions cam1"))["cam1"]
    assert after["kicked"] - opened["kicked"] <= 1, after  # at most one hand-over per deploy
    time.sleep(1)
    t1 = time.time()
    rep, gaps = export_report(str(tmp_path), cfg_path, "cam1", t0, t1)
    assert rep["duplicated"] == 0, rep
    assert rep["missing"] <= FPS * (GOP_S + 1.0), rep
    assert [g["reason"] for g in gaps] == ["handover"], gaps
    rep, gaps = export_report(str(tmp_path), cfg_path, "cam2", t0, t1)
    assert rep["missing"] == 0 and rep["duplicated"] == 0 and gaps == [], (rep, gaps)
    assert sup.poll() is None


def test_deploy_failure_names_the_camera_and_its_status(procs, camsim, tmp_path):
    """A deploy whose new worker never gets READY because of a camera says
    which camera and what it answered (it used to say only "sent no READY
    within N s")."""
    cs = camsim(cameras=2, auth="basic:admin:right", gop=FPS)
    cfg_path, cfg = sup_config(str(tmp_path), cs, 2)
    cfg["cameras"][0]["url"] = with_credentials(cs.url("cam1"), "admin:right")
    cfg["cameras"][1]["url"] = with_credentials(cs.url("cam2"), "admin:wrong")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    start_haproxy(procs, str(tmp_path), cfg_path, cfg)
    sup = start_supervisor(procs, cfg_path)
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["pid"] > 0 and s, 30, "worker a started")
    procs.track_pid(a["pid"])
    rc, out = deploy(cfg_path, "--health-timeout", "3")
    assert rc == 1, out
    # cam1 may or may not record yet in 3 s on a loaded machine: the line names cam2 either way
    assert re.search(r"sent no READY within 3 s; its status: starting: recording [01]/2 cameras; "
                     r"cam2 auth_failed: DESCRIBE answered 401 Unauthorized", out), out
    assert "right" not in out and "wrong" not in out, out
    assert sup.poll() is None
