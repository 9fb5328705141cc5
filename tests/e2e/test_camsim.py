"""The camera simulator behaves like a set of real cameras: one encoder per
mount shared by every client, frame numbers that follow time across client
connects and disconnects, and faults on command."""
import os
import subprocess
import time

from conftest import ffmpeg_record, framecheck, wait_exit, wait_for

FPS = 25


def frame_list(path, *extra):
    rep, _ = framecheck([path], "--frames", *extra)
    return rep, [f["n"] for f in rep["frame_list"]]


def packet_md5s(path):
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0", "-c", "copy",
                          "-f", "framemd5", "-"], capture_output=True, check=True, timeout=60).stdout
    return [line.split(",")[-1].strip() for line in out.decode().splitlines()
            if line and not line.startswith("#")]


def test_two_clients_of_one_mount_get_identical_frames(procs, camsim, tmp_path):
    cs = camsim(cameras=2, gop=FPS)
    a_path, b_path = os.path.join(tmp_path, "a.mp4"), os.path.join(tmp_path, "b.mp4")
    a = ffmpeg_record(procs, cs.url("cam2"), 8, a_path, name="client-a")
    time.sleep(3)
    b = ffmpeg_record(procs, cs.url("cam2"), 4, b_path, name="client-b")
    wait_exit(a, 30)
    wait_exit(b, 30)
    ra, na = frame_list(a_path, "--camera", "cam2")
    rb, nb = frame_list(b_path, "--camera", "cam2")
    assert ra["clean"] and rb["clean"], (ra, rb)
    # b joined ~3 s later: it sees the camera's current numbers, not its own count from 0
    assert rb["first"] >= ra["first"] + 2 * FPS
    assert set(nb) <= set(na)
    # the same frame number is the same encoded frame, byte for byte
    ma, mb = dict(zip(na, packet_md5s(a_path))), dict(zip(nb, packet_md5s(b_path)))
    common = sorted(set(ma) & set(mb))
    assert len(common) >= 3 * FPS
    assert all(ma[n] == mb[n] for n in common)


def test_numbering_follows_time_across_reconnects(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS)
    p1, p2 = os.path.join(tmp_path, "1.mp4"), os.path.join(tmp_path, "2.mp4")
    wait_exit(ffmpeg_record(procs, cs.url(), 3, p1, name="first"), 30)
    wait_for(lambda: not cs.status()["cameras"][0]["live"], 10, "media released after disconnect")
    time.sleep(2)
    before = cs.status()["frame"]
    wait_exit(ffmpeg_record(procs, cs.url(), 3, p2, name="second"), 30)
    r1, _ = framecheck([p1], expect_rc=0)
    r2, _ = framecheck([p2], expect_rc=0)
    assert r2["first"] >= before >= r1["last"] + 2 * FPS
    assert r2["first"] - before <= 2 * FPS  # within a GOP of the camera's clock
    assert cs.status()["cameras"][0]["medias"] == 2


def test_outage_is_a_gap_of_its_length(procs, camsim, tmp_path):
    cs = camsim(cameras=2, gop=FPS)
    out, other = os.path.join(tmp_path, "out.mp4"), os.path.join(tmp_path, "other.mp4")
    p = ffmpeg_record(procs, cs.url("cam1"), 9, out)
    q = ffmpeg_record(procs, cs.url("cam2"), 9, other, name="ffmpeg-cam2")
    time.sleep(3)
    assert cs.control("outage cam1 2") == "ok"
    wait_exit(p, 40)
    wait_exit(q, 40)
    rep, rc = framecheck([out], expect_rc=1)
    assert len(rep["missing_ranges"]) == 1
    a, b = rep["missing_ranges"][0]
    assert 2 * FPS - 2 <= b - a + 1 <= 2 * FPS + 2
    assert rep["duplicated"] == 0 and rep["unreadable"] == 0
    rep2, _ = framecheck([other], expect_rc=0)  # the other camera lost nothing
    assert rep2["first"] < a and rep2["last"] > b


def test_drop_closes_every_session_and_camera_recovers(procs, camsim, tmp_path):
    cs = camsim(cameras=1)
    p = ffmpeg_record(procs, cs.url(), 60, os.path.join(tmp_path, "long.mp4"))
    wait_for(lambda: cs.status()["cameras"][0]["sent"] > FPS, 10, "frames flowing")
    assert cs.control("drop") == "ok"
    wait_exit(p, 15)  # the client notices the closed connection and ends
    out = os.path.join(tmp_path, "again.mp4")
    wait_exit(ffmpeg_record(procs, cs.url(), 3, out, name="again"), 30)
    framecheck([out], expect_rc=0)


def test_corrupt_burst_then_clean_frames(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS)
    out = os.path.join(tmp_path, "c.mp4")
    p = ffmpeg_record(procs, cs.url(), 8, out)
    time.sleep(3)
    assert cs.control("corrupt cam1 10") == "ok"
    wait_exit(p, 40)
    rep, rc = framecheck([out], expect_rc=1)
    assert rep["unreadable"] + rep["missing"] > 0
    # the frames after the burst and the next keyframe decode and read again
    assert rep["last"] - rep["first"] >= 7 * FPS - 5
    assert cs.status()["cameras"][0]["corrupt_left"] == 0


def test_control_port_refuses_bad_input_and_keeps_serving(camsim):
    cs = camsim(cameras=1)
    assert cs.control("reboot now").startswith("err")
    assert cs.control("outage cam9 1").startswith("err no camera")
    assert cs.control("x" * 5000).startswith("err line too long")
    assert cs.control("status").startswith("{")
    assert cs.proc.poll() is None
    st = cs.status()
    assert st["fps"] == FPS and [c["id"] for c in st["cameras"]] == ["cam1"]


def test_bad_options_are_clear_errors():
    from conftest import CAMSIM
    r = subprocess.run([CAMSIM, "--cameras", "0"], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"--cameras" in r.stderr
    r = subprocess.run([CAMSIM, "--width", "641"], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"even" in r.stderr
