#!/usr/bin/python3
"""What a month of footage costs mwr, and how each cost grows from day 1 to
day 30 of the archive.

usage: tests/bench/archive_month.py [CAMERAS=64] [DAYS=30] [CHECKPOINTS=1,7,30]
       env REQUESTS=20 (per timed query), LIVE_CAMERAS=CAMERAS (cameras camsim
       feeds while a checkpoint is measured), RETENTION_MAX_S=180 (the
       retention test stops there: rows left and rows/s say how far it got),
       KEEP=1 (keep the temp dir)

The archive: CAMERAS cameras x DAYS days of 10 s segments, instance "a",
written straight into the SQLite index that a real mwr-worker created.  The
first worker run creates the schema and records 40 s of one camsim camera
at 1280x720, 4 Mbit/s, GOP 50: those real segments are the templates.  Then
every row is deleted and the archive is built backwards from that moment
(day 1 = the last 24 h, day 2 the 24 h before, ...), one transaction per
day of all cameras, rows interleaved by time across cameras as recording
writes them (ids follow time, as in a real archive), with executemany and
load-only PRAGMAs (journal off, synchronous off, 1 GB cache; WAL again
after).  Rows are as the worker writes them (path, segment_num, 250 frames,
5 keyframes, 10 fragments, complete, rtcp, codec and size of the template).
segment_frames holds blobs in the real frame-index format
(db/frame_index.c, ported below): 25 fps, GOP 50, I-frames ~150 KB +-10 %,
P-frames ~16.5 KB +-30 %, random 12-bit hashes (~3.9 Mbit/s).  Python is too
slow to encode 16.6 M of them, so 16 distinct blobs are encoded once and
reused in turn (each row's bytes is its blob's frame sizes + 8 KB of MP4
boxes).  Files: sparse files (ftruncate to the row's bytes) only where the
worker looks at them: the today and yesterday (UTC) directories that
recovery walks at every start, and, before each retention test, the day
about to go.  Camera cam1 has 6 real hours in day 1 ([end-7h, end-1h)):
the last of them (the export hour) is 360 real copies of the template
files (1.8 GB, distinct files), the 5 before it hard links to them (the
playlist reads each file's fragment map, not its media).

At each checkpoint (an archive of K days; the next days are then added):
  db_*            index file size, per camera-day, rows.
  start_*         a worker started on the archive (LIVE_CAMERAS fed by a
                  camsim at 640x360, 1 Mbit/s, the rest at a closed port):
                  exec -> its "mwr-worker ... instance" line, -> first
                  /health answer, -> its "ready:" line (every camera
                  recording once; 30 s if some are down).
  segments_1h_*   GET /api/segments?camera=cam1 over the export hour
                  (limit 1000: 360 rows); segments_24h_* all 9 pages of
                  cam1's day 1 (limit 1000, offset); coverage_24h_* the web
                  timeline's request for that day; playlist_1h_*,
                  playlist_6h_* the HLS playlist (6 h is the cap; 24 h is
                  refused: playlist_24h_code).  REQUESTS sequential requests
                  each, median and p95 ms, on loopback, while recording.
  export_*        mwr export of cam1's export hour with the worker running;
                  the 360 files are dropped from the page cache first
                  (posix_fadvise DONTNEED), so the input comes from disk;
                  MB/s of output.
  retention_*     (K >= 2) the oldest day's files are made, then a SIGHUP
                  sets disk.retention_days = K-1 while recording: seconds
                  until the day's rows are gone (each: its file unlinked, its
                  row and frame index deleted), rows/s, and /health asked 200
                  times a second (4 keep-alive clients) meanwhile: p50, p99,
                  max ms, failures; idle_health_* is the same load for the
                  10 s before, without retention.  The day is then written
                  back (not after the last checkpoint).
Prints key=value lines; ends with total_s.  Needs `make all`.
"""
import http.client
import json
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "build/bin/mwr-worker")
MWR = os.path.join(ROOT, "build/bin/mwr")
CAMSIM = os.path.join(ROOT, "build/tests/camsim")
N_CAMS = int(sys.argv[1]) if len(sys.argv) > 1 else 64
DAYS = int(sys.argv[2]) if len(sys.argv) > 2 else 30
CHECKPOINTS = sorted({int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "1,7,30").split(",")
                      if 0 < int(x) <= DAYS})
REQUESTS = int(os.environ.get("REQUESTS", 20))
LIVE = min(int(os.environ.get("LIVE_CAMERAS", N_CAMS)), N_CAMS)
RETENTION_MAX_S = float(os.environ.get("RETENTION_MAX_S", 180))
SEG_US = 10_000_000
DAY_US = 86400 * 1_000_000
SLOTS = DAY_US // SEG_US  # 8640 segments a camera-day
INSTANCE = "a"
N_BLOBS = 16
FRAMES, GOP, FPS_US = 250, 50, 40_000
REAL_H = 6  # hours of cam1 with real files, ending an hour before the archive's end
M64 = (1 << 64) - 1


# ---- the frame index (db/frame_index.c), encoder only ---------------------------------

class Rice:
    def __init__(self, s, c):
        self.sum, self.count = s, c

    def k(self):
        k = 0
        while k < 40 and (self.count << (k + 1)) < self.sum:
            k += 1
        return k

    def update(self, v):
        self.sum += min(v, 1 << 40)
        self.count += 1
        if self.count >= 32:
            self.sum >>= 1
            self.count >>= 1


class Bits:
    def __init__(self):
        self.acc, self.n = 0, 0

    def put(self, v, n):
        self.acc = (self.acc << n) | (v & ((1 << n) - 1))
        self.n += n

    def append(self, o):
        self.put(o.acc, o.n) if o.n else None

    def rice(self, c, v):
        k = c.k()
        q = v >> k
        if q < 24:
            self.put((1 << (q + 1)) - 2, q + 1)
            self.put(v, k)
        else:
            ln = v.bit_length()
            self.put((1 << 24) - 1, 24)
            self.put(ln, 7)
            self.put(v, ln - 1)


def zigzag(u):
    u &= M64
    return ((u << 1) ^ (M64 if u >> 63 else 0)) & M64


def fi_encode(frames):
    """frames: [(offset_us, size, key, hash12)] in decode order -> blob bytes."""
    grid = prev = count = misses = since_key = gop = 0
    frame_us, seen_key = 40_000, False
    run_ctx, time_ctx, p_ctx, key_ctx = Rice(16, 1), Rice(1024, 1), Rice(2048, 1), Rice(32768, 1)
    p_seen, size_seen_key, p_mean8, last_key = 0, False, 0, 0
    ctrl, payload = Bits(), Bits()
    run, run_has_local, run_local = 0, False, False
    for off, size, key, h in frames:
        # ctrl
        t = 0 if off == grid else 1 if (misses and off == (prev + frame_us) & M64) else 2
        kp = (count == 0) if not seen_key else (gop != 0 and since_key + 1 == gop)
        if t != 2 and key == kp:
            if run == 0:
                run_has_local, run_local = misses != 0, t == 1
            run += 1
        else:
            ctrl.rice(run_ctx, run)
            if run_has_local:
                ctrl.put(run_local, 1)
            run_ctx.update(run)
            run, run_has_local = 0, False
            ctrl.put(t != 2, 1)
            if t != 2 and misses:
                ctrl.put(t == 1, 1)
            elif t == 2:
                ctrl.put(key, 1)
                v = zigzag(off - grid) - 1
                ctrl.rice(time_ctx, v)
                time_ctx.update(v)
        step = (off - prev) & M64
        if t == 0:
            grid, misses = grid + frame_us, 0
        elif t == 1 or count == 0:
            grid, misses = off + frame_us, 0
        elif count == 1 or misses + 1 >= 3:
            if 0 < step <= 10_000_000:
                frame_us = step
            grid, misses = off + frame_us, 0
        else:
            grid, misses = grid + frame_us, misses + 1
        prev = off
        if key:
            if seen_key:
                gop = since_key + 1
            seen_key, since_key = True, 0
        else:
            since_key += 1
        count += 1
        # payload
        ctx = key_ctx if key else p_ctx
        pred = last_key if key else (p_mean8 >> 3 if p_seen else last_key >> 3)
        v = zigzag(size - pred)
        payload.rice(ctx, v)
        if (size_seen_key if key else p_seen):
            ctx.update(v)
        payload.put(h, 12)
        if key:
            last_key, size_seen_key = size, True
        elif p_seen < 8:
            p_mean8 = (p_mean8 * p_seen + (size << 3)) // (p_seen + 1)
            p_seen += 1
        else:
            p_mean8 = p_mean8 - (p_mean8 >> 3) + size
    out = Bits()
    out.put(1, 8)
    n = len(frames)
    while True:
        out.put((n & 0x7f) | (0x80 if n > 0x7f else 0), 8)
        n >>= 7
        if not n:
            break
    out.append(ctrl)
    if run:
        out.rice(run_ctx, run)
        if run_has_local:
            out.put(run_local, 1)
    out.append(payload)
    pad = (-out.n) % 8
    body = (out.acc << pad).to_bytes((out.n + pad) // 8, "big")
    return body + zlib.crc32(body).to_bytes(4, "little")


def synthetic_blobs(rng):
    blobs = []
    for _ in range(N_BLOBS):
        fr = []
        for i in range(FRAMES):
            key = i % GOP == 0
            size = int(150_000 * rng.uniform(0.9, 1.1)) if key else int(16_500 * rng.uniform(0.7, 1.3))
            fr.append((i * FPS_US, size, key, rng.getrandbits(12)))
        blobs.append((fi_encode(fr), sum(f[1] for f in fr) + 8192))
    return blobs


# ---- processes, HTTP ------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"archive_month: timed out waiting for {what}")


def pct(v, p):
    v = sorted(v)
    return v[max(0, math.ceil(p * len(v)) - 1)] if v else float("nan")


class Pacer:
    """4 keep-alive clients asking /health 200 times a second in total."""
    RATE, THREADS = 200.0, 4

    def __init__(self, port):
        self.port, self.lat, self.fail, self.on = port, [], 0, False
        self.stop = threading.Event()
        self.ts = [threading.Thread(target=self.run, args=(k,), daemon=True) for k in range(self.THREADS)]
        for t in self.ts:
            t.start()

    def run(self, k):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        period, nxt = self.THREADS / self.RATE, time.monotonic() + k / self.RATE
        while not self.stop.is_set():
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            nxt += period
            on, s = self.on, time.monotonic()
            try:
                c.request("GET", "/health")
                r = c.getresponse()
                r.read()
                ok = r.status in (200, 503)
            except Exception:
                ok = False
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            if on:
                if ok:
                    self.lat.append((time.monotonic() - s) * 1e3)
                else:
                    self.fail += 1

    def close(self):
        self.stop.set()
        for t in self.ts:
            t.join(10)


class Bench:
    def __init__(self, tmp):
        self.tmp, self.procs = tmp, []
        self.rec = os.path.join(tmp, "rec")
        self.db_path = os.path.join(tmp, "mwr.db")
        self.cfg_path = os.path.join(tmp, "mwr.json")
        self.port = free_port()
        self.closed = free_port()
        self.rng = random.Random(1)
        self.runs = 0

    # -- processes
    def camsim(self, n, extra):
        out = os.path.join(self.tmp, f"camsim{len(self.procs)}.out")
        p = subprocess.Popen([CAMSIM, "--cameras", str(n), "--port", "0", "--control-port", "0", "--gop", "50"] +
                             extra, stdout=open(out, "w"), stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait(lambda: "ready" in open(out).read(), 30, "camsim")
        return p, int(open(out).read().split("rtsp_port=")[1].split()[0])

    def stop(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def write_cfg(self, rtsp, live, retention_days=0):
        cams = [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:{rtsp if i <= live else self.closed}/cam{i}"}
                for i in range(1, N_CAMS + 1)]
        cfg = {"storage_dir": self.rec, "db_path": self.db_path, "segment_seconds": 10,
               "disk": {"retention_days": retention_days}, "cameras": cams}
        with open(self.cfg_path + ".new", "w") as f:
            json.dump(cfg, f)
        os.rename(self.cfg_path + ".new", self.cfg_path)

    def worker(self):
        self.runs += 1
        err = os.path.join(self.tmp, f"worker{self.runs}.err")
        t0 = time.monotonic()
        w = subprocess.Popen([WORKER, "--config", self.cfg_path, "--instance-id", INSTANCE, "--port", str(self.port)],
                             stdout=subprocess.DEVNULL, stderr=open(err, "w"))
        self.procs.append(w)
        return w, err, t0

    def get(self, path, timeout=120):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def db(self):
        return sqlite3.connect(self.db_path, timeout=60)

    # -- templates and schema
    def record_templates(self):
        cs, rtsp = self.camsim(1, ["--width", "1280", "--height", "720", "--bitrate", "4000"])
        self.write_cfg(rtsp, 1)
        w, err, _ = self.worker()
        con = self.db_wait()
        wait(lambda: con.execute("SELECT count(*) FROM video_segments WHERE camera_id='cam1' AND "
                                 "status='complete' AND frames >= 240").fetchone()[0] >= 4, 120,
             "four complete cam1 segments")
        con.close()
        self.stop(w)
        self.stop(cs)
        con = self.db()
        cols = [r[1] for r in con.execute("PRAGMA table_info(video_segments)")]
        rows = con.execute("SELECT * FROM video_segments WHERE camera_id='cam1' AND status='complete' AND "
                           "frames >= 240 ORDER BY start_us LIMIT 3").fetchall()
        os.makedirs(os.path.join(self.tmp, "tpl"))
        self.tpl = []
        for r in rows:
            d = dict(zip(cols, r))
            blob = con.execute("SELECT blob FROM segment_frames WHERE segment_id=?", (d["id"],)).fetchone()[0]
            path = os.path.join(self.tmp, "tpl", os.path.basename(d["path"]))
            shutil.copy(d["path"], path)
            d.update(blob=blob, file=path)
            self.tpl.append(d)
        self.cols = [c for c in cols]
        with con:
            con.execute("DELETE FROM segment_frames")
            con.execute("DELETE FROM video_segments")
            con.execute("DELETE FROM gaps")
        con.close()
        shutil.rmtree(self.rec)
        os.makedirs(self.rec)
        t = self.tpl[0]
        self.codec, self.width, self.height = t["video_codec"], t["width"], t["height"]
        self.end_us = int(time.time()) // 10 * 10 * 1_000_000
        print(f"template_segments={len(self.tpl)}")
        print(f"template_bytes_each={','.join(str(t['bytes']) for t in self.tpl)}")
        print(f"template_span_ms={','.join(str((t['end_us'] - t['start_us']) // 1000) for t in self.tpl)}")
        print(f"template_mbit_s={sum(t['bytes'] for t in self.tpl) * 8 / sum(t['end_us'] - t['start_us'] for t in self.tpl):.2f}")

    def db_wait(self):
        wait(lambda: os.path.exists(self.db_path) and sqlite3.connect(self.db_path).execute(
            "SELECT count(*) FROM sqlite_master WHERE name='segment_bytes_total'").fetchone()[0], 30, "schema")
        return self.db()

    # -- the archive
    def slot_start(self, day, j):
        """day 1 = the last 24 h before end_us; slot j = 0 .. SLOTS-1 in time order."""
        return self.end_us - day * DAY_US + j * SEG_US

    def real_region(self):
        hi = self.end_us - 3600 * 1_000_000
        return hi - REAL_H * 3600 * 1_000_000, hi  # the export hour is [hi - 1 h, hi)

    def day_rows(self, day):
        """(video_segments row, frames row, sparse-file size or None, real file or None), time order."""
        recent = {time.strftime("%Y-%m-%d", time.gmtime(time.time() - b * 86400)) for b in (0, 1)}
        rlo, rhi = self.real_region()
        cams = [f"cam{c + 1}" for c in range(N_CAMS)]
        codec, width, height, rec = self.codec, self.width, self.height, self.rec
        for j in range(SLOTS):
            gidx = (DAYS - day) * SLOTS + j  # segment number - 1, rising with time
            base = self.slot_start(day, j)
            day_date = time.strftime("%Y-%m-%d", time.gmtime(base // 1_000_000))
            num = gidx + 1
            for c in range(N_CAMS):
                cam = cams[c]
                sid = gidx * N_CAMS + c + 1
                start = base + c * 37_000  # cameras' segments do not all start together
                real = None
                if c == 0 and rlo <= base < rhi:
                    t = self.tpl[gidx % len(self.tpl)]
                    start, frames, nbytes, keys, frags, blob = (base, t["frames"], t["bytes"], t["keyframes"],
                                                                t["fragments"], t["blob"])
                    end = start + (t["end_us"] - t["start_us"])
                    real = (t["file"], base >= rhi - 3600 * 1_000_000)
                else:
                    blob, nbytes = self.blobs[(sid * 7) % N_BLOBS]
                    end, frames, keys, frags = start + SEG_US, FRAMES, FRAMES // GOP, 10
                # the date directory is the UTC date of the segment's start
                date = day_date if start // 86_400_000_000 == base // 86_400_000_000 else \
                    time.strftime("%Y-%m-%d", time.gmtime(start // 1_000_000))
                p = f"{rec}/{cam}/{date}/{cam}_{start // 1000}_{INSTANCE}_{num}.mp4"
                done = end + 400_000
                yield ((sid, cam, INSTANCE, p, num, start, end, frames, nbytes, keys, frags, "complete", "unique",
                        "rtcp", 1200, 4242, done, done, codec, width, height, ""),
                       (sid, blob), nbytes if (real is None and date in recent) else None,
                       (p, real) if real else None)

    def load_pragmas(self, con):
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-1048576")
        con.execute("PRAGMA temp_store=MEMORY")

    def write_day(self, con, day, ignore=False):
        seg, fr, files, real = [], [], [], []
        for r, f, sparse, rl in self.day_rows(day):
            seg.append(r)
            fr.append(f)
            if sparse is not None:
                files.append((r[3], sparse))
            if rl:
                real.append(rl)
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        con.execute("BEGIN")
        con.executemany(f"{verb} INTO video_segments(id, camera_id, instance_id, path, segment_num, start_us, "
                        "end_us, frames, bytes, keyframes, fragments, status, overlap_status, time_source, "
                        "clock_offset_us, pid, created_us, updated_us, video_codec, width, height, audio_codec) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", seg)
        con.executemany(f"{verb} INTO segment_frames(segment_id, blob) VALUES (?, ?)", fr)
        con.execute("COMMIT")
        if not ignore:
            self.sparse(files)
            for p, (src, copy) in real:
                os.makedirs(os.path.dirname(p), exist_ok=True)
                if copy:
                    shutil.copyfile(src, p)
                    self.export_files.append(p)
                else:
                    os.link(src, p)
        return len(seg)

    def sparse(self, files):
        made = set()
        for p, size in files:
            d = os.path.dirname(p)
            if d not in made:
                os.makedirs(d, exist_ok=True)
                made.add(d)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o640)
            os.ftruncate(fd, size)
            os.close(fd)


# ---- one checkpoint --------------------------------------------------------------------

def timed(b, path, n):
    ms, body, code = [], b"", 0
    for _ in range(n):
        t0 = time.perf_counter()
        code, body = b.get(path)
        ms.append((time.perf_counter() - t0) * 1e3)
    return ms, code, body


def report(k, name, ms):
    print(f"day{k}_{name}_ms_median={statistics.median(ms):.1f}")
    print(f"day{k}_{name}_ms_p95={pct(ms, 0.95):.1f}")


def measure(b, k):
    con = b.db()
    rows = con.execute("SELECT count(*) FROM video_segments").fetchone()[0]
    con.close()
    size = os.path.getsize(b.db_path)
    print(f"day{k}_db_rows={rows}")
    print(f"day{k}_db_bytes={size}")
    print(f"day{k}_db_bytes_per_camera_day={size / (N_CAMS * k):.0f}")
    print(f"day{k}_db_bytes_per_segment={size / rows:.0f}")

    cs, rtsp = b.camsim(LIVE, [])
    b.write_cfg(rtsp, LIVE)
    w, err, t0 = b.worker()
    t_line = t_health = t_ready = None
    while time.monotonic() - t0 < 120 and (t_line is None or t_health is None or t_ready is None):
        if w.poll() is not None:
            raise SystemExit(f"archive_month: worker exited {w.returncode}: {open(err).read()[-2000:]}")
        text = open(err).read()
        now = time.monotonic()
        if t_line is None and "mwr-worker " in text and " instance " in text:
            t_line = now - t0
        if t_ready is None and "<5>ready:" in text:
            t_ready = now - t0
        if t_health is None:
            try:
                c = socket.create_connection(("127.0.0.1", b.port), timeout=0.5)
                c.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                if c.recv(16).startswith(b"HTTP/"):
                    t_health = time.monotonic() - t0
                c.close()
            except OSError:
                pass
        time.sleep(0.005)
    print(f"day{k}_start_log_line_s={t_line:.3f}")
    print(f"day{k}_start_health_s={t_health:.3f}")
    print(f"day{k}_start_ready_s={t_ready:.3f}" if t_ready else f"day{k}_start_ready_s=nan")

    rlo, rhi = b.real_region()
    h0, h1 = (rhi - 3600 * 1_000_000) / 1e6, rhi / 1e6
    d0, d1 = (b.end_us - DAY_US) / 1e6, b.end_us / 1e6
    ms, code, body = timed(b, f"/api/segments?camera=cam1&from={h0}&to={h1}&limit=1000", REQUESTS)
    assert code == 200 and len(json.loads(body)) >= 360, (code, body[:200])
    report(k, "segments_1h", ms)
    ms, pages = [], 0
    for _ in range(REQUESTS):
        t = time.perf_counter()
        pages = 0
        for off in range(0, 100_000, 1000):
            code, body = b.get(f"/api/segments?camera=cam1&from={d0}&to={d1}&limit=1000&offset={off}")
            pages += 1
            if len(json.loads(body)) < 1000:
                break
        ms.append((time.perf_counter() - t) * 1e3)
    print(f"day{k}_segments_24h_pages={pages}")
    report(k, "segments_24h", ms)
    ms, code, body = timed(b, f"/api/cameras/cam1/coverage?from={d0}&to={d1}", REQUESTS)
    assert code == 200, (code, body[:200])
    print(f"day{k}_coverage_24h_segments={json.loads(body)['segments']}")
    report(k, "coverage_24h", ms)
    ms, code, body = timed(b, f"/api/cameras/cam1/playlist.m3u8?from={h0}&to={h1}", REQUESTS)
    assert code == 200, (code, body[:300])
    print(f"day{k}_playlist_1h_fragments={body.count(b'#EXTINF')}")
    report(k, "playlist_1h", ms)
    ms, code, body = timed(b, f"/api/cameras/cam1/playlist.m3u8?from={rlo / 1e6}&to={h1}", REQUESTS)
    assert code == 200, (code, body[:300])
    print(f"day{k}_playlist_6h_fragments={body.count(b'#EXTINF')}")
    report(k, "playlist_6h", ms)
    code, _ = b.get(f"/api/cameras/cam1/playlist.m3u8?from={d0}&to={d1}")
    print(f"day{k}_playlist_24h_code={code}")

    for p in b.export_files:
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    out = os.path.join(b.tmp, "export.mp4")
    t = time.perf_counter()
    r = subprocess.run([MWR, "export", "--config", b.cfg_path, "--camera", "cam1", "--from", str(h0), "--to", str(h1),
                        "-o", out, "--quiet"], capture_output=True, text=True)
    took = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"archive_month: export failed: {r.stderr[-2000:]}")
    ob = os.path.getsize(out)
    ib = sum(os.path.getsize(p) for p in b.export_files)
    os.unlink(out)
    print(f"day{k}_export_s={took:.2f}")
    print(f"day{k}_export_bytes={ob}")
    print(f"day{k}_export_mb_s={ob / took / 1e6:.1f}")
    print(f"day{k}_export_input_mb_s={ib / took / 1e6:.1f}")

    if k >= 2:
        lo, hi = b.end_us - k * DAY_US, b.end_us - (k - 1) * DAY_US
        files = [(r[3], r[8]) for r, _, _, _ in b.day_rows(k)]
        b.sparse(files)
        con = b.db()

        def left():
            return con.execute("SELECT count(*) FROM video_segments WHERE start_us < ?", (hi - SEG_US,)).fetchone()[0]
        n0 = left()
        before = con.execute("SELECT count(*) FROM video_segments").fetchone()[0]
        pacer = Pacer(b.port)
        time.sleep(1)
        pacer.on = True  # the same load without retention: what the machine costs /health
        time.sleep(10)
        pacer.on = False
        idle, idle_fail = pacer.lat, pacer.fail
        pacer.lat, pacer.fail = [], 0
        print(f"day{k}_idle_health_requests={len(idle)}")
        print(f"day{k}_idle_health_p50_ms={pct(idle, .5):.2f}")
        print(f"day{k}_idle_health_p99_ms={pct(idle, .99):.2f}")
        print(f"day{k}_idle_health_max_ms={max(idle):.2f}")
        print(f"day{k}_idle_health_failures={idle_fail}")
        b.write_cfg(rtsp, LIVE, retention_days=k - 1)
        pacer.on = True
        t = time.monotonic()
        w.send_signal(signal.SIGHUP)
        while (n_left := left()) > 0 and time.monotonic() - t < RETENTION_MAX_S:
            time.sleep(0.2)
        took = time.monotonic() - t
        pacer.on = False
        pacer.close()
        gone = before - con.execute("SELECT count(*) FROM video_segments").fetchone()[0]
        con.close()
        print(f"day{k}_retention_day_rows={n0}")
        print(f"day{k}_retention_s={took:.1f}")
        print(f"day{k}_retention_rows_left={n_left}")
        print(f"day{k}_retention_rows_s={(n0 - n_left) / took:.0f}")
        print(f"day{k}_retention_rows_deleted={gone}")
        print(f"day{k}_retention_health_requests={len(pacer.lat)}")
        print(f"day{k}_retention_health_p50_ms={pct(pacer.lat, .5):.2f}")
        print(f"day{k}_retention_health_p99_ms={pct(pacer.lat, .99):.2f}")
        print(f"day{k}_retention_health_max_ms={max(pacer.lat):.2f}")
        print(f"day{k}_retention_health_failures={pacer.fail}")
    b.stop(w)
    b.stop(cs)
    if 2 <= k < CHECKPOINTS[-1]:  # the day (and what aged past the boundary since) back: the archive keeps K days
        con = b.db()
        b.load_pragmas(con)
        b.write_day(con, k, ignore=True)
        b.write_day(con, k - 1, ignore=True)
        con.execute("PRAGMA journal_mode=WAL")
        con.close()
    sys.stdout.flush()


def main():
    t_all = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="mwr-archive-")
    b = Bench(tmp)
    try:
        print(f"command=tests/bench/archive_month.py {N_CAMS} {DAYS} {','.join(map(str, CHECKPOINTS))}")
        print(f"cameras={N_CAMS}")
        print(f"live_cameras={LIVE}")
        b.record_templates()
        b.blobs = synthetic_blobs(b.rng)
        print(f"frame_index_blob_bytes_mean={statistics.mean(len(x[0]) for x in b.blobs):.0f}")
        print(f"synthetic_segment_bytes_mean={statistics.mean(x[1] for x in b.blobs):.0f}")
        b.export_files = []
        built = 0
        for k in CHECKPOINTS:
            t = time.monotonic()
            con = b.db()
            b.load_pragmas(con)
            n = 0
            for day in range(built + 1, k + 1):
                n += b.write_day(con, day)
            con.execute("PRAGMA journal_mode=WAL")
            con.close()
            took = time.monotonic() - t
            print(f"day{k}_build_rows={n}")
            print(f"day{k}_build_s={took:.1f}")
            print(f"day{k}_build_rows_s={n / took:.0f}")
            sys.stdout.flush()
            built = k
            measure(b, k)
        print(f"total_s={time.monotonic() - t_all:.0f}")
    finally:
        for p in b.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("KEEP"):
            print(f"kept={tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
