"""The frame judge against real recordings of the camera simulator: a clean
recording is judged clean, and a cut is reported exactly by frame number.
Its audio judge against the camsim audio code made by audiogen and encoded
by ffmpeg (AAC, G.711, FLAC): clean is clean, a hole, an overlap, a lost
packet and the A/V sync are measured."""
import os
import subprocess

import pytest

from conftest import BUILD, ffmpeg_record, framecheck, wait_exit

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
    before = min(5, rep["first"])  # a recording can start at frame 2
    rep2, _ = framecheck([out], "--expect-first", str(rep["first"] - before),
                         "--expect-last", str(rep["last"] + 7), expect_rc=1)
    assert rep2["missing"] == before + 7
    assert rep2["missing_ranges"] == [[rep["first"] - before, rep["first"] - 1],
                                      [rep["last"] + 1, rep["last"] + 7]][0 if before else 1:]


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


# ---- audio: the time code of tests/common/audiocode.h, made by audiogen ------

AUDIOGEN = os.path.join(BUILD, "tests", "audiogen")
AUDIO_CODECS = {  # name: (rate, container, ffmpeg codec options)
    "aac_mp4": (16000, ".mp4", ["-c:a", "aac", "-b:a", "32k"]),
    "alaw_mkv": (8000, ".mkv", ["-c:a", "pcm_alaw"]),
    "flac_mp4": (16000, ".mp4", ["-c:a", "flac", "-strict", "experimental"]),
}


def audiogen(rate, seconds, *args, first=0):
    """The camsim audio code, content samples first.., as raw s16le."""
    r = subprocess.run([AUDIOGEN, "--rate", str(rate), "--first-sample", str(first),
                        "--samples", str(int(rate * seconds)), *args],
                       capture_output=True, timeout=30, check=True)
    return r.stdout


def encode_audio(tmp_path, name, codec, seconds=10, *gen_args, first=0):
    """audiogen | ffmpeg -f s16le -i - into tmp_path/name + the codec's container."""
    rate, ext, opts = AUDIO_CODECS[codec]
    out = os.path.join(tmp_path, name + ext)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1",
                    "-i", "-", *opts, "-y", out],
                   input=audiogen(rate, seconds, *gen_args, first=first), check=True, timeout=60)
    return out


@pytest.mark.parametrize("codec", sorted(AUDIO_CODECS))
def test_audio_code_is_judged_clean(tmp_path, codec):
    rate = AUDIO_CODECS[codec][0]
    first = 123 * rate + 45  # camsim had run 123 s: found without any video to go by
    out = encode_audio(tmp_path, "clean", codec, 10, first=first)
    rep, _ = framecheck([out], expect_rc=0)
    a = rep["audio"]
    assert a["clean"] and a["rate"] == rate
    assert a["holes_total"] == 0 and a["overlaps_total"] == 0 and a["pts_gaps_total"] == 0
    assert a["unlocated_unexpected"] == 0
    # an encoder's last frame may be mostly padding: at most the first and last unlocated
    assert a["located"] >= a["frames"] - 2 and a["unlocated"] <= 2
    assert first / rate <= a["content_first_s"] <= first / rate + a["frame_ms"] / 1000
    assert a["rho_min"] >= (0.9 if codec == "aac_mp4" else 0.99)
    assert rep["frames"] == 0 and a["has_sync"] is False  # no video here


@pytest.mark.parametrize("codec", sorted(AUDIO_CODECS))
def test_audio_skip_is_one_hole(tmp_path, codec):
    rate = AUDIO_CODECS[codec][0]
    out = encode_audio(tmp_path, "hole", codec, 10, "--skip", "16000:1024")
    rep, _ = framecheck([out], expect_rc=1)
    a = rep["audio"]
    assert a["holes_total"] == 1 and a["overlaps_total"] == 0 and not a["clean"]
    assert a["holes"][0]["ms"] == pytest.approx(1024 / rate * 1000, abs=0.2)  # 64 ms at 16 kHz
    assert a["holes"][0]["content_s"] == pytest.approx(a["holes"][0]["pts_s"] + 1024 / rate, abs=0.001)
    # the pts went on as if nothing was lost: they disagree with the sound by the hole
    assert a["pts_gaps_total"] == 1 and a["pts_gaps"][0]["ms"] == pytest.approx(-1024 / rate * 1000, abs=0.2)
    assert a["unlocated_unexpected"] == 0


@pytest.mark.parametrize("codec", sorted(AUDIO_CODECS))
def test_audio_repeat_is_one_overlap(tmp_path, codec):
    rate = AUDIO_CODECS[codec][0]
    out = encode_audio(tmp_path, "overlap", codec, 10, "--repeat", "30000:800", first=rate * 60)
    rep, _ = framecheck([out], expect_rc=1)
    a = rep["audio"]
    assert a["overlaps_total"] == 1 and a["holes_total"] == 0
    assert a["overlaps"][0]["ms"] == pytest.approx(800 / rate * 1000, abs=0.2)
    assert a["max_overlap_ms"] == a["overlaps"][0]["ms"]


def test_dropped_aac_packet_is_a_hole_of_one_frame(tmp_path):
    out = encode_audio(tmp_path, "full", "aac_mp4", 10)
    cut = os.path.join(tmp_path, "cut.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", out, "-c", "copy",
                    "-bsf:a", "noise=drop='eq(n,50)'", "-y", cut], check=True, timeout=60)
    rep, _ = framecheck([cut], expect_rc=1)
    a = rep["audio"]
    assert a["holes_total"] == 1 and a["holes"][0]["ms"] == pytest.approx(64, abs=0.1)
    assert a["pts_gaps_total"] == 0  # the timestamps skip the lost frame too
    assert a["holes"][0]["pts_s"] == pytest.approx(51 * 0.064, abs=0.001)


def test_audio_segments_are_one_sequence(tmp_path):
    out = encode_audio(tmp_path, "long", "aac_mp4", 20)
    segdir = os.path.join(tmp_path, "seg")
    os.makedirs(segdir)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", out, "-c", "copy", "-f", "segment",
                    "-segment_time", "2", os.path.join(segdir, "p%03d.mp4")], check=True, timeout=60)
    segs = sorted(os.path.join(segdir, f) for f in os.listdir(segdir))
    assert len(segs) >= 8
    rep, _ = framecheck(segs, expect_rc=0)  # each part starts a cold decoder: excused
    assert rep["audio"]["clean"] and len(rep["audio"]["files"]) == len(segs)
    gone, _ = framecheck([segs[4]], expect_rc=0)
    rep2, _ = framecheck(segs[:4] + segs[5:], expect_rc=1)
    a = rep2["audio"]
    assert a["holes_total"] == 1 and a["holes"][0]["file"] == 4
    assert a["holes"][0]["ms"] == pytest.approx(gone["audio"]["samples"] / 16, abs=0.1)


def test_audio_sync_against_camsim_video(procs, camsim, tmp_path):
    _, video = record(procs, camsim, tmp_path, seconds=4)
    rep, _ = framecheck([video], "--frames", expect_rc=0)
    assert rep["audio"] is None
    # muxing moves the first picture to pts 0 (it starts the input): the sound
    # of its camera time goes at pts 0 too, unless delayed by -itsoffset
    n0 = min(f["n"] for f in rep["frame_list"])
    first = round(n0 / FPS * 16000)
    raw = audiogen(16000, 4, first=first)
    sync = {}
    for delay_s in (0, 0.3):
        out = os.path.join(tmp_path, f"av{delay_s}.mp4")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", video, "-itsoffset", str(delay_s),
                        "-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "-", "-map", "0:v", "-map", "1:a",
                        "-c:v", "copy", "-c:a", "aac", "-y", out], input=raw, check=True, timeout=60)
        rep2, _ = framecheck([out], "--expect-audio", "--frames", expect_rc=0)
        a = rep2["audio"]
        assert rep2["count"] == rep["count"] and a["clean"] and a["has_sync"]
        # the video offset: the median of number / fps - pts (an RTSP
        # recording's first pictures may carry odd pts: the median ignores them)
        offsets = sorted(f["n"] / FPS - f["pts"] for f in rep2["frame_list"])
        voff = a["files"][0]["video_offset_s"]
        assert voff == pytest.approx(offsets[len(offsets) // 2], abs=0.001)
        # the sound's content - pts is first / rate - delay_s: late by delay_s
        # and by however far the first picture's pts is off the median
        assert a["sync_median_ms"] == pytest.approx((first / 16000 - delay_s - voff) * 1000, abs=1)
        assert a["sync_max_ms"] - a["sync_min_ms"] < 1
        sync[delay_s] = a["sync_median_ms"]
    assert sync[0.3] - sync[0] == pytest.approx(-300, abs=1)
    assert abs(sync[0]) <= 1000 / FPS + 1  # the first picture's pts is at most a frame off


def test_audio_options_and_errors(procs, camsim, tmp_path):
    from conftest import FRAMECHECK
    _, video = record(procs, camsim, tmp_path, seconds=2)
    r = subprocess.run([FRAMECHECK, "--expect-audio", video], capture_output=True, timeout=60)
    assert r.returncode == 3 and b"no audio stream" in r.stderr and video.encode() in r.stderr
    rep, _ = framecheck([video], "--no-audio", expect_rc=0)
    assert rep["audio"] is None
    alaw = encode_audio(tmp_path, "a8k", "alaw_mkv", 2)
    aac = encode_audio(tmp_path, "a16k", "aac_mp4", 2)
    r = subprocess.run([FRAMECHECK, "--json", alaw, aac], capture_output=True, timeout=60)
    assert r.returncode == 3 and b"rate" in r.stderr and b"a16k.mp4" in r.stderr and b"a8k.mkv" in r.stderr
    r = subprocess.run([FRAMECHECK, "--no-audio", alaw], capture_output=True, timeout=60)
    assert r.returncode == 3 and b"no video stream" in r.stderr
    r = subprocess.run([FRAMECHECK, alaw], capture_output=True, timeout=60)
    assert r.returncode == 0 and b"audio verdict clean\n" in r.stdout
    # a 1 ms hole is within the default tolerance, not with a smaller one
    small = encode_audio(tmp_path, "small", "alaw_mkv", 4, "--skip", "16000:8")
    rep, _ = framecheck([small], expect_rc=0)
    assert rep["audio"]["holes_total"] == 0
    rep, _ = framecheck([small], "--audio-tolerance-ms", "0.5", expect_rc=1)
    assert rep["audio"]["holes_total"] == 1 and rep["audio"]["holes"][0]["ms"] == pytest.approx(1)
    for bad in (["--audio-tolerance-ms", "-1"], ["--fps", "0"], ["--no-audio", "--expect-audio"]):
        r = subprocess.run([FRAMECHECK, *bad, alaw], capture_output=True, timeout=30)
        assert r.returncode == 2
