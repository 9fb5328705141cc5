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
