"""Storage on a small tmpfs that fills up: the worker pauses instead of
corrupting anything, and resumes by itself when space returns."""
import os
import signal
import sqlite3
import time

from conftest import framecheck, wait_for
from test_worker_records import FPS, recording_frames, rows, segments, start_worker, try_segments, write_config


def fill(path):
    """Writes zeros until the filesystem is full; returns bytes written."""
    n = 0
    with open(path, "wb") as f:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                f.write(chunk)
                f.flush()
                n += len(chunk)
        except OSError:
            pass
    return n


def test_full_disk_pauses_then_resumes_without_corruption(procs, camsim, tmp_path, tmpfs):
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2, segment_seconds=2,
                                 disk={"min_free_mb": 0})
    cfg["storage_dir"] = os.path.join(tmpfs, "rec")
    cfg["db_path"] = os.path.join(tmpfs, "mwr.db")
    import json
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    w = start_worker(procs, cfg_path)
    wait_for(recording_frames(cfg, 3 * FPS), 30, "recording")
    filler = os.path.join(tmpfs, "filler")
    fill(filler)
    time.sleep(6)
    assert w.poll() is None, open(w.err_path).read()[-2000:]
    os.unlink(filler)
    t_freed = time.time()
    # new segments start after the space came back
    wait_for(lambda: any(s["start_us"] > t_freed * 1e6 and s["frames"] > FPS
                         for s in try_segments(cfg, "cam1") + try_segments(cfg, "cam2")), 30,
             "recording resumed after space was freed")
    time.sleep(3)
    os.kill(w.pid, signal.SIGTERM)
    assert w.wait(timeout=30) == 0
    con = sqlite3.connect(cfg["db_path"])
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    err = open(w.err_path).read()
    assert "No space left on device" in err or "storage full" in err, err[-2000:]
    for cam in ("cam1", "cam2"):
        segs = segments(cfg, cam)
        assert all(s["status"] in ("complete", "partial", "corrupt") for s in segs), segs
        # a segment cut before its first whole fragment holds no footage and says so
        assert all(s["frames"] == 0 for s in segs if s["status"] == "corrupt"), segs
        for s in (s for s in segs if s["status"] != "corrupt"):
            rep, _ = framecheck([s["path"]], "--camera", cam)
            assert rep["frames"] == s["frames"], (s, rep)
            assert rep["missing"] == 0 and rep["duplicated"] == 0 and rep["unreadable"] == 0, (s, rep)
        gaps = rows(cfg, "SELECT * FROM gaps WHERE camera_id = ? AND reason = 'disk_full'", cam)
        assert len(gaps) == 1, rows(cfg, "SELECT * FROM gaps")
