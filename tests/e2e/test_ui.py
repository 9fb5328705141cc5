"""The web UI (www/, served by the worker under /ui/) in Debian's headless
Chromium, against real workers recording camsim: the cameras page, the
timeline with a camsim outage shaded and its reason, playback from a click
through the HLS playlist (hls.js), and through haproxy across a deploy
(both copies and the deploy marker drawn, currentTime advancing without a
stall longer than a segment), and the deploys page.  Screenshots of each
page go to tmp (and to $MWR_UI_SCREENSHOTS when set: docs/ui/)."""
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from browser import CHROMIUM, Browser
from conftest import framecheck, wait_for
from test_deploy import MWR, deploy, setup_all
from test_worker_records import FPS, recording_frames, rows, start_worker, write_config


@pytest.fixture
def browser(tmp_path):
    assert os.access(CHROMIUM, os.X_OK), "chromium is not installed (scripts/install-deps.sh installs it)"
    b = Browser(str(tmp_path))
    yield b
    b.close()


def shot(b, tmp_path, name):
    path = os.path.join(tmp_path, name)
    assert b.screenshot(path) > 10000
    out = os.environ.get("MWR_UI_SCREENSHOTS")
    if out:
        shutil.copy(path, os.path.join(out, name))


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def timeline_x(b, us):
    """Client coordinates of time us on the drawn timeline (its first row)."""
    return b.js(f"""(() => {{ const r = document.getElementById('timeline').getBoundingClientRect(),
                         s = mwr.state; return [r.left + r.width * ({us} - s.from) / (s.to - s.from), r.top + 25]; }})()""")


def play_and_watch(b, until_s, rate=1.0, timeout=60):
    """Samples currentTime until it passes until_s: the longest wall time it did not move."""
    b.wait_js("document.getElementById('player').readyState >= 2", 20, "the player has data")
    b.js(f"document.getElementById('player').playbackRate = {rate}")
    last_t, last_move, stall, end = -1.0, time.monotonic(), 0.0, time.monotonic() + timeout
    while time.monotonic() < end:
        t = b.js("document.getElementById('player').currentTime")
        now = time.monotonic()
        if t > last_t + 0.01:
            stall = max(stall, now - last_move)
            last_t, last_move = t, now
        if t >= until_s:
            return t, max(stall, now - last_move)
        time.sleep(0.1)
    raise AssertionError(f"playback reached {last_t:.1f} s of {until_s:.1f}; console {b.console[-10:]}")


def test_cameras_and_timeline_show_an_outage_with_its_reason_and_play(procs, camsim, tmp_path, browser):
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    w = start_worker(procs, cfg_path)
    port = int(w.args[w.args.index("--port") + 1])
    wait_for(recording_frames(cfg, 2 * FPS), 30, "recording")
    t0 = time.time()
    time.sleep(3)
    assert cs.control("outage cam1 4") == "ok"
    wait_for(lambda: rows(cfg, "SELECT * FROM gaps WHERE camera_id = 'cam1'"), 30, "the outage's gap row")
    wait_for(recording_frames(cfg, 14 * FPS), 30, "cam1 back")
    t1 = time.time()
    base = f"http://127.0.0.1:{port}"

    cov = get_json(f"{base}/api/cameras/cam1/coverage?from={t0 - 2}&to={t1 + 1}")
    assert len(cov["copies"]) == 1 and cov["copies"][0]["instance_id"] == "a", cov
    assert len(cov["gaps"]) == 1 and cov["gaps"][0]["reason"] == "camera_down", cov["gaps"]
    assert 3.0 <= cov["gaps"][0]["seconds"] <= 7.0, cov["gaps"]

    browser.goto(f"{base}/ui/")
    browser.wait_js("document.querySelectorAll('#cameras tbody tr').length == 2 && "
                    "[...document.querySelectorAll('#cameras tbody td.recording')].length == 2", 15,
                    "two cameras recording on the cameras page")
    shot(browser, tmp_path, "cameras.png")

    browser.goto(f"{base}/ui/timeline.html?camera=cam1&from={t0 - 2}&to={t1 + 1}")
    n = browser.wait_js("document.querySelectorAll('#timeline rect.gap').length", 15, "the gap drawn")
    assert n == 1
    assert browser.js("document.querySelector('#timeline rect.gap').getAttribute('data-reason')") == "camera_down"
    assert "camera_down" in browser.js("document.querySelector('#timeline rect.gap title').textContent")
    assert browser.js("document.querySelectorAll('#timeline rect.copy[data-instance=a]').length") == 2
    shot(browser, tmp_path, "timeline.png")

    x, y = timeline_x(browser, (t0 + 0.5) * 1e6)
    browser.click(x, y)
    t, stall = play_and_watch(browser, 3.0)
    assert stall < cfg["segment_seconds"], stall
    frm = browser.js("mwr.state.playFrom") / 1e6
    assert abs(frm - (t0 + 0.5)) < 0.5, (frm, t0)
    # a drag selects a range across the outage; the download is the export of it, frame-exact
    x1, _ = timeline_x(browser, (t1 - 1) * 1e6)
    browser.drag(x, x1, y)
    browser.js("document.getElementById('download').click()")
    job = browser.wait_js("mwr.state.export", 60, "the export done")
    assert job["state"] == "done" and len(job["parts"]) == 1, job
    href = browser.js("document.querySelector('a.export-part').href")
    clip = os.path.join(tmp_path, "clip.mp4")
    with urllib.request.urlopen(href, timeout=30) as r, open(clip, "wb") as f:
        assert r.headers["Content-Disposition"].startswith("attachment")
        f.write(r.read())
    rep, _ = framecheck([clip], "--camera", "cam1")
    assert rep["duplicated"] == 0 and len(rep["missing_ranges"]) == 1, rep  # the outage, and nothing else
    assert rep["frames"] == job["parts"][0]["frames"], (rep, job)
    # the very export `mwr export` makes of that range
    cli = os.path.join(tmp_path, "cli.mp4")
    r = subprocess.run([MWR, "export", "--config", cfg_path, "--camera", "cam1", "--from", str(job["from_us"] / 1e6),
                        "--to", str(job["to_us"] / 1e6), "-o", cli, "--quiet"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rep_cli, _ = framecheck([cli], "--camera", "cam1")
    assert (rep_cli["first"], rep_cli["last"], rep_cli["frames"]) == (rep["first"], rep["last"], rep["frames"])
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    assert 'mwr_http_requests_total{code="202"} 1\n' in metrics, metrics[-2000:]
    assert browser.js("document.getElementById('error').textContent") == ""


def test_playback_through_haproxy_across_a_deploy_and_the_deploys_page(procs, camsim, tmp_path, browser):
    cs, cfg_path, cfg, sup, a = setup_all(procs, camsim, tmp_path)
    t0 = time.time()
    time.sleep(4)
    rc, out = deploy(cfg_path, "--overlap", "5")
    assert rc == 0, out
    time.sleep(4)
    t1 = time.time()
    base = f"http://127.0.0.1:{cfg['haproxy']['frontend_port']}"
    browser.goto(f"{base}/ui/deploys.html")
    browser.wait_js("document.querySelectorAll('#deploys tbody tr[data-result=ok]').length == 1", 15,
                    "the deploy listed")
    shot(browser, tmp_path, "deploys.png")

    browser.goto(f"{base}/ui/timeline.html?camera=cam1&from={t0 - 1}&to={t1 + 1}")
    browser.wait_js("document.querySelectorAll('#timeline line.deploy').length == 1 && "
                    "document.querySelectorAll('#timeline rect.copy[data-instance=b]').length >= 1 && "
                    "document.querySelectorAll('#timeline rect.copy[data-instance=a]').length >= 1", 15,
                    "both copies and the deploy marker")
    assert browser.js("document.querySelectorAll('#timeline rect.gap').length") == 0
    shot(browser, tmp_path, "timeline-deploy.png")
    x, y = timeline_x(browser, (t0 + 1) * 1e6)
    browser.click(x, y)
    # from before the deploy to after it: the handover is inside
    t, stall = play_and_watch(browser, t1 - t0 - 3, rate=4.0)
    assert stall < cfg["segment_seconds"], stall
