"""The camera simulator behaves like a set of real cameras: one encoder per
mount shared by every client, frame numbers that follow time across client
connects and disconnects, faults on command, credentials and a cap on the
sessions of each stream."""
import json
import os
import subprocess
import time
from urllib.parse import quote

import pytest

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
    assert cs.control("sessions cam9").startswith("err no camera")
    assert cs.control("sessions cam1 cam2").startswith("err usage")
    assert json.loads(cs.control("sessions")) == {"cam1": {"open": 0, "opened": 0, "refused": 0, "kicked": 0,
                                                           "auth_failed": 0, "events": []}}
    assert cs.proc.poll() is None
    st = cs.status()
    assert st["fps"] == FPS and [c["id"] for c in st["cameras"]] == ["cam1"]


def test_bad_options_are_clear_errors():
    from conftest import CAMSIM
    r = subprocess.run([CAMSIM, "--cameras", "0"], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"--cameras" in r.stderr
    r = subprocess.run([CAMSIM, "--width", "641"], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"even" in r.stderr
    for argv, needle in ((["--auth", "md5", "x:y"], b"--auth"), (["--auth", "basic", "nopassword"], b"USER:PASS"),
                         (["--max-sessions", "0"], b"--max-sessions"), (["--policy", "kick"], b"--max-sessions"),
                         (["--max-sessions", "1", "--policy", "evict"], b"--policy")):
        r = subprocess.run([CAMSIM, *argv], capture_output=True, timeout=10)
        assert r.returncode == 2 and needle in r.stderr, (argv, r.stderr)


# ---- personalities: each flag makes camsim behave like a kind of real camera ----

def ffprobe_json(args, timeout=60):
    import json
    r = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args], capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return json.loads(r.stdout)


def probe_url(url, seconds, *entries, transport="tcp", select=None):
    """Packets of a live stream for `seconds`, read by ffprobe."""
    args = ["-rtsp_transport", transport, "-read_intervals", f"%+{seconds}", "-show_packets",
            "-show_entries", "packet=" + ",".join(entries) + ":side_data=side_data_type"]
    if select:
        args += ["-select_streams", select]
    out = ffprobe_json(args + [url], timeout=seconds + 30)
    return out.get("packets") or [p for p in out.get("packets_and_frames", []) if p.get("type") == "packet"]


def streams(path):
    return {s["codec_type"]: s for s in ffprobe_json(["-show_streams", path])["streams"]}


def has_prft(pkt):
    return any(sd.get("side_data_type") == "Producer Reference Time" for sd in pkt.get("side_data_list", []))


def test_h265_personality_carries_frame_numbers_and_sei(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS, codec="h265")
    out = os.path.join(tmp_path, "h265.mkv")
    wait_exit(ffmpeg_record(procs, cs.url(), 4, out), 40)
    assert streams(out)["video"]["codec_name"] == "hevc"
    rep, _ = framecheck([out], "--camera", "cam1", expect_rc=0)
    assert rep["count"] >= 3 * FPS - 2 and rep["sei_frames"] == rep["frames"], rep


def test_bframes_personality_sends_frames_out_of_order(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS, bframes=2)
    pkts = probe_url(cs.url(), 3, "pts", select="v")
    pts = [int(p["pts"]) for p in pkts if p.get("pts") not in (None, "N/A")]
    # decode order is not presentation order: some frame is shown before the one sent ahead of it
    assert any(b < a for a, b in zip(pts, pts[1:])), pts[:40]
    out = os.path.join(tmp_path, "bf.mkv")
    wait_exit(ffmpeg_record(procs, cs.url(), 4, out), 40)
    assert streams(out)["video"]["has_b_frames"] == 2
    rep, _ = framecheck([out], "--camera", "cam1")
    assert rep["duplicated"] == 0 and rep["unreadable"] == 0 and rep["missing"] <= 2, rep  # -t may cut a B-frame


def test_audio_personalities_send_their_codec(procs, camsim, tmp_path):
    for audio, codec, rate in (("aac", "aac", 16000), ("pcma", "pcm_alaw", 8000), ("pcmu", "pcm_mulaw", 8000)):
        cs = camsim(cameras=1, gop=FPS, audio=audio)
        out = os.path.join(tmp_path, f"{audio}.mkv")
        wait_exit(ffmpeg_record(procs, cs.url(), 3, out, name=f"ffmpeg-{audio}"), 40)
        a = streams(out)["audio"]
        assert a["codec_name"] == codec and int(a["sample_rate"]) == rate, a
        assert cs.status()["cameras"][0]["audio_sent"] > 0
        procs.stop(cs.proc)


def test_aac_frames_per_packet_packs_several_frames_into_one_rtp_packet(camsim):
    """libavformat timestamps only an RTP packet's first AU from the packet
    (it carries the sender-report time); the others are derived."""
    cs = camsim(cameras=1, audio="aac", audio_frames_per_packet=3)
    # the first sender report comes 0-4 s after PLAY (RTCP's randomised
    # interval): 8 s leave 4 s or more of packets after it
    pkts = probe_url(cs.url(), 8, "pts", select="a")
    first = next(i for i, p in enumerate(pkts) if has_prft(p))  # from the first sender report on
    pkts = pkts[first:]
    timed = [p for p in pkts if has_prft(p)]
    assert len(timed) >= 10 and abs(len(timed) * 3 - len(pkts)) <= 3, (len(timed), len(pkts))


def test_no_rtcp_and_a_late_first_sender_report(camsim):
    cs = camsim(cameras=1, no_rtcp=True)
    assert not any(has_prft(p) for p in probe_url(cs.url(), 3, "pts_time", select="v"))
    cs = camsim(cameras=1, first_sr_delay=3)
    pkts = [p for p in probe_url(cs.url(), 5, "pts_time", select="v") if p.get("pts_time") not in (None, "N/A")]
    # the stream's start: its earliest pts (libavformat's parser can give the
    # first packet out a later pts, seen as 2.24 then 0.04, 0.08...)
    first = min(float(p["pts_time"]) for p in pkts)
    first_sr = next(float(p["pts_time"]) for p in pkts if has_prft(p))
    assert first_sr - first >= 2.5, (first, first_sr, len(pkts), pkts[:5])


def test_play_range_offset_answers_a_late_play_with_its_position(procs, camsim, tmp_path):
    cs = camsim(cameras=1, play_range_offset=True)
    early = ffmpeg_record(procs, cs.url(), 12, os.path.join(tmp_path, "early.mkv"), name="early")
    wait_for(lambda: cs.status()["cameras"][0]["sent"] > 4 * FPS, 15, "4 s of frames to the first client")
    r = subprocess.run(["ffprobe", "-v", "trace", "-rtsp_transport", "tcp", "-read_intervals", "%+1",
                        "-show_entries", "format=start_time", cs.url()], capture_output=True, timeout=30)
    ranges = [line for line in r.stderr.decode(errors="replace").splitlines() if "line='Range:" in line]
    assert ranges, r.stderr.decode(errors="replace")[-2000:]
    npt = float(ranges[-1].split("npt=")[1].split("-")[0])
    assert npt >= 3.5, ranges  # not npt=0 nor npt=now
    wait_exit(early, 30)


def test_udp_only_refuses_tcp_interleaving(procs, camsim, tmp_path):
    cs = camsim(cameras=1, transport="udp-only")
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", cs.url(),
                        "-t", "1", "-f", "null", "-"], capture_output=True, timeout=30)
    assert r.returncode != 0 and b"461" in r.stderr, r.stderr
    out = os.path.join(tmp_path, "udp.mkv")
    wait_exit(procs.start("ffmpeg-udp", ["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "udp", "-i",
                                         cs.url(), "-c", "copy", "-t", "3", "-y", out]), 40)
    framecheck([out], expect_rc=0)


def test_resolution_change_switches_the_picture_size(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS, resolution_change_at="3 1280x720")
    out = os.path.join(tmp_path, "res.mkv")
    wait_exit(ffmpeg_record(procs, cs.url(), 6, out), 40)
    frames = ffprobe_json(["-select_streams", "v", "-show_entries", "frame=width,height", out])["frames"]
    sizes = [(f["width"], f["height"]) for f in frames if "width" in f]
    assert sizes[0] == (640, 360) and sizes[-1] == (1280, 720), sizes[:3] + sizes[-3:]
    assert sizes == sorted(sizes)  # one change, no flapping
    rep, _ = framecheck([out], "--camera", "cam1", expect_rc=0)
    assert rep["decode_errors"] == 0


def test_rtp_timestamps_start_where_told_and_wrap(procs, camsim, tmp_path):
    start = 2**32 - 3 * 90000  # video wraps 3 s after the media begins
    cs = camsim(cameras=1, gop=FPS, rtp_ts_start=start)
    r = subprocess.run(["ffprobe", "-v", "trace", "-rtsp_transport", "tcp", "-read_intervals", "%+1",
                        "-show_entries", "format=start_time", cs.url()], capture_output=True, timeout=30)
    info = [line for line in r.stderr.decode(errors="replace").splitlines() if "line='RTP-Info:" in line]
    assert info, r.stderr.decode(errors="replace")[-2000:]
    rtptime = int(info[-1].split("rtptime=")[1].split(",")[0].split(";")[0].rstrip("'"))
    assert start <= rtptime < start + 3 * 90000, (rtptime, start)
    out = os.path.join(tmp_path, "wrap.mkv")
    wait_exit(ffmpeg_record(procs, cs.url(), 6, out), 40)  # across the wrap
    rep, _ = framecheck([out], "--camera", "cam1", expect_rc=0)
    assert rep["count"] >= 5 * FPS - 2


def test_loss_drops_rtp_packets(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS, loss=5)
    p = procs.start("ffmpeg-loss", ["ffmpeg", "-nostdin", "-v", "warning", "-rtsp_transport", "udp", "-i",
                                    cs.url(), "-t", "4", "-f", "null", "-"])
    wait_exit(p, 40)
    assert cs.status()["cameras"][0]["rtp_dropped"] > 0
    assert b"RTP: missed" in open(p.err_path, "rb").read()


def test_metadata_personality_adds_a_data_stream(camsim):
    cs = camsim(cameras=1, audio="aac", metadata=True)
    st = ffprobe_json(["-rtsp_transport", "tcp", "-show_streams", cs.url()], timeout=30)["streams"]
    assert [s["codec_type"] for s in st] == ["video", "audio", "data"], st


# ---- credentials and the sessions of a stream, as real cameras have them ----

def cam_url(cs, user=None, password=None, cam="cam1"):
    """The camera's URL with the credentials percent-encoded (':' and '@' in a password)."""
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user is not None else ""
    return f"rtsp://{auth}127.0.0.1:{cs.rtsp_port}/{cam}"


def play(url, seconds=2):
    """ffprobe reads `seconds` of video; returns (video packets, exit code, stderr)."""
    r = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-read_intervals", f"%+{seconds}",
                        "-show_packets", "-select_streams", "v", "-show_entries", "packet=pts", "-of", "json", url],
                       capture_output=True, timeout=seconds + 30)
    pkts = json.loads(r.stdout or b"{}").get("packets", []) if r.returncode == 0 else []
    return pkts, r.returncode, r.stderr.decode(errors="replace")


def sessions(cs, cam="cam1"):
    return json.loads(cs.control(f"sessions {cam}"))[cam]


def kinds(log):
    return [e["event"] for e in log["events"]]


@pytest.mark.parametrize("mode,password", [("basic", "p@ss@word"), ("basic", "a:b"),
                                           ("digest", "p@ss@word"), ("digest", "a:b")])
def test_auth_admits_only_the_right_password(camsim, mode, password):
    cs = camsim(cameras=1, auth=f"{mode} admin:{password}")
    with open(f"/proc/{cs.proc.pid}/cmdline", "rb") as f:  # ps shows the password as stars
        cmdline = f.read()
    assert password.encode() not in cmdline and f"admin:{'*' * len(password)}".encode() in cmdline, cmdline
    pkts, rc, err = play(cam_url(cs, "admin", password))
    assert rc == 0 and len(pkts) >= 25, err  # a second of frames, at least
    for url in (cam_url(cs), cam_url(cs, "admin", "wrong"), cam_url(cs, "admin", "wrong"),
                cam_url(cs, "admin", password[:-1])):
        _, rc, err = play(url, 1)
        assert rc != 0 and "401" in err, (url, err)
    log = sessions(cs)
    # the challenge to a request without credentials is no failed attempt; each wrong password is one
    assert log["auth_failed"] == 3 and kinds(log).count("auth_failed") == 3, log
    assert log["opened"] == 1 and log["open"] == 0, log
    now = time.time()
    assert all(now - 60 < e["t"] <= now for e in log["events"]), log  # unix seconds, of just now
    assert cs.status()["cameras"][0]["sessions"]["auth_failed"] == 3
    pkts, rc, err = play(cam_url(cs, "admin", password), 1)  # failures lock nobody out
    assert rc == 0 and pkts, err


def test_max_sessions_refuse_answers_453_while_the_first_keeps_receiving(procs, camsim, tmp_path):
    # with sound: a client sets up two streams in one session, which counts once
    cs = camsim(cameras=1, gop=FPS, audio="aac", max_sessions=1, policy="refuse")
    first_path = os.path.join(tmp_path, "first.mkv")
    first = ffmpeg_record(procs, cs.url(), 8, first_path, name="first")
    wait_for(lambda: sessions(cs)["open"] == 1 and cs.status()["cameras"][0]["sent"] > FPS, 15,
             "the first client's session and frames")
    _, rc, err = play(cs.url(), 1)
    assert rc != 0 and "453" in err, err
    log = sessions(cs)
    assert (log["open"], log["opened"], log["refused"]) == (1, 1, 1), log
    assert kinds(log) == ["open", "refused"], log
    wait_exit(first, 30)
    rep, _ = framecheck([first_path], "--no-audio", expect_rc=0)  # no gap in the first client's frames
    assert rep["count"] >= 7 * FPS, rep
    # its TEARDOWN frees the place
    wait_for(lambda: sessions(cs)["open"] == 0, 10, "the first session's end")
    pkts, rc, err = play(cs.url(), 1)
    assert rc == 0 and pkts, err
    wait_for(lambda: kinds(sessions(cs)) == ["open", "refused", "close", "open", "close"], 10,
             "the second client's session to open and close")
    ev = sessions(cs)["events"]
    assert ev[0]["session"] == ev[2]["session"] != ev[3]["session"] == ev[4]["session"], ev
    assert ev[1]["session"] == "", ev


def test_max_sessions_kick_ends_the_oldest_session(procs, camsim, tmp_path):
    cs = camsim(cameras=1, gop=FPS, max_sessions=1, policy="kick")
    a_path, b_path = os.path.join(tmp_path, "a.mkv"), os.path.join(tmp_path, "b.mkv")
    a = ffmpeg_record(procs, cs.url(), 60, a_path, name="oldest")
    wait_for(lambda: sessions(cs)["open"] == 1 and cs.status()["cameras"][0]["sent"] > FPS, 15,
             "the first client's session and frames")
    b = ffmpeg_record(procs, cs.url(), 4, b_path, name="newest")
    wait_exit(a, 15)  # its connection is closed: its stream ends long before its 60 s
    wait_exit(b, 30)
    framecheck([b_path], expect_rc=0)  # the new client plays on, undisturbed
    rep_a, _ = framecheck([a_path])
    assert rep_a["count"] >= FPS, rep_a  # the old one had been playing
    log = sessions(cs)
    assert (log["opened"], log["kicked"], log["refused"]) == (2, 1, 0), log
    assert kinds(log) == ["open", "open", "kicked", "close"], log
    ev = log["events"]
    assert ev[2]["session"] == ev[0]["session"] != ev[1]["session"] == ev[3]["session"], ev
    assert cs.status()["cameras"][0]["sessions"]["kicked"] == 1
