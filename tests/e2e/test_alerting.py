"""Alerting that Prometheus understands: the rules in docs/prometheus-alerts.yml
load and fire on sample series (tests/prometheus/alerts_test.yml), a live
worker's and supervisor's /metrics pass `promtool check metrics` without a
lint line, and every metric name the rules and docs/grafana-dashboard.json
use is one those endpoints expose.  promtool (Debian's `prometheus`, listed
in scripts/install-deps.sh) missing is a failure, not a skip."""
import json
import os
import re
import shutil
import subprocess
import urllib.request

import pytest

from conftest import ROOT, wait_for
from test_deploy import deploy, script, start_haproxy
from test_supervisor import SUPERVISOR, active_slot, start_supervisor, sup_config
from test_worker_records import FPS, WORKER

RULES = os.path.join(ROOT, "docs", "prometheus-alerts.yml")
RULES_TEST = os.path.join(ROOT, "tests", "prometheus", "alerts_test.yml")
DASHBOARD = os.path.join(ROOT, "docs", "grafana-dashboard.json")


def promtool(*args, stdin=None):
    """Runs promtool; returns (exit code, stdout + stderr)."""
    exe = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(exe, os.X_OK):
        pytest.fail("promtool not found: install Debian's prometheus package (scripts/install-deps.sh)")
    r = subprocess.run([exe, *args], input=stdin, capture_output=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).decode()


# ---- PromQL: the metric names an expression reads ------------------------------------

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "offset", "inf", "nan",
            # aggregation operators: `sum by (x) (...)` has no "(" right after the name
            "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
            "quantile"}


def expr_metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    e = re.sub(r"\$\{?\w+\}?", "", e)  # Grafana variables ($camera, $__rate_interval)
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)  # label lists
    e = re.sub(r"\boffset\s+-?\w+", "", e)
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?\w*", "", e)  # numbers, durations
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if m.group(0).lower() in KEYWORDS or e[m.end():].lstrip().startswith("("):
            continue  # a keyword or a function
        names.add(m.group(0))
    return names


def dashboard_exprs(node):
    """Every target expression of the dashboard (rows' panels too) and the
    metric of each label_values() variable query."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                out.append(v)
            elif k == "query" and isinstance(v, (str, dict)):
                q = v if isinstance(v, str) else v.get("query", "")
                m = re.match(r"\s*label_values\(\s*([^,)]+),", q or "")
                if m:
                    out.append(m.group(1))
                elif (q or "").startswith("query_result("):
                    out.append(q[len("query_result("):-1])
            else:
                out += dashboard_exprs(v)
    elif isinstance(node, list):
        for v in node:
            out += dashboard_exprs(v)
    return out


def rule_exprs(path):
    """The expr: of each rule (plain scalars and block scalars, as the file is written)."""
    lines = open(path).read().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        if m:
            indent, v = len(m.group(1)), m.group(2).strip()
            if v in ("", "|", "|-", ">", ">-"):
                block = []
                while i + 1 < len(lines) and (not lines[i + 1].strip() or
                                              len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent):
                    i += 1
                    block.append(lines[i].strip())
                v = " ".join(block)
            out.append(v.strip("'\""))
        i += 1
    return out


def exposed_names(text):
    """Metric names of the samples in a text exposition, and the base name of
    each summary or histogram (its _sum/_count/_bucket series)."""
    samples = {m.group(1) for m in re.finditer(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", text, re.M)}
    for m in re.finditer(r"^# TYPE (\S+) (summary|histogram)$", text, re.M):
        if any(m.group(1) + suffix in samples for suffix in ("_sum", "_count", "_bucket")):
            samples.add(m.group(1))
    return samples


def test_expression_parser_finds_metric_names_only():
    e = ('sum by (camera) (rate(mwr_a_total{camera=~"$camera"}[5m])) / on (job) group_left(x) '
         'mwr_b offset 1h > 1e6 and histogram_quantile(0.9, mwr_c_bucket[$__rate_interval]) '
         'or max without (slot) (mwr_d == bool 1)')
    assert expr_metric_names(e) == {"mwr_a_total", "mwr_b", "mwr_c_bucket", "mwr_d"}


# ---- the rules ----------------------------------------------------------------------

def test_alert_rules_load():
    rc, out = promtool("check", "rules", RULES)
    assert rc == 0, out
    assert "SUCCESS" in out, out


def test_alert_rules_fire_on_sample_series():
    rc, out = promtool("test", "rules", RULES_TEST)
    assert rc == 0, out
    # every alert of the rules file is expected to fire at least once there
    alerts = re.findall(r"^\s*- alert:\s*(\S+)", open(RULES).read(), re.M)
    tests = open(RULES_TEST).read()
    assert len(alerts) >= 6, alerts
    for name in alerts:
        assert re.search(rf"alertname: {name}\s*\n\s*exp_alerts:\s*\n\s*- exp_labels:", tests), \
            f"{name} never fires in {RULES_TEST}"
        assert re.search(rf"alertname: {name}\s*\n\s*exp_alerts: \[\]", tests), \
            f"{name} is never shown silent in {RULES_TEST}"


# ---- a live worker and supervisor ---------------------------------------------------

def http_text(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode() if r.status == 200 else None
    except OSError:
        return None


def supervisor_metrics(cfg_path):
    r = subprocess.run([SUPERVISOR, "metrics", "--config", cfg_path], capture_output=True, timeout=10)
    return r.stdout.decode() if r.returncode == 0 else None


def test_live_metrics_are_lint_clean_and_have_every_name_rules_and_dashboard_use(procs, camsim, tmp_path):
    tmp = str(tmp_path)
    cs = camsim(cameras=2, gop=FPS)
    cfg_path, cfg = sup_config(tmp, cs, 2)
    start_haproxy(procs, tmp, cfg_path, cfg)
    start_supervisor(procs, cfg_path)
    a = wait_for(lambda: (s := active_slot(cfg_path)) and s["state"] == "ready" and s, 30, "worker a ready")
    procs.track_pid(a["pid"])
    worker_url = f"http://127.0.0.1:{cfg['worker']['ports'][0]}/metrics"
    recording = ('mwr_camera_recording{camera="cam1"} 1', 'mwr_camera_recording{camera="cam2"} 1')
    wait_for(lambda: (t := http_text(worker_url)) and all(r in t for r in recording), 30, "both cameras recording")
    # a deploy of a binary that exits at once fails fast and rolls back; the
    # supervisor then also has the series it shows only after a deploy
    passthru = f'case "$*" in *--version*|*--check-config*) exec {WORKER} "$@";; esac\n'
    bad = script(tmp, "bad-worker", passthru + "echo 'cannot start' >&2; exit 3\n")
    rc, out = deploy(cfg_path, "--binary", bad, "--overlap", "1", "--health-timeout", "5", timeout=60)
    assert rc == 1, out
    sup_cli = wait_for(lambda: (t := supervisor_metrics(cfg_path)) and "mwr_supervisor_last_deploy_ok 0\n" in t and t,
                       10, "the failed deploy in `mwr-supervisor metrics`")
    sup_url = f"http://127.0.0.1:{cfg['supervisor']['metrics_port']}/metrics"
    sup_http = wait_for(lambda: (t := http_text(sup_url)) and "mwr_supervisor_last_deploy_ok 0\n" in t and t,
                        10, "the failed deploy in the supervisor's GET /metrics")
    worker = http_text(worker_url)
    assert worker and all(r in worker for r in recording), worker
    for what, text in (("worker GET /metrics", worker), ("mwr-supervisor metrics", sup_cli),
                       ("supervisor GET /metrics", sup_http)):
        rc, out = promtool("check", "metrics", stdin=text.encode())
        assert rc == 0 and out.strip() == "", f"{what}: promtool check metrics exit {rc}:\n{out}"

    exposed = exposed_names(worker) | exposed_names(sup_cli)
    dashboard = set()
    for e in dashboard_exprs(json.load(open(DASHBOARD))):
        dashboard |= expr_metric_names(e)
    assert len(dashboard) >= 10, dashboard
    assert not dashboard - exposed, f"dashboard names no live endpoint exposes: {sorted(dashboard - exposed)}"
    rules = set()
    for e in rule_exprs(RULES):
        rules |= expr_metric_names(e)
    assert len(rules) >= 6, rules
    assert not rules - exposed, f"alert rules name metrics no live endpoint exposes: {sorted(rules - exposed)}"
