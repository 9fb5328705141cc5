"""Storage on a small tmpfs that fills up: the worker pauses instead of
corrupting anything, and resumes by itself when space returns."""
import os
import signal
import sqlite3
import time

from conftest import framecheck, wait_for
from conftest import free_port
from test_worker_records import FPS, WORKER, recording_frames, rows, segments, start_worker, try_segments, write_config


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


def finished_rows(cfg):
    try:
        return {r["id"]: r for r in rows(cfg, "SELECT * FROM video_segments WHERE status != 'recording'")}
    except sqlite3.Error:  # the worker has not made the DB yet
        return {}


def test_storage_gone_for_6_s_loses_no_row_and_resumes_within_2_s(procs, camsim, tmp_path):
    """Regression: storage behind a link that dangled for 6 s (as an unmount
    or a stalled disk): statvfs failed, the disk guard took that as 0 bytes
    free, "deleted" every finished segment (unlink's ENOENT counted as done)
    and deleted every finished row; the gap was filed as disk_full."""
    from test_worker_health import get
    cs = camsim(cameras=2, gop=FPS)
    real = tmp_path / "disk"
    real.mkdir()
    link = tmp_path / "storage"
    os.symlink(real, link)
    cfg_path, cfg = write_config(str(tmp_path), cs, 2, segment_seconds=1, disk={"min_free_mb": 1})
    cfg["storage_dir"] = str(link)
    import json
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    port = free_port()
    w = procs.start("worker-a", [WORKER, "--config", cfg_path, "--instance-id", "a", "--port", str(port)])
    wait_for(lambda: len(finished_rows(cfg)) >= 6, 30, "six finished segments")
    before = finished_rows(cfg)
    # the link dangles, as a disk that is gone
    os.symlink(tmp_path / "nowhere", tmp_path / "storage.tmp")
    os.replace(tmp_path / "storage.tmp", link)
    t_gone = time.time()
    wait_for(lambda: '"storage_unavailable"' in get(port, "/health")[1], 5, "/health naming the storage")
    code, body = get(port, "/api/health")
    assert code == 503 and json.loads(body)["disk"]["status"] == "unavailable", body
    assert json.loads(body)["reason"] == "storage_unavailable" and str(link) in json.loads(body)["disk"]["detail"]
    time.sleep(max(0.0, 6 - (time.time() - t_gone)))
    os.symlink(real, tmp_path / "storage.tmp")
    os.replace(tmp_path / "storage.tmp", link)
    t_back = time.time()
    wait_for(lambda: any(r["start_us"] > t_back * 1e6 for r in try_segments(cfg, "cam1")) and
             any(r["start_us"] > t_back * 1e6 for r in try_segments(cfg, "cam2")), 10, "recording resumed")
    for cam in ("cam1", "cam2"):
        first = min(r["start_us"] for r in segments(cfg, cam) if r["start_us"] > t_back * 1e6)
        print(f"{cam}: recording again {(first - t_back * 1e6) / 1e6:.3f} s after the storage came back")
        assert first - t_back * 1e6 <= 2e6, (cam, (first - t_back * 1e6) / 1e6)
    wait_for(lambda: get(port, "/health")[0] == 200, 10, "healthy again")
    os.kill(w.pid, signal.SIGTERM)
    assert w.wait(timeout=30) == 0
    after = finished_rows(cfg)
    lost = [before[i]["path"] for i in before if i not in after]
    assert not lost, lost  # 0 rows lost
    assert all(os.path.exists(r["path"]) for r in after.values())
    gaps = rows(cfg, "SELECT * FROM gaps")
    assert any(g["reason"] == "storage_unavailable" for g in gaps), gaps
    assert not any(g["reason"] == "disk_full" for g in gaps), gaps
    err = open(w.err_path).read()
    assert "storage unavailable" in err and "disk: deleted" not in err, err[-3000:]


def gauge(port, name):
    """A metric without labels from /metrics, or None."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def test_a_locked_db_for_60_s_keeps_memory_bounded_and_loses_no_row(procs, camsim, tmp_path):
    """Regression: the index writer's queue had no byte bound (each event
    carries a PATH_MAX path): a DB locked by another process grew the
    worker's memory without limit.  Now the queue stops at its bound, the
    rows it could not hold are rebuilt from the segment files once the DB
    answers, and every drop is counted."""
    import json
    bound = 64 * 1024  # a small bound, so 60 s of 4 cameras go far past it
    cs = camsim(cameras=4, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 4, segment_seconds=1)
    port = free_port()
    w = procs.start("worker-a", [WORKER, "--config", cfg_path, "--instance-id", "a", "--port", str(port)],
                    env={**os.environ, "MWR_TEST_INDEX_QUEUE_BYTES": str(bound)})
    wait_for(recording_frames(cfg, 2 * FPS), 30, "recording")
    rss0 = gauge(port, "mwr_process_resident_memory_bytes")
    lock = sqlite3.connect(cfg["db_path"], timeout=10, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    t_end = time.monotonic() + 60
    peak_q, peak_rss = 0.0, rss0
    while time.monotonic() < t_end:
        q = gauge(port, "mwr_db_queued_bytes")
        assert q is not None, "mwr_db_queued_bytes not in /metrics"
        peak_q = max(peak_q, q)
        peak_rss = max(peak_rss, gauge(port, "mwr_process_resident_memory_bytes"))
        time.sleep(1)  # a sample a second: the DB stays locked whatever we do
    dropped = gauge(port, "mwr_db_dropped_updates_total")
    lock.execute("ROLLBACK")
    lock.close()
    print(f"locked 60 s: queue peak {peak_q / 1024:.1f} KiB (bound {bound / 1024:.0f} KiB), "
          f"RSS {rss0 / 1e6:.1f} -> peak {peak_rss / 1e6:.1f} MB, {dropped:.0f} updates dropped")
    assert peak_q <= bound + 16 * 1024, peak_q  # one event may be put back over it
    assert dropped > 0
    assert peak_rss - rss0 < 16e6, (rss0, peak_rss)
    wait_for(lambda: gauge(port, "mwr_db_rebuild_waiting") == 0 and gauge(port, "mwr_db_queued_updates") == 0, 60,
             "the index caught up")
    assert gauge(port, "mwr_db_rebuilt_segments_total") > 0
    os.kill(w.pid, signal.SIGTERM)
    assert w.wait(timeout=30) == 0
    # every segment file has its row, and the row says what the file holds
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(cfg["storage_dir"]) for f in fs if f.endswith(".mp4"))
    by_path = {r["path"]: r for r in rows(cfg, "SELECT * FROM video_segments")}
    assert [f for f in files if f not in by_path] == []
    assert not [r for r in by_path.values() if r["status"] == "recording"]
    for cam in range(1, 5):
        segs = segments(cfg, f"cam{cam}")
        rep, _ = framecheck([s["path"] for s in segs], "--camera", f"cam{cam}")
        assert rep["frames"] == sum(s["frames"] for s in segs), cam
        assert rep["missing"] == 0 and rep["duplicated"] == 0, (cam, rep["missing_ranges"])
        for s, f in zip(segs, rep["files"]):
            assert s["frames"] == f["frames"], (s["path"], s["frames"], f["frames"])
