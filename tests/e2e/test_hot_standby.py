"""supervisor.standby "hot": both slots record every camera all the time,
haproxy sends to the active one.  A crash of the active (SIGKILL, a watchdog
kill) moves the traffic to the standby at once and loses no frame, because
the standby's copy covers the hole; the dead slot comes back as the standby.
A deploy replaces the standby first, then the old active; a SIGKILLed
supervisor adopts both."""
import datetime
import json
import os
import signal
import subprocess
import time
import urllib.request

from conftest import wait_for
from test_deploy import Client, admin_states, MAINT, DRAIN, deploy, judge_exports, start_haproxy
from test_supervisor import SUPERVISOR, alive, healthy, start_supervisor, status, sup_config
from test_worker_records import FPS, recording_frames, rows

CAMERAS = 4


def hot_config(tmp, cs, cameras=CAMERAS, **supervisor):
    cfg_path, cfg = sup_config(tmp, cs, cameras)
    cfg["supervisor"]["standby"] = "hot"
    cfg["supervisor"].update(supervisor)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    return cfg_path, cfg


def slots(cfg_path):
    st = status(cfg_path)
    return {s["role"]: s for s in st["slots"]} if st else {}


def both_ready(cfg_path, not_pids=()):
    """{role: slot} once the active and the standby both record (neither pid in not_pids)."""
    s = slots(cfg_path)
    if all(r in s and s[r]["state"] == "ready" and s[r]["pid"] > 0 and s[r]["pid"] not in not_pids
           for r in ("active", "standby")):
        return s
    return None


def setup_hot(procs, camsim, tmp_path, env=None, **supervisor):
    cs = camsim(cameras=CAMERAS, gop=FPS)
    cfg_path, cfg = hot_config(str(tmp_path), cs, **supervisor)
    start_haproxy(procs, str(tmp_path), cfg_path, cfg)
    sup = procs.start("supervisor", [SUPERVISOR, "run", "--config", cfg_path], env=dict(os.environ, **(env or {})))
    s = wait_for(lambda: both_ready(cfg_path), 40, "active and standby ready")
    for r in s.values():
        procs.track_pid(r["pid"])
    wait_for(recording_frames(cfg, 2 * FPS), 30, "recording")
    wait_for(lambda: healthy(cfg["haproxy"]["frontend_port"]), 15, "healthy through haproxy")
    return cfg_path, cfg, sup, s


def slow_client(cfg):
    """/health through the frontend at about 20 requests a second."""
    return Client(cfg["haproxy"]["frontend_port"], every=0.05)


def metric(cfg_path, name):
    text = subprocess.run([SUPERVISOR, "metrics", "--config", cfg_path], capture_output=True,
                          timeout=10).stdout.decode()
    return float(next(l.split()[1] for l in text.splitlines() if l.startswith(name + " ")))


def kill_active_and_wait(procs, cfg_path, cfg, sig=signal.SIGKILL):
    before = slots(cfg_path)
    dead, standby = before["active"], before["standby"]
    if sig:
        os.kill(dead["pid"], sig)
    # the standby takes the traffic, and the dead slot records again as the standby
    after = wait_for(lambda: (s := both_ready(cfg_path, not_pids=(dead["pid"],))) and
                     s["active"]["slot"] == standby["slot"] and s, 60, "failover and the standby back")
    procs.track_pid(after["standby"]["pid"])
    states = admin_states(cfg)
    assert states[standby["slot"]] & (MAINT | DRAIN) == 0 and states[dead["slot"]] & MAINT, states
    assert not alive(dead["pid"])
    return after


def test_sigkill_of_the_active_twice_loses_no_frame(procs, camsim, tmp_path):
    cfg_path, cfg, sup, s = setup_hot(procs, camsim, tmp_path)
    assert s["active"]["slot"] == "a" and s["standby"]["slot"] == "b", s
    st = status(cfg_path)
    assert st["standby"] == "hot" and st["failovers"] == 0, st
    client = slow_client(cfg)
    client.start()
    t0 = time.time()
    time.sleep(2)
    k1 = time.monotonic()
    kill_active_and_wait(procs, cfg_path, cfg)
    time.sleep(max(0.0, 12 - (time.monotonic() - k1)))
    s = kill_active_and_wait(procs, cfg_path, cfg)
    assert s["active"]["slot"] == "a", s
    time.sleep(3)
    client.stop.set()
    client.join(10)
    t1 = time.time()
    assert client.failed <= 2 and client.ok > 200, (client.failed, client.ok, client.errors[:5])
    st = status(cfg_path)
    assert st["failovers"] == 2, st
    assert metric(cfg_path, "mwr_supervisor_failovers_total") == 2
    took = metric(cfg_path, "mwr_supervisor_last_failover_seconds")
    assert 0 < took < 1, took
    log = open(sup.err_path).read()
    assert log.count("failover: worker") == 2, log[-3000:]
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, t1 - 1)
    os.kill(sup.pid, signal.SIGTERM)
    assert sup.wait(timeout=30) == 0


def test_a_hung_active_is_killed_by_the_watchdog_and_loses_no_frame(procs, camsim, tmp_path):
    """cam1's recorder hangs in slot a only (test hook): a stops pinging, the
    supervisor kills it after 10 s and b, which recorded cam1 throughout,
    takes the traffic."""
    cfg_path, cfg, sup, s = setup_hot(procs, camsim, tmp_path,
                                      env={"MWR_TEST_STALL_CAMERA": "cam1", "MWR_TEST_STALL_INSTANCE": "a"})
    t0 = time.time()
    dead = s["active"]
    wait_for(lambda: (x := slots(cfg_path)) and x["active"]["slot"] == "b" and x, 40, "hung a replaced by b")
    assert not alive(dead["pid"])
    wait_for(lambda: both_ready(cfg_path, not_pids=(dead["pid"],)), 40, "a back as the standby")
    for r in slots(cfg_path).values():
        procs.track_pid(r["pid"])
    time.sleep(2)
    t1 = time.time()
    log = open(sup.err_path).read()
    assert "sent nothing for" in log and "failover: worker a" in log, log[-3000:]
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, t1 - 1)


def test_hot_deploy_loses_nothing_and_leaves_both_slots_on_the_new_binary(procs, camsim, tmp_path):
    cfg_path, cfg, sup, s = setup_hot(procs, camsim, tmp_path)
    new_bin = os.path.join(str(tmp_path), "mwr-worker-2")
    os.symlink(cfg["worker"]["binary"], new_bin)  # another path: the binary each slot runs is visible
    client = slow_client(cfg)
    client.start()
    t0 = time.time()
    time.sleep(1)
    rc, out = deploy(cfg_path, "--binary", new_bin, "--overlap", "3")
    assert rc == 0, out
    assert "stopping standby b" in out and "ok: slot b" in out, out
    after = wait_for(lambda: (x := both_ready(cfg_path, not_pids=(s["active"]["pid"], s["standby"]["pid"])))
                     and x, 40, "both slots on new workers")
    for r in after.values():
        procs.track_pid(r["pid"])
    assert after["active"]["slot"] == "b" and after["active"]["binary"] == new_bin, after
    assert after["standby"]["binary"] == new_bin, after
    time.sleep(2)
    client.stop.set()
    client.join(10)
    t1 = time.time()
    assert client.failed == 0, (client.failed, client.errors[:5])
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, t1 - 1)
    # rollback goes back to what the deploy replaced, in the same two steps
    r = subprocess.run([SUPERVISOR, "rollback", "--config", cfg_path], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    back = wait_for(lambda: (x := both_ready(cfg_path, not_pids=[p["pid"] for p in after.values()])) and x, 40,
                    "both slots rolled back")
    for r in back.values():
        procs.track_pid(r["pid"])
    assert back["active"]["binary"] == cfg["worker"]["binary"] == back["standby"]["binary"], back


def test_sigkill_of_the_supervisor_adopts_both_and_loses_nothing(procs, camsim, tmp_path):
    cfg_path, cfg, sup, s = setup_hot(procs, camsim, tmp_path)
    t0 = time.time()
    os.kill(sup.pid, signal.SIGKILL)
    sup.wait(timeout=10)
    sup2 = start_supervisor(procs, cfg_path, name="supervisor-2")
    again = wait_for(lambda: both_ready(cfg_path), 20, "both adopted")
    assert {r: again[r]["pid"] for r in again} == {r: s[r]["pid"] for r in s}, (s, again)
    assert again["active"]["adopted"] and again["standby"]["adopted"], again
    # an adopted active that dies still fails over to the adopted standby
    kill_active_and_wait(procs, cfg_path, cfg)
    time.sleep(2)
    t1 = time.time()
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, t1 - 1)
    os.kill(sup2.pid, signal.SIGTERM)
    assert sup2.wait(timeout=30) == 0


def served_by(port):
    """instance_id of the worker that answers /health through the frontend, or None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return json.loads(r.read()).get("instance_id") if r.status == 200 else None
    except Exception:
        return None


def test_haproxy_fails_over_by_itself_while_no_supervisor_runs(procs, camsim, tmp_path):
    """haproxy's own checks are the backstop: with the supervisor gone, a
    SIGKILL of the active moves the traffic to the standby within a few
    seconds (the backup servers), and a supervisor started later adopts the
    standby as the active.  Nothing is lost."""
    cfg_path, cfg, sup, s = setup_hot(procs, camsim, tmp_path)
    port = cfg["haproxy"]["frontend_port"]
    # at start the active's checks may still be failing while the standby's backup passes
    wait_for(lambda: served_by(port) == s["active"]["slot"], 10, "the active serving")
    t0 = time.time()
    os.kill(sup.pid, signal.SIGKILL)
    sup.wait(timeout=10)
    time.sleep(1)
    os.kill(s["active"]["pid"], signal.SIGKILL)
    k = time.monotonic()
    wait_for(lambda: served_by(port) == s["standby"]["slot"], 10, "haproxy sending to the standby by itself")
    took = time.monotonic() - k
    assert took < 5, took
    assert set(admin_states(cfg)) >= {"a_backstop", "b_backstop"}
    time.sleep(2)
    sup2 = start_supervisor(procs, cfg_path, name="supervisor-2")
    after = wait_for(lambda: both_ready(cfg_path, not_pids=(s["active"]["pid"],)), 40, "adopted standby active")
    procs.track_pid(after["standby"]["pid"])
    assert after["active"]["slot"] == s["standby"]["slot"] and after["active"]["pid"] == s["standby"]["pid"], after
    assert served_by(port) == s["standby"]["slot"]
    time.sleep(2)
    t1 = time.time()
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, t1 - 1)
    os.kill(sup2.pid, signal.SIGTERM)
    assert sup2.wait(timeout=30) == 0


def overlap_s(segs):
    """Seconds both instances hold, summed over a camera's segments."""
    a = [(x["start_us"], x["end_us"]) for x in segs if x["instance_id"] == "a"]
    b = [(x["start_us"], x["end_us"]) for x in segs if x["instance_id"] == "b"]
    return sum(max(0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b) / 1e6


def test_standby_retention_keeps_one_copy_of_old_footage(procs, camsim, tmp_path):
    """standby_retention_seconds 20: footage older than that keeps one copy
    (rows and files of the other deleted by `mwr dedup --delete` from the
    supervisor), newer footage keeps both, and a failover's hole in one copy
    keeps the other copy's segments: the export is every frame once."""
    cfg_path, cfg, sup, s = setup_hot(procs, camsim, tmp_path, standby_retention_seconds=20)
    t0 = time.time()
    time.sleep(4)
    kill_active_and_wait(procs, cfg_path, cfg)
    def judged_past(t):
        r = (status(cfg_path) or {}).get("standby_retention") or {}
        before = r.get("one_copy_before")
        return before and datetime.datetime.fromisoformat(before).timestamp() > t and r

    done = wait_for(lambda: judged_past(t0 + 25), 90, "the first 25 s deduplicated")
    assert done["deleted_segments"] >= 2 * CAMERAS, done
    assert done["failures"] == 0 and done["seconds"] == 20, done
    st = status(cfg_path)["standby_retention"]
    assert metric(cfg_path, "mwr_supervisor_standby_retention_deleted_segments_total") >= st["deleted_segments"]
    os.kill(sup.pid, signal.SIGTERM)
    assert sup.wait(timeout=30) == 0
    t1 = time.time()
    judge_exports(str(tmp_path), cfg_path, cfg, t0 - 3, t1 - 1)
    log = open(sup.err_path).read()
    assert "standby retention: one copy kept of everything recorded before" in log, log[-3000:]
    cut_us = min(r["end_us"] for r in rows(cfg, "SELECT MAX(end_us) AS end_us FROM video_segments "
                                            "GROUP BY camera_id")) - 20_000_000 - 8_000_000
    for cam in cfg["cameras"]:
        segs = rows(cfg, "SELECT * FROM video_segments WHERE camera_id = ? ORDER BY start_us", cam["id"])
        old = [x for x in segs if x["end_us"] < t0 * 1e6 + 20e6]
        new = [x for x in segs if x["start_us"] > cut_us]
        # old: at most the segments around a switch of copies (the failover) are held twice
        assert overlap_s(old) < 3 * cfg["segment_seconds"], (cam["id"], overlap_s(old), old)
        assert {x["instance_id"] for x in new} == {"a", "b"}, (cam["id"], new)
    on_disk = {os.path.join(d, f) for d, _, fs in os.walk(cfg["storage_dir"]) for f in fs}
    indexed = {x["path"] for x in rows(cfg, "SELECT path FROM video_segments")}
    assert on_disk == indexed, (sorted(on_disk - indexed)[:5], sorted(indexed - on_disk)[:5])
