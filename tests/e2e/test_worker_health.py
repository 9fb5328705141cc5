"""mwr-worker tells the truth about itself: /health, /api/health, /metrics,
the JSON API, and sd_notify (READY, STATUS, WATCHDOG only while recording
progresses, STOPPING) on a NOTIFY_SOCKET the test owns."""
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request

from conftest import free_port, wait_for
from test_worker_records import FPS, WORKER, write_config


def get(port, path, timeout=5):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None, ""


def healthy_worker(procs, camsim, tmp_path, cameras):
    """camsim + one worker, waited on until /health says 200."""
    cs = camsim(cameras=cameras, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, cameras)
    port = free_port()
    start(procs, cfg_path, port)
    wait_for(lambda: get(port, "/health")[0] == 200, 20, "healthy")
    return cs, cfg, port


def start(procs, cfg_path, port, env=None, name="worker"):
    return procs.start(name, [WORKER, "--config", cfg_path, "--instance-id", "a", "--port", str(port)],
                       env={**os.environ, **(env or {})})


def test_health_starting_then_healthy_then_degraded(procs, camsim, tmp_path):
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    port = free_port()
    start(procs, cfg_path, port)
    code, body = wait_for(lambda: (lambda r: r if r[0] else None)(get(port, "/health")), 10, "HTTP up")
    assert code == 503 and json.loads(body)["status"] == "starting"
    wait_for(lambda: get(port, "/health")[0] == 200, 20, "healthy")
    h = json.loads(get(port, "/health")[1])
    # camera_errors: added in mwr (docs/interface.md), empty while every camera records
    assert set(h) == {"status", "recording", "cameras", "uptime", "instance_id", "ready_since", "camera_errors"}
    assert h["camera_errors"] == {}
    assert h["status"] == "healthy" and h["recording"] is True and h["instance_id"] == "a"
    assert h["cameras"] == {"cam1": "recording", "cam2": "recording"}
    code, body = get(port, "/api/health")
    a = json.loads(body)
    assert code == 200 and a["recording"] == {"status": "recording", "running_cameras": 2, "enabled_cameras": 2}
    assert a["database"]["status"] == "connected" and "memory_mb" in a["system"] and "threads" in a["system"]
    assert cs.control("outage cam1 8") == "ok"
    wait_for(lambda: json.loads(get(port, "/health")[1])["status"] == "degraded", 6, "degraded")
    code, body = get(port, "/health")
    assert code == 200 and json.loads(body)["cameras"]["cam1"] != "recording"
    wait_for(lambda: json.loads(get(port, "/health")[1])["status"] == "healthy", 20, "healthy again")
    metrics = get(port, "/metrics")[1]
    for name in ("mwr_camera_frames_total{camera=\"cam1\"}", "mwr_camera_reconnects_total",
                 "mwr_gap_seconds_total{camera=\"cam1\",reason=\"camera_down\"}", "mwr_process_resident_memory_bytes",
                 "mwr_http_requests_total{code=\"200\"}", "mwr_disk_free_bytes",
                 "mwr_camera_dropped_packets_total{camera=\"cam1\",reason=\"before_keyframe\"}",
                 "mwr_camera_non_picture_packets_total{camera=\"cam1\"}"):
        assert name in metrics, name
    gap_s = [l for l in metrics.splitlines() if l.startswith('mwr_gap_seconds_total{camera="cam1",reason="camera_down"}')]
    assert float(gap_s[0].split()[-1]) > 4


def test_api_answers_from_the_index_and_refuses_bad_requests(procs, camsim, tmp_path):
    cs, cfg, port = healthy_worker(procs, camsim, tmp_path, 1)
    wait_for(lambda: len(json.loads(get(port, "/api/segments?camera=cam1")[1])) >= 2, 20, "two segments")
    segs = json.loads(get(port, "/api/segments?camera=cam1&limit=1")[1])
    assert len(segs) == 1 and segs[0]["camera_id"] == "cam1" and segs[0]["status"] in ("complete", "recording")
    assert json.loads(get(port, "/api/segments?camera=cam1&limit=1&offset=1")[1])[0]["id"] != segs[0]["id"]
    t = segs[0]["start_us"] / 1e6
    assert json.loads(get(port, f"/api/segments?camera=cam1&to={t}")[1]) == []
    assert json.loads(get(port, "/api/gaps")[1]) == []
    cams = json.loads(get(port, "/api/cameras")[1])
    assert cams[0]["id"] == "cam1" and cams[0]["state"] == "recording"
    assert get(port, "/api/segments")[0] == 400                     # camera required
    assert get(port, "/api/segments?camera=cam1&from=yesterday")[0] == 400
    assert get(port, "/api/segments?camera=cam1&limit=100000")[0] == 400
    assert get(port, "/nope")[0] == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/health", method="DELETE")
    try:
        urllib.request.urlopen(req, timeout=5)
        assert False, "DELETE accepted"
    except urllib.error.HTTPError as e:
        assert e.code == 405
    # malformed and oversized requests: an error or a closed connection, never a crash
    for raw in (b"GARBAGE\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100000 + b"\r\n\r\n",
                b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            try:
                s.sendall(raw)
                reply = s.recv(100)
            except (ConnectionError, socket.timeout):
                reply = b""
            assert reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply
    assert get(port, "/health")[0] == 200
    # and not a frame lost meanwhile
    w = procs.started[-1]
    os.kill(w.pid, signal.SIGTERM)
    assert w.wait(timeout=10) == 0
    from conftest import framecheck
    from test_worker_records import segments
    rep, _ = framecheck([s["path"] for s in segments(cfg, "cam1")], "--camera", "cam1", expect_rc=0)
    assert rep["missing"] == 0 and rep["frames"] > 2 * FPS


def notify_socket(tmp_path):
    path = os.path.join(tmp_path, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.5)
    return s, path


def messages(sock, seconds):
    got, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            got.append((time.monotonic(), sock.recv(4096).decode()))
        except socket.timeout:
            pass
    return got


def test_notify_ready_watchdog_stopping_in_order(procs, camsim, tmp_path):
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    sock, path = notify_socket(str(tmp_path))
    w = start(procs, cfg_path, free_port(), env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    got = messages(sock, 8)
    texts = [m for _, m in got]
    ready = [i for i, m in enumerate(texts) if "READY=1" in m]
    assert ready, texts
    assert "STATUS=healthy: recording 2/2 cameras" in texts[ready[0]]
    pings = [t for t, m in got if "WATCHDOG=1" in m]
    assert len(pings) >= 8  # every 0.5 s
    os.kill(w.pid, signal.SIGTERM)
    tail = [m for _, m in messages(sock, 2)]
    assert any("STOPPING=1" in m for m in tail), tail
    assert w.wait(timeout=10) == 0


def test_watchdog_stops_when_a_recorder_is_stuck(procs, camsim, tmp_path):
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    sock, path = notify_socket(str(tmp_path))
    start(procs, cfg_path, free_port(),
          env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "MWR_TEST_STALL_CAMERA": "cam2"})
    # cam2's loop hangs after 100 frames (4 s of recording): pings must come
    # first, then stop for good (3 s of silence = six missed half-periods)
    deadline, pings = time.monotonic() + 40, []
    while time.monotonic() < deadline:
        try:
            if "WATCHDOG=1" in sock.recv(4096).decode():
                pings.append(time.monotonic())
        except socket.timeout:
            pass
        if pings and time.monotonic() - pings[-1] >= 3:
            break
    assert len(pings) >= 2, "no pings before the hang"
    assert time.monotonic() - pings[-1] >= 3, "pings never stopped"


def test_unwritable_storage_or_broken_db_is_503_within_2_s(procs, camsim, tmp_path, tmpfs):
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    cfg["storage_dir"] = os.path.join(tmpfs, "rec")
    cfg["disk"] = {"min_free_mb": 0}  # the default 512 MB floor is above this tmpfs
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    port = free_port()
    w = start(procs, cfg_path, port)
    wait_for(lambda: get(port, "/health")[0] == 200, 20, "healthy")
    # storage that takes no more writes (remount,ro is refused while files are
    # open for writing, so the tmpfs is filled instead)
    from test_worker_disk import fill
    fill(os.path.join(tmpfs, "filler"))
    t0 = time.monotonic()
    wait_for(lambda: get(port, "/health")[0] == 503, 2.5, "503 after storage stopped taking writes")
    assert time.monotonic() - t0 <= 2.0
    assert w.poll() is None
    os.kill(w.pid, signal.SIGTERM)
    assert w.wait(timeout=10) == 0
    # a database file that turns to garbage under a running worker
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    port = free_port()
    start(procs, cfg_path, port, name="worker2")
    wait_for(lambda: get(port, "/health")[0] == 200, 20, "healthy")
    with open(cfg["db_path"], "r+b") as f:
        f.write(b"this is not a database" * 5)
    t0 = time.monotonic()
    wait_for(lambda: get(port, "/health")[0] == 503, 2.5, "503 after the DB broke")
    assert time.monotonic() - t0 <= 2.0


def test_slow_clients_are_cut_off_and_do_not_block_others(procs, camsim, tmp_path):
    cs, cfg, port = healthy_worker(procs, camsim, tmp_path, 1)
    slow = []
    for _ in range(20):  # slowloris: open, send half a request, then nothing
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    t0 = time.monotonic()
    assert get(port, "/health")[0] == 200  # others are still served
    closed = 0
    for s in slow:
        try:
            closed += s.recv(100) == b""
        except (ConnectionError, socket.timeout):
            closed += 1
        s.close()
    took = time.monotonic() - t0
    assert closed == len(slow) and took < 15, (closed, took)  # cut after the 10 s idle timeout
    assert get(port, "/health")[0] == 200


def test_camera_credentials_are_never_logged_or_served(procs, tmp_path):
    """A camera URL with a password: not in the log (connect errors
    included), not in /api/cameras, not in the DB."""
    import sqlite3
    port = free_port()
    cfg = {"storage_dir": str(tmp_path / "rec"), "db_path": str(tmp_path / "mwr.db"), "segment_seconds": 4,
           "cameras": [{"id": "cam1", "url": f"rtsp://admin:s3cr3tPW@127.0.0.1:{free_port()}/stream"}],
           "disk": {"min_free_mb": 0}}
    path = tmp_path / "mwr.json"
    path.write_text(json.dumps(cfg))
    w = procs.start("worker", [WORKER, "--config", str(path), "--instance-id", "a", "--port", str(port)])
    time.sleep(4)  # a few failed connects
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=5).read().decode()
    procs.stop(w)
    log = open(w.err_path).read()
    assert "connect" in log.lower() or "camera cam1" in log, log[-2000:]
    assert "s3cr3tPW" not in log, log[-2000:]
    assert "s3cr3tPW" not in body and "cam1" in body, body
    con = sqlite3.connect(cfg["db_path"])
    dump = "\n".join(con.iterdump())
    con.close()
    assert "s3cr3tPW" not in dump


def post(port, path, headers):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_an_export_post_from_another_site_is_refused(procs, camsim, tmp_path):
    """Regression: a page of any site could make a browser that holds the
    user's password POST an export (a form needs no preflight): it ran.
    Refused by Origin or Sec-Fetch-Site; the UI's own POST and curl's pass."""
    cs, cfg, port = healthy_worker(procs, camsim, tmp_path, 1)
    wait_for(lambda: len(json.loads(get(port, "/api/segments?camera=cam1")[1])) >= 1, 20, "a segment")
    t = time.time()
    path = f"/api/cameras/cam1/exports?from={t - 3:.0f}&to={t:.0f}"
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": f"http://127.0.0.1:{port + 1}"}, {"Sec-Fetch-Site": "cross-site"}):
        code, body = post(port, path, headers)
        assert code == 403 and "cross-site request refused" in body, (headers, code, body)
    assert get(port, "/api/cameras/cam1/exports/1")[0] == 404  # none started
    # the page's own (same origin) and one without either header (curl) pass the check
    code, body = post(port, "/api/cameras/cam1/exports?from=yesterday&to=now",
                      {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"})
    assert code == 400, (code, body)
    code, body = post(port, path, {})
    assert code == 202, (code, body)
