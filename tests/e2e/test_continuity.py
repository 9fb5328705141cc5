"""Continuity across instances: two workers record the same cameras (a deploy's
overlap, a crash and restart, a camera outage); `mwr export`, `mwr gaps`,
`mwr dedup` and the HLS playlist turn the copies into one recording.  Judged
frame by frame by the frame judge on what they produce."""
import json
import os
import signal
import subprocess
import time
import urllib.request

from conftest import BUILD, framecheck, free_port, wait_for
from test_worker_records import FPS, WORKER, recording_frames, rows, segments, sigterm_and_time, write_config

MWR = os.path.join(BUILD, "bin", "mwr")
FRAME_US = 1_000_000 // FPS


def mwr(*args, timeout=120, expect_rc=0):
    r = subprocess.run([MWR, *args], capture_output=True, timeout=timeout)
    assert r.returncode == expect_rc, (args, r.returncode, r.stderr.decode()[-3000:])
    return r


def window(cfg, camera):
    """[first start, last end] of every copy of camera, as mwr's T arguments."""
    segs = segments(cfg, camera)
    return str(min(s["start_us"] for s in segs) / 1e6 - 1), str(max(s["end_us"] for s in segs) / 1e6 + 1)


def export_and_judge(tmp, cfg_path, cfg, camera, expect_rc=0):
    frm, to = window(cfg, camera)
    out = os.path.join(tmp, f"{camera}.mp4")
    r = mwr("export", "--config", cfg_path, "--camera", camera, "--from", frm, "--to", to, "-o", out)
    assert b"wrote" in r.stderr, r.stderr
    rep, _ = framecheck([out], "--camera", camera, expect_rc=expect_rc)
    return rep


def first_frames(cfg, camera, instance):
    """Camera frame numbers of the first and last frame an instance recorded."""
    segs = segments(cfg, camera, instance)
    rep, _ = framecheck([s["path"] for s in segs], "--camera", camera)
    return rep["first"], rep["last"]


def start(procs, cfg_path, instance, port=None):
    port = port or free_port()
    p = procs.start(f"worker-{instance}", [WORKER, "--config", cfg_path, "--instance-id", instance,
                                          "--port", str(port)])
    return p, port


def indexed_frames(cfg, instance, n):
    def check():
        try:
            got = rows(cfg, "SELECT camera_id, SUM(frames) AS f FROM video_segments WHERE instance_id = ? "
                       "GROUP BY camera_id", instance)
        except Exception:
            return False
        return len(got) == len(cfg["cameras"]) and all(r["f"] >= n for r in got)
    return check


def test_handover_export_is_frame_exact_and_duplicates_are_marked(procs, camsim, tmp_path):
    """B starts 20 s after A; A stops 30 s later: every camera's export of
    the whole window has every frame once; dedup marks the second copy."""
    cams = 4
    cs = camsim(cameras=cams, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, cams)
    a, _ = start(procs, cfg_path, "a")
    wait_for(recording_frames(cfg, FPS), 30, "A recording")
    time.sleep(20)
    b, b_port = start(procs, cfg_path, "b")
    wait_for(indexed_frames(cfg, "b", FPS), 30, "B recording")
    time.sleep(29)
    rc, _ = sigterm_and_time(a)
    assert rc == 0
    time.sleep(6)
    # the playlist of the handover window, read by ffmpeg, while B records on
    frm = min(s["start_us"] for s in segments(cfg, "cam1", "b")) / 1e6 - 5
    to = max(s["end_us"] for s in segments(cfg, "cam1", "a")) / 1e6 + 3
    url = f"http://127.0.0.1:{b_port}/api/cameras/cam1/playlist.m3u8?from={frm}&to={to}"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    assert text.startswith("#EXTM3U") and "#EXT-X-PROGRAM-DATE-TIME:" in text and "#EXT-X-ENDLIST" in text
    hls_out = os.path.join(tmp_path, "hls.mkv")
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-c", "copy", "-y", hls_out],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    rep_hls, _ = framecheck([hls_out], "--camera", "cam1", expect_rc=0)
    assert rep_hls["frames"] >= 9 * FPS, rep_hls
    rc, _ = sigterm_and_time(b)
    assert rc == 0

    for i in range(1, cams + 1):
        cam = f"cam{i}"
        a_first, a_last = first_frames(cfg, cam, "a")
        b_first, b_last = first_frames(cfg, cam, "b")
        assert b_first < a_last  # the copies really overlap
        rep = export_and_judge(str(tmp_path), cfg_path, cfg, cam)
        assert rep["missing"] == 0 and rep["duplicated"] == 0, rep
        assert rep["first"] == a_first and rep["last"] == b_last, (rep, a_first, b_last)
        # the export is continuous in time too
        v = json.loads(mwr("verify", "--json", os.path.join(tmp_path, f"{cam}.mp4")).stdout)
        assert v["ok"] and v["files"][0]["gaps"] == [], v
    frm, to = window(cfg, "cam1")
    out = json.loads(mwr("dedup", "--config", cfg_path, "--from", frm, "--to", to, "--json").stdout)
    assert len(out["cameras"]) == cams
    for c in out["cameras"]:
        assert c["gaps"] == 0 and c["duplicate_frames"] > 20 * FPS, c
        assert c["duplicate"] + c["partial"] >= 1, c
    marked = rows(cfg, "SELECT overlap_status, instance_id, COUNT(*) AS n FROM video_segments "
                  "GROUP BY overlap_status, instance_id")
    assert any(m["overlap_status"] in ("duplicate", "partial") for m in marked), marked
    # idempotent: a second run changes nothing
    again = json.loads(mwr("dedup", "--config", cfg_path, "--from", frm, "--to", to, "--json").stdout)
    assert all(c["segments_changed"] == 0 for c in again["cameras"]), again
    gaps = json.loads(mwr("gaps", "--config", cfg_path, "--from", frm, "--to", to, "--json").stdout)
    assert gaps["count"] == 0, gaps


def test_hole_in_one_copy_is_filled_from_the_other(procs, camsim, tmp_path):
    """B is killed inside the overlap and restarted 2 s later: A's copy fills
    the hole, the export has every frame once."""
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    a, _ = start(procs, cfg_path, "a")
    wait_for(recording_frames(cfg, FPS), 30, "A recording")
    time.sleep(3)
    b, _ = start(procs, cfg_path, "b")
    wait_for(indexed_frames(cfg, "b", 2 * FPS), 30, "B recording")
    time.sleep(3)
    os.kill(b.pid, signal.SIGKILL)
    b.wait(timeout=10)
    time.sleep(2)
    b2, _ = start(procs, cfg_path, "b")
    time.sleep(8)
    rc, _ = sigterm_and_time(a)
    assert rc == 0
    time.sleep(5)
    rc, _ = sigterm_and_time(b2)
    assert rc == 0
    for cam in ("cam1", "cam2"):
        rep_b, _ = framecheck([s["path"] for s in segments(cfg, cam, "b")], "--camera", cam)
        assert rep_b["missing"] >= FPS, rep_b  # B's own copy really has a hole
        rep = export_and_judge(str(tmp_path), cfg_path, cfg, cam)
        assert rep["missing"] == 0 and rep["duplicated"] == 0, rep


def test_outage_is_a_gap_in_export_gaps_and_playlist(procs, camsim, tmp_path):
    """A 5 s camera outage: the export keeps it as a hole at the right frame
    numbers, `mwr gaps` reports it within a frame with reason camera_down,
    and the playlist shows the same hole."""
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2)
    w, port = start(procs, cfg_path, "a")
    wait_for(recording_frames(cfg, 3 * FPS), 30, "recording")
    assert cs.control("outage cam1 5") == "ok"
    time.sleep(12)
    frm, to = window(cfg, "cam1")
    url = f"http://127.0.0.1:{port}/api/cameras/cam1/playlist.m3u8?from={frm}&to={to}"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    hls_out = os.path.join(tmp_path, "hls.mkv")
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-c", "copy", "-y", hls_out],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'mwr_gap_alerts_total{camera="cam1"} 1' in metrics, metrics
    assert 'mwr_gap_alerts_total{camera="cam2"} 0' in metrics, metrics
    rc, _ = sigterm_and_time(w)
    assert rc == 0
    assert "<1>camera cam1: ALERT footage gap of" in open(w.err_path).read()

    rep = export_and_judge(str(tmp_path), cfg_path, cfg, "cam1", expect_rc=1)
    assert rep["duplicated"] == 0 and len(rep["missing_ranges"]) == 1, rep
    lo, hi = rep["missing_ranges"][0][0], rep["missing_ranges"][0][1]
    rep_hls, _ = framecheck([hls_out], "--camera", "cam1")
    assert rep_hls["missing_ranges"] == rep["missing_ranges"] and rep_hls["duplicated"] == 0, rep_hls
    assert "#EXT-X-DISCONTINUITY" in text and "## gap" in text, text

    # The gap is bounded by the recorded times of frames lo - 1 and hi + 1.
    # Each side's frame times follow from a segment's start and first frame
    # number; the two sides are taken separately, because camsim's RTCP
    # mapping after an outage differs from the one before by up to ~0.75 s
    # (its reports restart with the new RTSP session).
    segs = segments(cfg, "cam1")
    firsts = [framecheck([s["path"]], "--camera", "cam1")[0]["first"] for s in segs]
    before = max(i for i, f in enumerate(firsts) if f < lo)
    after = min(i for i, f in enumerate(firsts) if f > hi)
    t_before = segs[before]["start_us"] - firsts[before] * FRAME_US
    t_after = segs[after]["start_us"] - firsts[after] * FRAME_US
    out = json.loads(mwr("gaps", "--config", cfg_path, "--camera", "cam1", "--from", frm, "--to", to,
                         "--json").stdout)
    assert out["count"] == 1, out
    g = out["gaps"][0]
    assert g["reason"] == "camera_down", g
    assert abs(g["start_us"] - (t_before + lo * FRAME_US)) <= FRAME_US, (g, lo)
    assert abs(g["end_us"] - (t_after + (hi + 1) * FRAME_US)) <= FRAME_US, (g, hi)
    assert abs(g["missing_frames"] - (hi - lo + 1)) <= 0.8 * FPS, (g, lo, hi)  # the clock step above
    # cam2 lost nothing
    frm2, to2 = window(cfg, "cam2")
    out2 = json.loads(mwr("gaps", "--config", cfg_path, "--camera", "cam2", "--from", frm2, "--to", to2,
                          "--json").stdout)
    assert out2["count"] == 0, out2
    # text form names the reason too
    txt = mwr("gaps", "--config", cfg_path, "--from", frm, "--to", to).stdout.decode()
    assert "camera_down" in txt and "1 gaps" in txt, txt


def test_mwr_bad_usage_is_exit_2(tmp_path):
    r = subprocess.run([MWR, "export", "--camera", "cam1"], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"required" in r.stderr
    r = subprocess.run([MWR, "gaps", "--config", "/nonexistent.json", "--from", "0", "--to", "10"],
                       capture_output=True, timeout=10)
    assert r.returncode == 2 and b"/nonexistent.json" in r.stderr
    r = subprocess.run([MWR, "timeline", "--config", "x", "--camera", "c", "--from", "yesterday", "--to", "1"],
                       capture_output=True, timeout=10)
    assert r.returncode == 2 and b"--from" in r.stderr
    r = subprocess.run([MWR, "verify", os.path.join(tmp_path, "missing.mp4")], capture_output=True, timeout=10)
    assert r.returncode == 1
    r = subprocess.run([MWR, "--version"], capture_output=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith(b"mwr ")


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def test_local_clock_step_renames_overwrites_and_reorders_nothing(procs, camsim, tmp_path):
    """The worker's wall clock (only its own: libfaketime) steps back an hour
    and forward again while it records: every segment keeps its own file,
    index order is frame order, and the export has every frame once."""
    import pytest
    if not os.path.exists(FAKETIME_LIB):
        pytest.skip("libfaketime not installed")
    cs = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 1)
    rc_file = os.path.join(tmp_path, "faketime.rc")
    with open(rc_file, "w") as f:
        f.write("+0\n")
    env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE=rc_file, FAKETIME_CACHE_DURATION="1",
               FAKETIME_DONT_FAKE_MONOTONIC="1")
    w = procs.start("worker", [WORKER, "--config", cfg_path, "--instance-id", "a", "--port", str(free_port())],
                    env=env)
    wait_for(recording_frames(cfg, 3 * FPS), 30, "recording")
    time.sleep(3)
    with open(rc_file, "w") as f:
        f.write("-3600\n")  # an hour back
    time.sleep(7)
    with open(rc_file, "w") as f:
        f.write("+0\n")  # and forward again
    time.sleep(6)
    rc, _ = sigterm_and_time(w)
    assert rc == 0, open(w.err_path).read()[-3000:]
    segs = segments(cfg, "cam1")
    # the step happened: rows written meanwhile carry a wall clock an hour
    # behind the camera's, and the offset is recorded per segment
    assert any(s["start_us"] - s["created_us"] > 3500e6 for s in segs), segs
    assert any(s["clock_offset_us"] > 3500e6 for s in segs), segs
    paths = [s["path"] for s in segs]
    assert len(set(paths)) == len(paths) and all(os.path.exists(p) for p in paths)
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(cfg["storage_dir"]) for f in fs if f.endswith(".mp4")]
    assert sorted(files) == sorted(paths)  # nothing overwritten, nothing unindexed
    rep, _ = framecheck(paths, "--camera", "cam1", expect_rc=0)  # index order is frame order
    assert rep["frames"] >= 14 * FPS
    frm, to = window(cfg, "cam1")
    out = export_and_judge(str(tmp_path), cfg_path, cfg, "cam1")
    assert out["missing"] == 0 and out["duplicated"] == 0
    gaps = json.loads(mwr("gaps", "--config", cfg_path, "--from", frm, "--to", to, "--json").stdout)
    assert gaps["count"] == 0, gaps


def test_dedup_delete_removes_only_segments_another_copy_holds(procs, camsim, tmp_path):
    """Two workers record the same cameras side by side for 24 s (a hot
    standby's two copies).  `mwr dedup --delete` deletes one copy's
    segments, rows and files, and the export is still every frame once; a
    second run deletes nothing; a copy whose file is not there keeps its
    row; the segments of a single copy are never touched."""
    cams = 2
    cs = camsim(cameras=cams, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, cams, segment_seconds=3)
    a, _ = start(procs, cfg_path, "a")
    wait_for(recording_frames(cfg, FPS), 30, "A recording")
    b, _ = start(procs, cfg_path, "b")
    wait_for(indexed_frames(cfg, "b", 24 * FPS), 60, "B recording 24 s")
    assert sigterm_and_time(b)[0] == 0
    assert sigterm_and_time(a)[0] == 0
    before = {c: segments(cfg, c) for c in ("cam1", "cam2")}
    frm, to = window(cfg, "cam1")
    # one file of what B and A both hold is away (the storage hiccuped)
    b_only_before = [s for s in before["cam2"] if s["instance_id"] == "b"]
    away = b_only_before[len(b_only_before) // 2]["path"]
    os.rename(away, away + ".away")

    # one deleter at a time: while another holds the lock, --delete waits (two that judged the same rows
    # at once could each keep a different copy and delete the other)
    import fcntl
    lock = open(cfg["db_path"] + ".dedup-lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    waiting = subprocess.Popen([MWR, "dedup", "--config", cfg_path, "--from", frm, "--to", to, "--json", "--delete"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        waiting.wait(timeout=3)
        raise AssertionError("mwr dedup --delete ran while another deleter held the lock")
    except subprocess.TimeoutExpired:
        pass
    assert len(segments(cfg, "cam1")) == len(before["cam1"])  # nothing deleted meanwhile
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    out_text, err_text = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err_text
    r = subprocess.CompletedProcess(waiting.args, 0, out_text, err_text)
    out = {c["camera"]: c for c in json.loads(r.stdout)["cameras"]}
    for cam in ("cam1", "cam2"):
        after = segments(cfg, cam)
        gone = [s for s in before[cam] if s["id"] not in {x["id"] for x in after}]
        assert out[cam]["deleted_segments"] == len(gone) >= 4, (out[cam], len(before[cam]), len(after))
        assert out[cam]["deleted_bytes"] == sum(s["bytes"] for s in gone) > 0, out[cam]
        assert all(not os.path.exists(s["path"]) for s in gone)
        assert all(os.path.exists(s["path"]) for s in after if s["path"] != away)
        # A recorded alone before B came: none of that is ever deleted
        b_start = min(s["start_us"] for s in before[cam] if s["instance_id"] == "b")
        assert all(s["start_us"] >= b_start for s in gone), cam
        rep = export_and_judge(str(tmp_path), cfg_path, cfg, cam)
        assert rep["missing"] == 0 and rep["duplicated"] == 0, rep
    assert any(s["path"] == away for s in segments(cfg, "cam2")), "a row whose file is away was deleted"
    assert away.encode() in r.stderr, r.stderr
    again = json.loads(mwr("dedup", "--config", cfg_path, "--from", frm, "--to", to, "--json", "--delete").stdout)
    assert all(c["deleted_segments"] == 0 for c in again["cameras"]), again
    mwr("timeline", "--config", cfg_path, "--camera", "cam1", "--from", frm, "--to", to, "--delete", expect_rc=2)
