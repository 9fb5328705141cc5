"""mwr-worker records camsim cameras into fragmented-MP4 segments indexed in
SQLite: every frame exactly once, graceful stop within a second, crash repair,
outages as gap rows.  Judged by the frame judge on the files themselves."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from conftest import BUILD, framecheck, free_port, wait_for

FPS = 25
WORKER = os.path.join(BUILD, "bin", "mwr-worker")


def write_config(tmp, cs, cameras, segment_seconds=4, **extra):
    cfg = {
        "storage_dir": os.path.join(tmp, "rec"),
        "db_path": os.path.join(tmp, "mwr.db"),
        "segment_seconds": segment_seconds,
        "cameras": [{"id": f"cam{i}", "url": cs.url(f"cam{i}"), "enabled": True}
                    for i in range(1, cameras + 1)],
    }
    cfg.update(extra)
    path = os.path.join(tmp, "mwr.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path, cfg


def start_worker(procs, cfg_path, instance="a", name=None):
    return procs.start(name or f"worker-{instance}",
                       [WORKER, "--config", cfg_path, "--instance-id", instance, "--port", str(free_port())])


def rows(cfg, sql, *args):
    con = sqlite3.connect(cfg["db_path"], timeout=10)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def segments(cfg, camera, instance=None):
    q = "SELECT * FROM video_segments WHERE camera_id = ?"
    args = [camera]
    if instance:
        q += " AND instance_id = ?"
        args.append(instance)
    return rows(cfg, q + " ORDER BY start_us, id", *args)


def try_segments(cfg, camera, instance=None):
    """segments(), or [] while the worker has not created the DB yet."""
    try:
        return segments(cfg, camera, instance)
    except sqlite3.Error:
        return []


def recording_frames(cfg, n):
    """True once every camera has at least n frames indexed."""
    def check():
        try:
            got = rows(cfg, "SELECT camera_id, SUM(frames) AS f FROM video_segments GROUP BY camera_id")
        except sqlite3.Error:
            return False
        return len(got) == len(cfg["cameras"]) and all(r["f"] >= n for r in got)
    return check


def sigterm_and_time(p, timeout=30):
    t0 = time.monotonic()
    os.kill(p.pid, signal.SIGTERM)
    rc = p.wait(timeout=timeout)
    return rc, time.monotonic() - t0


def test_cameras_recorded_frame_exact_and_stopped_within_a_second(procs, camsim, tmp_path):
    cams = 8
    cs = camsim(cameras=cams, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, cams)
    w = start_worker(procs, cfg_path)
    wait_for(recording_frames(cfg, 2 * FPS), 30, "all cameras recording")
    # 30 s (8 cameras: 7 segments each, every cut checked), stopped at a
    # random moment within the last second; soak-length runs: make chaos
    time.sleep(30 + random.random())
    rc, took = sigterm_and_time(w)
    assert rc == 0, open(w.err_path).read()[-3000:]
    assert took < 1.0, f"graceful stop took {took:.2f} s"
    for i in range(1, cams + 1):
        segs = segments(cfg, f"cam{i}")
        assert len(segs) >= 7
        assert all(s["status"] == "complete" for s in segs), segs
        assert all(os.path.exists(s["path"]) for s in segs)
        rep, _ = framecheck([s["path"] for s in segs], "--camera", f"cam{i}", expect_rc=0)
        assert rep["frames"] == sum(s["frames"] for s in segs)
        for s, f in zip(segs, rep["files"]):
            assert s["frames"] == f["frames"], (s, f)
            # the row's span is the file's frames, within one frame duration
            assert abs((s["end_us"] - s["start_us"]) - f["frames"] * 1e6 / FPS) <= 1e6 / FPS, (s, f)
        for a, b in zip(segs, segs[1:]):  # contiguous: one segment ends where the next starts
            assert abs(b["start_us"] - a["end_us"]) <= 1000, (a, b)
    # every file plays with ffprobe
    for i in range(1, cams + 1):
        for s in segments(cfg, f"cam{i}"):
            r = subprocess.run(["ffprobe", "-v", "error", "-i", s["path"]], capture_output=True, timeout=30)
            assert r.returncode == 0 and not r.stderr, (s["path"], r.stderr)


def test_a_session_s_first_keyframe_is_recorded(procs, camsim, tmp_path):
    """libavformat gives a session's first access unit no time (its parser
    learns where a unit ends from the next one).  Regression: that frame --
    the keyframe a camera starts a session with -- was dropped (counted as a
    timestamp anomaly), and the recording began at the next keyframe: with
    one keyframe per GOP (most cameras), a GOP late at every start,
    reconnect and handover.  camsim starts a stream with two keyframes (one
    for the SDP, one asked by PLAY), so the old code lost one frame here."""
    cs = camsim(cameras=1, gop=4 * FPS, keyframe_on_play=True)
    cfg_path, cfg = write_config(str(tmp_path), cs, 1)
    port = free_port()
    w = procs.start("worker-a", [WORKER, "--config", cfg_path, "--instance-id", "a", "--port", str(port)])
    wait_for(recording_frames(cfg, 1), 30, "recording")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    rc, _ = sigterm_and_time(w)
    assert rc == 0
    # the only anomaly allowed is a first frame whose guessed time was
    # repaired, each logged (seen under load: libavformat stamped it 0.24 s
    # after the next frame); the old worker counted the dropped one, unlogged
    repaired = open(w.err_path).read().count("its first frame was stamped")
    assert f'mwr_camera_timestamp_anomalies_total{{camera="cam1"}} {repaired}\n' in metrics, \
        ([l for l in metrics.splitlines() if "anomalies" in l], repaired)
    # the first frame camsim pushed for the media, or (pushed before PLAY
    # and not sent on) the one after it
    first_sent = cs.status()["cameras"][0]["media_first"]
    rep, _ = framecheck([s["path"] for s in segments(cfg, "cam1")], "--camera", "cam1", expect_rc=0)
    assert rep["first"] - first_sent in (0, 1), (rep["first"], first_sent)


def test_sigkill_leaves_a_repaired_partial_segment(procs, camsim, tmp_path):
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2, segment_seconds=30)
    w = start_worker(procs, cfg_path)
    wait_for(recording_frames(cfg, 3 * FPS), 30, "recording")
    time.sleep(2.5)
    os.kill(w.pid, signal.SIGKILL)
    w.wait(timeout=10)
    t_kill = time.monotonic()
    w2 = start_worker(procs, cfg_path, name="worker-a2")
    wait_for(lambda: len(segments(cfg, "cam1")) >= 2 and segments(cfg, "cam1")[-1]["frames"] > FPS, 30,
             "second run recording")
    restart_s = time.monotonic() - t_kill
    rc, _ = sigterm_and_time(w2)
    assert rc == 0
    for cam in ("cam1", "cam2"):
        segs = segments(cfg, cam)
        assert segs[0]["status"] == "partial", segs[0]
        assert segs[-1]["status"] == "complete"
        rep, _ = framecheck([s["path"] for s in segs], "--camera", cam)
        assert rep["duplicated"] == 0 and rep["unreadable"] == 0
        assert rep["frames"] == sum(s["frames"] for s in segs)
        # lost: at most one fragment (1 s) plus the restart time
        assert rep["missing"] <= FPS * (1 + restart_s) + 2, (rep["missing_ranges"], restart_s)


def test_camera_outage_becomes_one_gap_row(procs, camsim, tmp_path):
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    w = start_worker(procs, cfg_path)
    wait_for(recording_frames(cfg, 2 * FPS), 30, "recording")
    assert cs.control("outage cam1 5") == "ok"
    time.sleep(12)
    rc, _ = sigterm_and_time(w)
    assert rc == 0
    gaps = rows(cfg, "SELECT * FROM gaps WHERE camera_id = 'cam1'")
    assert len(gaps) == 1 and gaps[0]["reason"] == "camera_down", gaps
    assert 4.5e6 <= gaps[0]["end_us"] - gaps[0]["start_us"] <= 6.5e6, gaps
    assert rows(cfg, "SELECT * FROM gaps WHERE camera_id = 'cam2'") == []
    rep, _ = framecheck([s["path"] for s in segments(cfg, "cam2")], expect_rc=0)
    rep1, _ = framecheck([s["path"] for s in segments(cfg, "cam1")])
    assert len(rep1["missing_ranges"]) == 1 and rep1["duplicated"] == 0


def test_bad_config_is_exit_2_naming_the_key(tmp_path):
    bad = os.path.join(tmp_path, "bad.json")
    with open(bad, "w") as f:
        f.write('{"storage_dir": "/x", "db_path": "/y", "cameras": [], "segmentseconds": 3}')
    r = subprocess.run([WORKER, "--config", bad, "--instance-id", "a", "--port", "1"],
                       capture_output=True, timeout=10)
    assert r.returncode == 2 and b"segmentseconds" in r.stderr
    r = subprocess.run([WORKER, "--config", bad, "--check-config"], capture_output=True, timeout=10)
    assert r.returncode == 2
    r = subprocess.run([WORKER, "--version"], capture_output=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith(b"mwr-worker ")


def test_two_instances_share_cameras_storage_and_db(procs, camsim, tmp_path):
    cs = camsim(cameras=4, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 4)
    a = start_worker(procs, cfg_path, "a")
    b = start_worker(procs, cfg_path, "b")
    wait_for(lambda: all(len(try_segments(cfg, "cam1", i)) >= 1 for i in ("a", "b")), 30, "both recording")
    time.sleep(30)
    for p in (a, b):
        rc, _ = sigterm_and_time(p)
        assert rc == 0
    for p in (a, b):
        err = open(p.err_path).read()
        assert "<3>" not in err, err[-3000:]  # no error lines at all
    for i in range(1, 5):
        for inst in ("a", "b"):
            segs = segments(cfg, f"cam{i}", inst)
            assert len(segs) >= 7 and all(s["status"] == "complete" for s in segs)
            rep, rc = framecheck([s["path"] for s in segs], "--camera", f"cam{i}")
            # the worker's own account of the session's start, should it ever differ
            assert rc == 0, ({k: rep[k] for k in ("first", "last", "missing_ranges", "out_of_order")},
                             [(f["first"], f["last"]) for f in rep["files"]][:4],
                             open((a if inst == "a" else b).err_path).read()[-3000:])
            assert rep["frames"] == sum(s["frames"] for s in segs)
    # both copies of a frame carry the same camera time (the RTCP timeline):
    # segments start at keyframes, one a second, so starts agree modulo 1 s.
    # A session's first segment starts at the keyframe camsim forces for a
    # new stream: not on that grid.  Regression: 15-25 ms apart before the
    # time came from the packets' RTCP stamps; now to the microsecond.
    a1, b1 = segments(cfg, "cam1", "a")[1:], segments(cfg, "cam1", "b")[1:]
    for sb in b1:
        d = (sb["start_us"] - a1[0]["start_us"]) % 1_000_000
        assert min(d, 1_000_000 - d) <= 2, (sb["start_us"], a1[0]["start_us"])


def test_sighup_reload_adds_and_removes_cameras_without_a_gap(procs, camsim, tmp_path):
    cs = camsim(cameras=3, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    w = start_worker(procs, cfg_path)
    wait_for(recording_frames(cfg, 2 * FPS), 30, "recording")
    cfg2 = dict(cfg)
    cfg2["cameras"] = [c for c in cfg["cameras"] if c["id"] != "cam2"] + \
        [{"id": "cam3", "url": cs.url("cam3"), "enabled": True}]
    with open(cfg_path, "w") as f:
        json.dump(cfg2, f)
    os.kill(w.pid, signal.SIGHUP)
    wait_for(lambda: sum(s["frames"] for s in try_segments(cfg, "cam3")) > 2 * FPS, 30, "cam3 started")
    t_reload = time.time()
    time.sleep(3)
    rc, _ = sigterm_and_time(w)
    assert rc == 0
    cam1 = segments(cfg, "cam1")
    rep, _ = framecheck([s["path"] for s in cam1], expect_rc=0)  # untouched: no gap at the reload
    assert all(s["status"] == "complete" for s in cam1)
    cam2 = segments(cfg, "cam2")
    assert cam2 and all(s["status"] == "complete" for s in cam2)
    assert max(s["end_us"] for s in cam2) < t_reload * 1e6  # stopped at the reload
    assert "reloaded" in open(w.err_path).read()


def test_segment_file_without_a_row_is_indexed_at_start(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 1)
    w = start_worker(procs, cfg_path)
    wait_for(lambda: len(try_segments(cfg, "cam1")) >= 3, 30, "three segments")
    rc, _ = sigterm_and_time(w)
    assert rc == 0
    lost = segments(cfg, "cam1")[1]
    con = sqlite3.connect(cfg["db_path"])
    con.execute("DELETE FROM segment_frames WHERE segment_id = ?", (lost["id"],))
    con.execute("DELETE FROM video_segments WHERE id = ?", (lost["id"],))
    con.commit()
    con.close()
    w2 = start_worker(procs, cfg_path, name="worker-a2")
    wait_for(lambda: any(s["path"] == lost["path"] for s in try_segments(cfg, "cam1")), 15, "orphan indexed")
    rc, _ = sigterm_and_time(w2)
    assert rc == 0
    back = [s for s in segments(cfg, "cam1") if s["path"] == lost["path"]][0]
    assert back["status"] == "partial" and back["frames"] == lost["frames"]
    assert back["start_us"] // 1000 == lost["start_us"] // 1000
    assert abs(back["end_us"] - lost["end_us"]) <= 40_000
    assert "had no row" in open(w2.err_path).read()
