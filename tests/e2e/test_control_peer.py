"""The control socket asks the kernel who is calling (SO_PEERCRED): deploy,
rollback and upgrade start a program as the service user, so only that user
or root may ask for them.  A member of the socket's group who is another
user (here: nobody, with the socket's group) reads status and metrics but is
refused the rest, with a message that names both uids, a non-zero exit, a
warning in the supervisor's log, and no deploy started."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import wait_for
from test_supervisor import SUPERVISOR, active_slot, start_supervisor, status, sup_config

NOBODY = 65534


@pytest.fixture
def shared_dir():
    """A directory the socket's group can enter (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="mwr-peer-")
    os.chmod(d, 0o750)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_other_user(cfg_path, *args):
    """mwr-supervisor as uid nobody in the socket's group (gid of the daemon),
    from a copy nobody can run wherever the build tree is."""
    client = os.path.join(os.path.dirname(cfg_path), "mwr-supervisor")
    if not os.path.exists(client):
        shutil.copy(SUPERVISOR, client)
        os.chmod(client, 0o755)
    return subprocess.run([client, *args, "--config", cfg_path], capture_output=True, timeout=20,
                          user=NOBODY, group=os.getegid(), extra_groups=[])


def slots(st):
    return [(s["slot"], s["state"], s["pid"], s["binary"]) for s in st["slots"]]


@pytest.mark.skipif(os.geteuid() != 0, reason="running a client as another uid needs root")
def test_only_the_service_user_or_root_may_deploy(procs, camsim, shared_dir):
    cs = camsim(cameras=1)
    cfg_path, cfg = sup_config(shared_dir, cs, cameras=1)
    os.chmod(cfg_path, 0o640)
    sup = start_supervisor(procs, cfg_path)
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker ready")
    procs.track_pid(a["pid"])
    before = status(cfg_path)

    # reading is allowed: the socket's mode decides who may connect at all
    r = as_other_user(cfg_path, "status")
    assert r.returncode == 0, r.stdout + r.stderr
    r = as_other_user(cfg_path, "metrics")
    assert r.returncode == 0 and b"mwr_supervisor_" in r.stdout, r.stdout + r.stderr

    uid = os.geteuid()
    client = os.path.join(shared_dir, "mwr-supervisor")
    for cmd in (["deploy"], ["rollback"], ["upgrade", "--binary", client]):
        r = as_other_user(cfg_path, *cmd)
        out = (r.stdout + r.stderr).decode()
        want = f"{cmd[0]} refused: uid {NOBODY} is neither the service user (uid {uid}) nor root"
        assert r.returncode != 0 and want in out, out

    log = wait_for(lambda: (t := open(sup.err_path).read()).count("refused: uid") >= 3 and t, 10,
                   "the refusals in the supervisor's log")
    assert f"control socket: deploy refused: uid {NOBODY}" in log, log
    after = status(cfg_path)
    assert slots(after) == slots(before), (before, after)  # same worker, same pid: nothing ran
    assert after.get("deploys") == before.get("deploys"), (before, after)
