"""Real-camera media fidelity: the streams real cameras send, as camsim
personalities, recorded by two workers that overlap with a staggered start
and stop, then exported and played back through the HLS playlist.  Judged
from the pictures (frame numbers) and the sound (time-coded samples): no
frame missing or twice, no audio hole or overlap of a packet or more, A/V in
sync with the camera's own, and both instances agreeing on every frame's
camera time within one frame."""
import bisect
import json
import os
import random
import subprocess
import time
import urllib.request

import pytest

from conftest import framecheck, wait_exit, wait_for
from test_continuity import indexed_frames, mwr, start, window
from test_worker_records import FPS, recording_frames, segments, sigterm_and_time, try_segments, write_config

FRAME_US = 1_000_000 // FPS
AAC_PACKET_MS = 1024 / 16   # 16 kHz AAC: one frame a packet
G711_PACKET_MS = 20

# name: (camsim personality, worker camera keys, audio packet ms or None)
PERSONALITIES = {
    "h264_aac": (dict(audio="aac"), {}, AAC_PACKET_MS),
    "h265_aac": (dict(codec="h265", audio="aac"), {}, AAC_PACKET_MS),
    "h264_bframes_aac": (dict(bframes=2, audio="aac", audio_frames_per_packet=3), {}, AAC_PACKET_MS),
    "h264_pcma": (dict(audio="pcma"), {}, G711_PACKET_MS),
    "h264_no_rtcp": (dict(no_rtcp=True, audio="aac"), {}, AAC_PACKET_MS),
    "h264_late_sr_range": (dict(first_sr_delay=5, play_range_offset=True, audio="aac"), {}, AAC_PACKET_MS),
    "h264_udp_only": (dict(transport="udp-only", audio="pcmu"), {"transport": "udp"}, G711_PACKET_MS),
}


def camera_config(tmp, cs, cam_extra, segment_seconds=4):
    cfg_path, cfg = write_config(tmp, cs, 1, segment_seconds=segment_seconds)
    cfg["cameras"][0].update(cam_extra)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    return cfg_path, cfg


# The camera's own A/V offset as a player hears it: camsim stamps sound and
# pictures with their capture time; AAC decoders give their first frame
# (1024 samples) late, G.711 has no delay.  Measured on ffmpeg's own
# recording of camsim (reference_sync_ms), which is only true without
# B-frames: ffmpeg shifts the video of a B-frame stream in its output.
OWN_SYNC_MS = {"aac": -64.0, "pcma": 0.0, "pcmu": 0.0}


def reference_sync_ms(procs, cs, tmp, transport="tcp"):
    """The camera's own A/V offset: a direct ffmpeg recording, judged."""
    out = os.path.join(tmp, "reference.mkv")
    wait_exit(procs.start("ffmpeg-reference", ["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", transport,
                                               "-i", cs.url(), "-c", "copy", "-t", "5", "-y", out]), 40)
    rep, _ = framecheck([out], "--camera", "cam1")
    assert rep["audio"] and rep["audio"]["has_sync"], rep.get("audio")
    return rep["audio"]["sync_median_ms"]


def audio_summary(a):
    return json.dumps({k: v for k, v in a.items() if k not in ("files",)})


def assert_audio_clean(rep, packet_ms, ref_sync_ms, what):
    a = rep["audio"]
    assert a is not None, f"{what}: no audio judged"
    assert a["holes_total"] == 0 and a["overlaps_total"] == 0, (what, audio_summary(a))
    assert a["max_hole_ms"] < packet_ms and a["max_overlap_ms"] < packet_ms, (what, a)
    assert a["located"] > 0 and a["unlocated_unexpected"] == 0, (what, audio_summary(a))
    assert a["has_sync"], (what, a)
    # A/V sync: within one audio packet of the camera's own, everywhere
    assert abs(a["sync_median_ms"] - ref_sync_ms) < packet_ms, (what, a, ref_sync_ms)
    assert a["sync_max_ms"] - a["sync_min_ms"] < packet_ms, (what, a)


def frame_times(cfg, instance):
    """{frame number: camera time (us)} of every frame an instance recorded."""
    segs = segments(cfg, "cam1", instance)
    rep, _ = framecheck([s["path"] for s in segs], "--camera", "cam1", "--frames")
    starts = [s["start_us"] for s in segs]
    return {f["n"]: starts[f["file"]] + round(f["pts"] * 1e6) for f in rep["frame_list"] if f.get("n") is not None}


def top_boxes(path, kind):
    """Offsets of an MP4 file's top-level boxes of one kind."""
    out, off, size_all = [], 0, os.path.getsize(path)
    with open(path, "rb") as f:
        while off + 8 <= size_all:
            f.seek(off)
            head = f.read(16)
            size = int.from_bytes(head[:4], "big")
            if size == 1:
                size = int.from_bytes(head[8:16], "big")
            elif size == 0:
                size = size_all - off
            if head[4:8] == kind:
                out.append(off)
            if size < 8:
                break
            off += size
    return out


def audio_filing(cfg, instance):
    """[(camera time of a sound packet, camera time of the keyframe that
    starts the fragment holding it, whether that is the instance's first
    fragment)] over an instance's segment files."""
    out = []
    for n, s in enumerate(segments(cfg, "cam1", instance)):
        moofs = top_boxes(s["path"], b"moof")
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts_time,pos,flags",
                            "-of", "json", s["path"]], capture_output=True, timeout=60)
        pkts = json.loads(r.stdout)["packets"]
        frag_key = {}
        for p in pkts:
            if p["stream_index"] == 0 and "K" in p["flags"]:
                frag_key.setdefault(bisect.bisect_right(moofs, int(p["pos"])), s["start_us"] + round(float(p["pts_time"]) * 1e6))
        # a fragment without a keyframe (one every FRAGMENT_MAX_US) belongs
        # to the piece of the keyframe fragment before it
        key_frags = sorted(frag_key)
        for p in pkts:
            frag = bisect.bisect_right(moofs, int(p["pos"]))
            i = bisect.bisect_right(key_frags, frag) - 1
            if p["stream_index"] == 1 and i >= 0:
                out.append((s["start_us"] + round(float(p["pts_time"]) * 1e6), frag_key[key_frags[i]],
                            n == 0 and frag == key_frags[0]))
    return sorted(out)


def assert_audio_filed_alike(cfg, packet_ms, what):
    """Both instances put every sound packet in the fragment of the same
    keyframe: a playlist can switch copies at any keyframe without a hole
    or an overlap.  Not judged: an instance's first fragment, which has no
    fragment before it to hold the sound of its first 2 ms."""
    fa, fb = audio_filing(cfg, "a"), audio_filing(cfg, "b")
    tb = [t for t, _, _ in fb]
    compared, differ = 0, []
    for t, key, first in fa:
        i = bisect.bisect_left(tb, t)
        near = [j for j in (i - 1, i) if 0 <= j < len(tb) and abs(tb[j] - t) < packet_ms * 250]
        if not near or first or fb[near[0]][2]:
            continue
        compared += 1
        if abs(fb[near[0]][1] - key) > FRAME_US // 2:
            differ.append((t, key, fb[near[0]][1]))
    assert compared >= 1000 / packet_ms, (what, compared)  # a second of shared sound at least
    assert not differ, (what, "sound packet (camera us), keyframe of its fragment in a, in b", differ)


def hls_sections(tmp, port, text):
    """The playlist as a player sees it: each run between two
    EXT-X-DISCONTINUITY tags is its init section and its fragments, one
    timeline of its own; written out as one file each."""
    def get(uri):
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{uri}", timeout=10).read()
    files, cur = [], None
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:URI="):
            cur = os.path.join(tmp, f"hls-{len(files)}.mp4")
            files.append(cur)
            with open(cur, "wb") as f:
                f.write(get(line.split('"')[1]))
        elif line and not line.startswith("#"):
            with open(cur, "ab") as f:
                f.write(get(line))
    return files


def hls_judge(tmp, port, cfg):
    """The handover playlist: judged section by section as a player plays
    it, and read by ffmpeg as one stream (every frame once)."""
    frm, to = window(cfg, "cam1")
    url = f"http://127.0.0.1:{port}/api/cameras/cam1/playlist.m3u8?from={frm}&to={to}"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    assert text.startswith("#EXTM3U") and "#EXT-X-ENDLIST" in text, text[:500]
    # ffmpeg reads this very text (the worker still records: a new request
    # would list more)
    local = os.path.join(tmp, "playlist.m3u8")
    with open(local, "w") as f:
        f.write(text.replace('URI="/', f'URI="http://127.0.0.1:{port}/').replace("\n/", f"\nhttp://127.0.0.1:{port}/"))
    out = os.path.join(tmp, "hls.mkv")
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-protocol_whitelist", "file,http,tcp", "-i", local,
                        "-c", "copy", "-y", out], capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    rep_ffmpeg, _ = framecheck([out], "--camera", "cam1", "--no-audio")
    assert rep_ffmpeg["missing"] == 0 and rep_ffmpeg["duplicated"] == 0, rep_ffmpeg
    rep, _ = framecheck(hls_sections(tmp, port, text), "--camera", "cam1")
    assert rep["count"] == rep_ffmpeg["count"], (rep["count"], rep_ffmpeg["count"])
    return rep


@pytest.mark.parametrize("name", list(PERSONALITIES))
def test_two_overlapping_workers_lose_nothing(procs, camsim, tmp_path, name):
    personality, cam_extra, packet_ms = PERSONALITIES[name]
    tmp = str(tmp_path)
    cs = camsim(cameras=1, gop=FPS, **personality)
    cfg_path, cfg = camera_config(tmp, cs, cam_extra)
    a, _ = start(procs, cfg_path, "a")
    wait_for(recording_frames(cfg, FPS), 40, "A recording")
    ref_sync = OWN_SYNC_MS[personality["audio"]]
    if not personality.get("bframes"):
        measured = reference_sync_ms(procs, cs, tmp, cam_extra.get("transport", "tcp"))
        assert abs(measured - ref_sync) < 1, (name, measured, ref_sync)
    b, b_port = start(procs, cfg_path, "b")
    wait_for(indexed_frames(cfg, "b", 3 * FPS), 40, "B recording")
    time.sleep(random.uniform(1, 3))
    rc, _ = sigterm_and_time(a)
    assert rc == 0, open(a.err_path).read()[-3000:]
    time.sleep(random.uniform(3, 5))
    rep_hls = hls_judge(tmp, b_port, cfg)
    rc, _ = sigterm_and_time(b)
    assert rc == 0, open(b.err_path).read()[-3000:]

    frm, to = window(cfg, "cam1")
    out = os.path.join(tmp, "export.mp4")
    r = mwr("export", "--config", cfg_path, "--camera", "cam1", "--from", frm, "--to", to, "-o", out)
    assert b"wrote" in r.stderr, r.stderr
    rep, _ = framecheck([out], "--camera", "cam1")
    assert rep["missing"] == 0 and rep["duplicated"] == 0 and rep["unreadable"] == 0, rep
    assert rep["count"] >= 8 * FPS, rep
    assert_audio_clean(rep, packet_ms, ref_sync, f"{name} export")
    # the playlist, read by ffmpeg across the handover, says the same
    assert rep_hls["missing"] == 0 and rep_hls["duplicated"] == 0, rep_hls
    assert_audio_clean(rep_hls, packet_ms, ref_sync, f"{name} playlist")
    # and it could switch copies at any keyframe: both file the sound alike
    assert_audio_filed_alike(cfg, packet_ms, name)

    # both instances file the same frame at the same camera time
    ta, tb = frame_times(cfg, "a"), frame_times(cfg, "b")
    common = sorted(set(ta) & set(tb))
    assert len(common) >= FPS, (len(ta), len(tb))
    worst = max(abs(ta[n] - tb[n]) for n in common)
    assert worst < FRAME_US, f"{name}: instances disagree by {worst} us on a frame"
    # and that time is the camera's: frame n was captured at camsim's start +
    # n frames (camsim shares our clock), not seconds away from it
    segs = segments(cfg, "cam1")
    starts = {t - n * FRAME_US for n, t in list(ta.items()) + list(tb.items())}
    assert max(starts) - min(starts) < FRAME_US, (name, min(starts), max(starts))
    assert abs(min(starts) - cs.started_real_us) < 1_000_000, (name, min(starts), cs.started_real_us)
    gaps = json.loads(mwr("gaps", "--config", cfg_path, "--from", frm, "--to", to, "--json").stdout)
    assert gaps["count"] == 0, gaps
    # G.711 is recorded with its sound, as FLAC
    want = {"aac": "aac", "pcma": "flac", "pcmu": "flac"}[personality["audio"]]
    assert all(s["audio_codec"] == want for s in segs), [s["audio_codec"] for s in segs]


def test_sigterm_with_bframes_keeps_every_frame_received(procs, camsim, tmp_path):
    """Regression: the stop ended the read loop on the last reference frame,
    without the B-frames shown before it (2 frames missing at each stop)."""
    cs = camsim(cameras=1, gop=FPS, bframes=2, audio="aac")
    cfg_path, cfg = camera_config(str(tmp_path), cs, {})
    for run in range(3):
        w, _ = start(procs, cfg_path, f"s{run}")
        wait_for(indexed_frames(cfg, f"s{run}", 2 * FPS), 40, "recording")
        time.sleep(random.uniform(0.5, 2.5))  # a random moment in the GOP
        rc, took = sigterm_and_time(w)
        assert rc == 0 and took < 2, (rc, took)
        segs = segments(cfg, "cam1", f"s{run}")
        rep, _ = framecheck([s["path"] for s in segs], "--camera", "cam1")
        assert rep["missing"] == 0 and rep["duplicated"] == 0, (run, rep)
        assert all(s["status"] == "complete" for s in segs)


def test_bframe_fragments_hold_every_frame_shown_before_their_last(procs, camsim, tmp_path):
    """Regression: a fragment cut between keyframes (every FRAGMENT_MAX_US)
    could fall after a reference frame and before the B-frames shown ahead
    of it; a live playlist ending at that fragment lacked those frames (one
    or two missing in about half the handover runs).  Every fragment must
    hold every frame shown before its last one."""
    cs = camsim(cameras=1, gop=FPS, bframes=2, audio="aac")
    cfg_path, cfg = camera_config(str(tmp_path), cs, {})
    w, _ = start(procs, cfg_path, "a")
    wait_for(indexed_frames(cfg, "a", 4 * FPS), 40, "recording")
    rc, _ = sigterm_and_time(w)
    assert rc == 0, open(w.err_path).read()[-3000:]
    cuts = 0
    for s in segments(cfg, "cam1", "a"):
        moofs = top_boxes(s["path"], b"moof")
        r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time,pos",
                            "-of", "json", s["path"]], capture_output=True, timeout=60)
        frags = {}
        for p in json.loads(r.stdout)["packets"]:
            frags.setdefault(bisect.bisect_right(moofs, int(p["pos"])), []).append(float(p["pts_time"]))
        order = [frags[k] for k in sorted(frags)]
        for n, (a, b) in enumerate(zip(order, order[1:])):
            assert max(a) < min(b), (s["path"], n, "shown later", max(a), "than a frame after the cut", min(b))
            cuts += 1
    assert cuts >= 8, cuts  # fragments cut between keyframes were judged too


def test_bframes_of_a_session_s_first_gop_keep_their_times(procs, camsim, tmp_path):
    """Regression: a camera that starts each session with an IDR (most do)
    puts its first GOP in the packets libavformat reads while probing, whose
    decode times it guesses as the pts; a B-frame after its reference then
    got the reference's time (its pts bumped to keep decode times rising):
    frames 80 ms off, two frames at one time, at the start of every
    session.  (Whether the IDR lands before libavformat learns the reorder
    delay is timing: about one session in two did; five sessions.)"""
    cs = camsim(cameras=1, gop=FPS, bframes=2, audio="aac", keyframe_on_play=True)
    cfg_path, cfg = camera_config(str(tmp_path), cs, {})
    for run in range(5):
        w, _ = start(procs, cfg_path, f"s{run}")
        wait_for(indexed_frames(cfg, f"s{run}", 2 * FPS), 40, "recording")
        rc, _ = sigterm_and_time(w)
        assert rc == 0, open(w.err_path).read()[-3000:]
    times = {}
    for s in segments(cfg, "cam1"):
        r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time",
                            "-of", "csv=p=0", s["path"]], capture_output=True, timeout=60, text=True)
        pts = sorted(float(x) for x in r.stdout.split())
        steps = {round((b - a) * 1e6) for a, b in zip(pts, pts[1:])}
        assert all(abs(d - FRAME_US) < 1000 for d in steps), (s["path"], sorted(steps)[:5], sorted(steps)[-5:])
        rep, _ = framecheck([s["path"]], "--camera", "cam1", "--frames")
        for f in rep["frame_list"]:
            if f.get("n") is not None:
                times[f["n"]] = s["start_us"] + round(f["pts"] * 1e6) - f["n"] * FRAME_US
    # every frame at its capture time (as each file presents it) within a frame of the others
    assert max(times.values()) - min(times.values()) < FRAME_US, (min(times.values()), max(times.values()))


def test_session_ended_before_the_first_sender_report_keeps_its_footage(procs, camsim, tmp_path):
    """Regression: while the worker waits for a camera's first RTCP sender
    report (up to 6 s) it holds the packets; a stop or a lost connection in
    that wait threw them away (seen as a flaky
    test_sigkill_leaves_a_repaired_partial_segment)."""
    cs = camsim(cameras=1, gop=FPS, first_sr_delay=60)
    cfg_path, cfg = camera_config(str(tmp_path), cs, {})

    def sent():
        return cs.status()["cameras"][0]["sent"]

    # a stop in the wait: every frame received is kept, and drained
    w, _ = start(procs, cfg_path, "s0")
    wait_for(lambda: sent() >= 3 * FPS, 30, "3 s sent")  # from the DESCRIBE: less the wait for a keyframe
    rc, took = sigterm_and_time(w)
    assert rc == 0 and took < 2, (rc, took)
    segs = segments(cfg, "cam1", "s0")
    assert segs and sum(s["frames"] for s in segs) >= FPS, segs
    assert all(s["status"] == "complete" and s["time_source"] == "receive" for s in segs), segs
    rep, _ = framecheck([s["path"] for s in segs], "--camera", "cam1")
    assert rep["missing"] == 0 and rep["duplicated"] == 0, rep
    # the connection ends in the wait: what came before it is footage
    w, _ = start(procs, cfg_path, "s1")
    sent0 = sent()
    wait_for(lambda: sent() >= sent0 + 3 * FPS, 30, "3 s more sent")
    t_drop_us = time.time() * 1e6
    assert cs.control("drop cam1") == "ok"
    wait_for(lambda: sum(s["frames"] for s in try_segments(cfg, "cam1", "s1") if s["start_us"] < t_drop_us)
             >= FPS, 30, "the dropped session's frames indexed")
    rc, _ = sigterm_and_time(w)
    assert rc == 0


def test_resolution_change_exports_one_file_per_stream(procs, camsim, tmp_path):
    """A camera switches 640x360 -> 1280x720 mid-stream (new SPS/PPS in band):
    the segments' init data says what they hold, /api/segments shows the
    change, the export writes one file per size with every frame once and
    the sound continuous across them, and the playlist plays across it."""
    tmp = str(tmp_path)
    cs = camsim(cameras=1, gop=FPS, audio="aac", resolution_change_at="20 1280x720")
    cfg_path, cfg = camera_config(tmp, cs, {})
    w, port = start(procs, cfg_path, "a")
    wait_for(lambda: any(s["width"] == 1280 for s in try_segments(cfg, "cam1")), 60, "the change recorded")
    time.sleep(5)
    segs_api = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/segments?camera=cam1&limit=100",
                                                 timeout=10).read())
    rep_hls = hls_judge(tmp, port, cfg)
    rc, _ = sigterm_and_time(w)
    assert rc == 0
    sizes = [(s["width"], s["height"]) for s in segs_api]
    assert (640, 360) in sizes and (1280, 720) in sizes, segs_api
    assert all(s["video_codec"] == "h264" and s["audio_codec"] == "aac" for s in segs_api), segs_api
    for s in segments(cfg, "cam1"):  # each file's init data says what its frames are
        st = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-select_streams", "v",
                                        "-show_entries", "stream=width,height", s["path"]],
                                       capture_output=True, timeout=30).stdout)["streams"][0]
        assert (st["width"], st["height"]) == (s["width"], s["height"]), (s, st)
    frm, to = window(cfg, "cam1")
    out = os.path.join(tmp, "clip.mp4")
    r = mwr("export", "--config", cfg_path, "--camera", "cam1", "--from", frm, "--to", to, "-o", out)
    parts = [out, os.path.join(tmp, "clip.2.mp4")]
    assert b"clip.2.mp4" in r.stderr and b"1280x720" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(tmp, "clip.3.mp4"))
    for p, size in zip(parts, [(640, 360), (1280, 720)]):
        frames = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-select_streams", "v",
                                            "-show_entries", "frame=width,height", p],
                                           capture_output=True, timeout=60).stdout)["frames"]
        assert frames and all((f["width"], f["height"]) == size for f in frames), (p, frames[:2])
    rep, _ = framecheck(parts, "--camera", "cam1")
    assert rep["missing"] == 0 and rep["duplicated"] == 0 and rep["decode_errors"] == 0, rep
    a = rep["audio"]
    assert a["holes_total"] == 0 and a["overlaps_total"] == 0, a
    assert rep_hls["missing"] == 0 and rep_hls["duplicated"] == 0 and rep_hls["count"] >= 20 * FPS, rep_hls


def test_rtp_timestamp_wrap_inside_the_recording(procs, camsim, tmp_path):
    """The video's 32-bit RTP clock wraps 8 s into the stream (audio's later):
    nothing missing or twice, no gap row, camera time continuous."""
    tmp = str(tmp_path)
    cs = camsim(cameras=1, gop=FPS, audio="aac", rtp_ts_start=2**32 - 8 * 90000)
    cfg_path, cfg = camera_config(tmp, cs, {})
    w, _ = start(procs, cfg_path, "a")
    wait_for(recording_frames(cfg, 14 * FPS), 60, "recording across the wrap")
    rc, _ = sigterm_and_time(w)
    assert rc == 0
    segs = segments(cfg, "cam1")
    for x, y in zip(segs, segs[1:]):
        assert abs(y["start_us"] - x["end_us"]) <= 1000, (x, y)
    frm, to = window(cfg, "cam1")
    out = os.path.join(tmp, "wrap.mp4")
    mwr("export", "--config", cfg_path, "--camera", "cam1", "--from", frm, "--to", to, "-o", out)
    rep, _ = framecheck([out], "--camera", "cam1")
    assert rep["missing"] == 0 and rep["duplicated"] == 0 and rep["count"] >= 14 * FPS, rep
    assert rep["audio"]["holes_total"] == 0 and rep["audio"]["overlaps_total"] == 0, rep["audio"]
    gaps = json.loads(mwr("gaps", "--config", cfg_path, "--from", frm, "--to", to, "--json").stdout)
    assert gaps["count"] == 0, gaps


def api(port, path):
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read())


def metric(port, name, camera="cam1"):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{camera="{camera}"}} '):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_streams_not_recorded_are_named_counted_and_shown(procs, camsim, tmp_path):
    """A camera with sound and an ONVIF-style metadata stream: video and
    audio are recorded, the metadata stream is named once in the log (not
    at every reconnect), counted in /metrics and listed in /api/cameras."""
    cs = camsim(cameras=1, gop=FPS, audio="pcmu", metadata=True)
    cfg_path, cfg = camera_config(str(tmp_path), cs, {})
    w, port = start(procs, cfg_path, "a")
    wait_for(recording_frames(cfg, FPS), 40, "recording")
    assert cs.control("drop") == "ok"  # a reconnect: the same streams again
    wait_for(lambda: api(port, "/api/cameras")[0]["reconnects"] >= 1, 20, "a reconnect")
    wait_for(recording_frames(cfg, 3 * FPS), 40, "recording again")
    cam = api(port, "/api/cameras")[0]
    assert cam["unrecorded_streams"] == ["#2 data none (not audio or video)"], cam
    assert cam["video_codec"] == "h264" and cam["audio_codec"] == "flac (from pcm_mulaw)", cam
    assert cam["time_source"] == "rtcp", cam
    assert metric(port, "mwr_camera_unrecorded_streams") == 1
    assert metric(port, "mwr_camera_audio_packets_total") > 0
    rc, _ = sigterm_and_time(w)
    assert rc == 0
    log = open(w.err_path).read()
    assert log.count("not recorded: #2 data none (not audio or video)") == 1, log[-3000:]
    segs = segments(cfg, "cam1")
    assert all(s["audio_codec"] == "flac" and s["video_codec"] == "h264" for s in segs), segs
    rep, _ = framecheck([s["path"] for s in segs], "--camera", "cam1", "--expect-audio")
    assert rep["audio"]["located"] > 0 and rep["audio"]["rate"] == 8000, rep["audio"]


def test_udp_loss_is_counted_and_filed_as_packet_loss(procs, camsim, tmp_path):
    """RTP over UDP losing 3 % of its packets: the loss is counted per
    camera, and every frame it cost is a gap row with reason packet_loss."""
    tmp = str(tmp_path)
    cs = camsim(cameras=1, gop=FPS, transport="udp-only", loss=3)
    cfg_path, cfg = camera_config(tmp, cs, {"transport": "udp"})
    w, port = start(procs, cfg_path, "a")
    wait_for(recording_frames(cfg, FPS), 40, "recording")
    wait_for(lambda: metric(port, "mwr_camera_rtp_packets_lost_total") >= 20, 60, "RTP loss counted")
    assert api(port, "/api/cameras")[0]["rtp_packets_lost"] >= 20
    rc, _ = sigterm_and_time(w)
    assert rc == 0
    assert cs.status()["cameras"][0]["rtp_dropped"] >= 20
    frm, to = window(cfg, "cam1")
    gaps = json.loads(mwr("gaps", "--config", cfg_path, "--from", frm, "--to", to, "--json").stdout)
    reasons = {g["reason"] for g in gaps["gaps"]}
    assert reasons <= {"packet_loss"}, gaps
    rows_loss = [g for g in gaps["gaps"] if g["reason"] == "packet_loss"]
    out = os.path.join(tmp, "lossy.mp4")
    mwr("export", "--config", cfg_path, "--camera", "cam1", "--from", frm, "--to", to, "-o", out)
    rep, _ = framecheck([out], "--camera", "cam1", "--no-audio")
    # every missing frame is inside a packet_loss gap
    assert rep["missing"] == 0 or rows_loss, (rep["missing_ranges"], gaps)
