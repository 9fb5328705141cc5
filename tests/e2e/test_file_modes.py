"""Least privilege on disk: what mwr creates -- the storage, camera and day
directories, the segments, the index and its -wal/-shm, an export -- gives
nothing to other users, whatever the umask it was started with.  Regression:
segments and exports were 0644, directories 0755 and the index (so its -wal
and -shm) 0644 under the usual umask 022, 0666/0777-ish under umask 0."""
import os
import sqlite3
import stat

import pytest

from conftest import BUILD, free_port, wait_for
from test_worker_records import FPS, WORKER, sigterm_and_time, write_config

MWR = os.path.join(BUILD, "bin", "mwr")
DIR_MODE, FILE_MODE = 0o750, 0o640


def complete_segments(db_path, at_least=1):
    """Rows of finished segments once there are at_least of them, else [].
    Read only: the test must not create the index itself (sqlite3.connect
    would, under the test's own umask)."""
    if not os.path.exists(db_path):
        return []
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
        try:
            rows = con.execute("SELECT path, start_us, end_us FROM video_segments "
                               "WHERE status = 'complete' ORDER BY start_us").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []  # the worker has not migrated it yet
    return rows if len(rows) >= at_least else []


def modes_below(root):
    """{path: permission bits} of root and everything below it."""
    out = {root: stat.S_IMODE(os.lstat(root).st_mode)}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            out[p] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def assert_modes(cfg):
    """Every directory the worker made is 0750, every file 0640 (so: no world
    bits); the index and whichever of its -wal/-shm exist, 0640."""
    found = modes_below(cfg["storage_dir"])
    dirs = {p: m for p, m in found.items() if os.path.isdir(p)}
    files = {p: m for p, m in found.items() if not os.path.isdir(p)}
    assert all(m & 0o007 == 0 for m in found.values()), {p: oct(m) for p, m in found.items()}
    assert len(dirs) >= 3, dirs  # storage_dir/cam1/YYYY-MM-DD
    assert all(m == DIR_MODE for m in dirs.values()), {p: oct(m) for p, m in dirs.items()}
    assert any(p.endswith(".mp4") for p in files), files
    assert all(m == FILE_MODE for m in files.values()), {p: oct(m) for p, m in files.items()}
    db_dir, db_name = os.path.split(cfg["db_path"])
    db_files = {n: stat.S_IMODE(os.lstat(os.path.join(db_dir, n)).st_mode)
                for n in os.listdir(db_dir) if n == db_name or n.startswith(db_name + "-")}
    assert db_name in db_files, os.listdir(db_dir)
    assert all(m == FILE_MODE for m in db_files.values()), {n: oct(m) for n, m in db_files.items()}
    return db_files


@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_files_are_created_without_world_bits(procs, camsim, tmp_path, mask):
    cs = camsim(cameras=1, gop=FPS)
    cfg_path, cfg = write_config(str(tmp_path), cs, 1, segment_seconds=1)
    w = procs.start("worker-a", [WORKER, "--config", cfg_path, "--instance-id", "a", "--port", str(free_port())],
                    umask=mask)
    segs = wait_for(lambda: complete_segments(cfg["db_path"], at_least=2), 30, "two complete segments")
    # while it records: the index is open, so its -wal and -shm are there too
    db_files = assert_modes(cfg)
    assert {n[len(os.path.basename(cfg["db_path"])):] for n in db_files} >= {"", "-wal", "-shm"}, db_files
    rc, _ = sigterm_and_time(w)
    assert rc == 0, open(w.err_path).read()[-3000:]
    assert_modes(cfg)

    # mwr export's output, under the same umask
    out = os.path.join(str(tmp_path), "export", "cam1.mp4")
    os.makedirs(os.path.dirname(out))
    p = procs.start("export", [MWR, "export", "--config", cfg_path, "--camera", "cam1",
                               "--from", str(segs[0][1] / 1e6), "--to", str(segs[-1][2] / 1e6), "-o", out],
                    umask=mask)
    assert p.wait(timeout=60) == 0, open(p.err_path).read()[-3000:]
    assert stat.S_IMODE(os.stat(out).st_mode) == FILE_MODE, oct(os.stat(out).st_mode)
    assert_modes(cfg)  # the tool's open of the index left its modes alone
