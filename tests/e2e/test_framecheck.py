"""The frame judge against real recordings of the camera simulator: a clean
recording is judged clean, and a cut is reported exactly by frame number."""
import os
import subprocess

from conftest import ffmpeg_record, framecheck, wait_exit

FPS = 25


def record(procs, camsim, tmp_path, seconds=10, name="rec"):
    cs = camsim(cameras=1, gop=FPS)
    out = os.path.join(tmp_path, f"{name}.mp4")
    wait_exit(ffmpeg_record(procs, cs.url("cam1"), seconds, out), seconds + 20)
    return cs, out


def test_ffmpeg_recording_is_judged_clean(procs, camsim, tmp_path):
    _, out = record(procs, camsim, tmp_path)
    rep, rc = framecheck([out], "--camera", "cam1", expect_rc=0)
    assert rep["missing"] == 0 and rep["duplicated"] == 0 and rep["out_of_order"] == 0
    assert rep["unreadable"] == 0 and rep["camera_mismatch"] == 0 and rep["sei_mismatch"] == 0
    # ffmpeg's -t counts from the first packet, but copying starts at the
    # first keyframe: up to one GOP (1 s here) of the 10 s is not kept
    assert 9 * FPS - 2 <= rep["count"] <= 10 * FPS + 2
    assert rep["last"] - rep["first"] + 1 == rep["count"]


def test_cut_second_is_reported_exactly(procs, camsim, tmp_path):
    _, out = record(procs, camsim, tmp_path)
    rep, _ = framecheck([out], expect_rc=0)
    first = rep["first"]
    cut = os.path.join(tmp_path, "cut.mp4")
    # drop the frames at positions 100..124 (one second) and re-encode the rest
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", out, "-vf",
                    "select='not(between(n,100,124))'", "-vsync", "vfr", "-c:v", "libx264",
                    "-preset", "ultrafast", "-y", cut], check=True, timeout=120)
    rep2, rc = framecheck([cut], expect_rc=1)
    assert rep2["missing"] == 25
    assert rep2["missing_ranges"] == [[first + 100, first + 124]]
    assert rep2["duplicated"] == 0 and rep2["first"] == first and rep2["last"] == rep["last"]


def test_same_file_twice_is_all_duplicates(procs, camsim, tmp_path):
    _, out = record(procs, camsim, tmp_path, seconds=3)
    rep, _ = framecheck([out], expect_rc=0)
    rep2, _ = framecheck([out, out], expect_rc=1)
    assert rep2["duplicated"] == rep["frames"] and rep2["missing"] == 0
    assert [f["frames"] for f in rep2["files"]] == [rep["frames"], rep["frames"]]


def test_expected_range_counts_missing_ends(procs, camsim, tmp_path):
    _, out = record(procs, camsim, tmp_path, seconds=3)
    rep, _ = framecheck([out], expect_rc=0)
    rep2, _ = framecheck([out], "--expect-first", str(rep["first"] - 5),
                         "--expect-last", str(rep["last"] + 7), expect_rc=1)
    assert rep2["missing"] == 12
    assert rep2["missing_ranges"] == [[rep["first"] - 5, rep["first"] - 1],
                                      [rep["last"] + 1, rep["last"] + 7]]


def test_hls_playlist_is_judged_as_one_sequence(procs, camsim, tmp_path):
    _, out = record(procs, camsim, tmp_path, seconds=5)
    rep, _ = framecheck([out], expect_rc=0)
    pl = os.path.join(tmp_path, "hls", "index.m3u8")
    os.makedirs(os.path.dirname(pl))
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", out, "-c", "copy", "-f", "hls",
                    "-hls_segment_type", "fmp4", "-hls_time", "1", "-hls_playlist_type", "vod", pl],
                   check=True, timeout=60)
    rep2, _ = framecheck([pl], expect_rc=0)
    assert (rep2["first"], rep2["last"], rep2["count"]) == (rep["first"], rep["last"], rep["count"])


def test_unopenable_input_is_a_clear_error(tmp_path):
    from conftest import FRAMECHECK
    bad = os.path.join(tmp_path, "garbage.mp4")
    with open(bad, "wb") as f:
        f.write(os.urandom(4096))
    r = subprocess.run([FRAMECHECK, bad], capture_output=True, timeout=30)
    assert r.returncode == 3 and b"garbage.mp4" in r.stderr
    r = subprocess.run([FRAMECHECK, "--no-such-flag"], capture_output=True, timeout=30)
    assert r.returncode == 2
