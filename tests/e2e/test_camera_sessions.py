"""Camera sessions as real cameras run them: a refused request is named by
its RTSP status and reason, logged once while it lasts, and shown on
/health and /api/cameras; a refused login backs off instead of knocking
every few seconds; credentials are shown nowhere."""
import json
import os
import urllib.error
import urllib.request

from conftest import free_port, wait_for
from test_worker_records import WORKER, write_config


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
