"""Production health checked continuously (`mrc alerts run`, and each run of `mrc watch`), not only
when someone runs `mrc alerts flush`: a breach that starts while the loop runs is posted to a real
Alertmanager and read back from /api/v2/alerts, resolved when production recovers, and the loop
outlives a metrics backend that raises. Real model servers, router, load and request log
(tests/support/canary.py fixtures); rounds are driven by count and a fixed clock, never by sleeps."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.support.alerts import wait_for
from tests.support.alerts import audit, configure
from tests.support.canary import MODEL, STABLE
from tests.support.processes import kill_group
from tests.support.cli import REPO, mrc_env, run_mrc, tree_digest

pytestmark = pytest.mark.integration


def _cursor(ws, receiver: str = "alertmanager"):
    """The receiver's delivery cursor: set by the first round of a loop (nothing written before)."""
    with sqlite3.connect(ws / "mrc.db") as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'alert_cursors'").fetchone():
            return None
        row = conn.execute("SELECT seq FROM alert_cursors WHERE receiver = ?", (receiver,)).fetchone()
    return row[0] if row else None


def _drill(ws, *args: str) -> None:
    result = run_mrc("drill", MODEL, STABLE, *args, "--workspace", str(ws))
    assert result.returncode == 0, result.stderr


def test_a_breach_that_starts_while_alerts_run_loops_fires_then_resolves_and_sigterm_stops_it(
        served_ws, load, alertmanager):
    run = configure(served_ws, alertmanager.url, health_window_s=2, min_requests=20, max_error_rate=0.05)
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "alerts", "run", "--interval", "0.5", "--json",
                             "--workspace", str(served_ws)], cwd=str(REPO), env=mrc_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # the loop has done a round (its cursor is set) on a healthy production: nothing fired
        wait_for(lambda: _cursor(served_ws) is not None, timeout=120, what="the loop's first round")
        assert alertmanager.alerts(run=run, alertname="ProductionErrorRateHigh") == []
        assert proc.poll() is None

        _drill(served_ws, "--error-rate", "0.5")  # production starts failing half its requests
        [alert] = wait_for(lambda: alertmanager.alerts(run=run, alertname="ProductionErrorRateHigh"), timeout=120,
                           what="ProductionErrorRateHigh in Alertmanager, with no flush run")
        assert alert["labels"] == {"alertname": "ProductionErrorRateHigh", "model": MODEL, "version": STABLE,
                                   "severity": "critical", "run": run}
        assert alert["status"]["state"] == "active"

        _drill(served_ws, "--off")  # production recovers: the loop resolves it
        wait_for(lambda: alertmanager.alerts(run=run, alertname="ProductionErrorRateHigh") == [], timeout=120,
                 what="ProductionErrorRateHigh resolved")
        wait_for(lambda: [e for e in audit(served_ws) if e["action"] == "health.recovered"], timeout=60,
                 what="health.recovered audited")
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill_group(proc.pid)
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped after" in err.splitlines()[-1]
    records = [json.loads(line) for line in out.splitlines()]  # JSON Lines: one object per change
    health = [(r["event"], r["metric"]) for r in records if r["event"].startswith("health.")]
    assert health[0] == ("health.breach", "error_rate") and ("health.recovered", "error_rate") in health
    assert all(r["event"] in ("health.breach", "health.ongoing", "health.recovered", "delivered") for r in records)
    delivered = [r for r in records if r["event"] == "delivered"]
    assert delivered and all(r["receiver"] == "alertmanager" and r["ok"] for r in delivered)
    events = [e for e in audit(served_ws) if e["action"] in ("health.breach", "health.recovered")]
    assert [e["action"] for e in events] == ["health.breach", "health.recovered"]
    assert events[0]["details"]["value"] > 0.05 >= events[1]["details"]["value"]


class FlakyMetrics:
    """The real request-log metrics behind a connection that is refused while `down` is set."""

    def __init__(self, real):
        self.real, self.down, self.calls = real, True, 0

    def health(self, model, version, start, end):
        self.calls += 1
        if self.down:
            raise ConnectionRefusedError("[Errno 111] Connection refused (127.0.0.1:9)")
        return self.real.health(model, version, start, end)


def test_the_loop_outlives_a_metrics_backend_that_raises_and_the_next_round_delivers(served_ws, load, alertmanager):
    import time

    from console.monitor.alerts_run import HealthRounds, run as run_rounds
    from console.workspace import Workspace

    run = configure(served_ws, alertmanager.url, health_window_s=5, min_requests=20, max_error_rate=0.05)
    ws = Workspace.open(served_ws)
    _drill(served_ws, "--error-rate", "0.5")
    real = ws.metrics()

    def window_bad():  # a past window (the fixed clock below) that already holds the breach
        now = time.time()
        w = real.health(MODEL, STABLE, now - 5, now)
        return now if w.requests >= 20 and w.errors / w.requests > 0.05 else None

    fixed = wait_for(window_bad, timeout=120, what="a 5 s window of production over the error threshold")
    flaky = FlakyMetrics(real)
    lines: list[tuple[str, bool]] = []
    rounds = HealthRounds(ws, actor="tester", report=lambda record, line, problem: lines.append((line, problem)))
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the fake sleep: the backend comes back after the second round
        waits.append(seconds)
        if len(waits) == 2:
            flaky.down = False

    rounds.metrics = flaky
    done = run_rounds(rounds, interval=1.0, max_rounds=3, stopped=lambda: False, wait=wait, clock=lambda: fixed)
    assert done == 3 and len(waits) == 2 and flaky.calls >= 3

    # two rounds down: one line (not one per round), one audit record; the third round fired and delivered
    problems = [line for line, problem in lines if problem]
    assert problems == [f"metrics {MODEL}: production {STABLE}: health unreadable: ConnectionRefusedError: "
                        "[Errno 111] Connection refused (127.0.0.1:9) (retried next round)",
                        f"metrics {MODEL}: ok again"]
    events = audit(served_ws)
    assert [(e["action"], e["model"]) for e in events if e["action"].startswith("metrics.")] == [
        ("metrics.unreadable", MODEL), ("metrics.readable", MODEL)]
    [breach] = [e for e in events if e["action"] == "health.breach"]
    assert breach["details"]["metric"] == "error_rate" and breach["version"] == STABLE
    assert next(e["seq"] for e in events if e["action"] == "metrics.unreadable") < breach["seq"]  # after, not before
    [alert] = alertmanager.alerts(run=run, alertname="ProductionErrorRateHigh")  # no wait: round 3 delivered it
    assert alert["labels"]["model"] == MODEL and alert["labels"]["version"] == STABLE
    assert any(line.startswith("alertmanager: delivered") for line, problem in lines if not problem)


def test_bad_interval_or_no_alerts_table_is_one_line_exit_2_and_nothing_written(demo_ws):
    before = tree_digest(demo_ws)
    nothing = run_mrc("alerts", "run", "--once", "--workspace", str(demo_ws))
    assert nothing.returncode == 2 and "[alerts] names no alertmanager_url" in nothing.stderr
    with open(demo_ws / "mrc.toml", "a") as fh:
        fh.write('\n[alerts]\nalertmanager_url = "http://127.0.0.1:1"\nhold_s = 600\n')
    before = tree_digest(demo_ws)
    for interval, says in (("0", "must be a number of seconds > 0"), ("nan", "must be a number of seconds > 0"),
                           ("300", "alerts.hold_s / 2 (300 s)"), ("soon", "invalid float value")):
        result = run_mrc("alerts", "run", "--interval", interval, "--workspace", str(demo_ws))
        assert result.returncode == 2, (interval, result.stderr)
        assert result.stderr.strip().count("\n") == 0 and says in result.stderr, result.stderr
    misplaced = run_mrc("alerts", "flush", "--interval", "5", "--workspace", str(demo_ws))
    assert misplaced.returncode == 2 and "belong to `mrc alerts run`" in misplaced.stderr
    read_only = run_mrc("alerts", "run", "--read-only", "--workspace", str(demo_ws))
    assert read_only.returncode == 2 and "`mrc alerts run` writes, refused" in read_only.stderr
    assert tree_digest(demo_ws) == before


def test_default_interval_stays_well_under_half_the_hold():
    from console.notify.alerts import AlertsConfig
    from console.monitor.alerts_run import default_interval

    assert default_interval(AlertsConfig()) == 60.0  # hold 4 h, window 5 min: every minute
    assert default_interval(AlertsConfig(health_window_s=2)) == 1.0
    assert default_interval(AlertsConfig(hold_s=100)) == 25.0
    for cfg in (AlertsConfig(hold_s=1, health_window_s=1), AlertsConfig(hold_s=7, health_window_s=600)):
        assert 0 < default_interval(cfg) < cfg.hold_s / 2


def test_watch_loop_checks_production_health_each_run(served_ws, load, alertmanager):
    run = configure(served_ws, alertmanager.url, health_window_s=2, min_requests=20, max_error_rate=0.05)
    _drill(served_ws, "--error-rate", "0.5")

    def one_watch_run():
        result = run_mrc("watch", MODEL, "--runs", "1", "--interval", "1", "--workspace", str(served_ws))
        assert result.returncode in (0, 1), result.stderr
        return alertmanager.alerts(run=run, alertname="ProductionErrorRateHigh")

    [alert] = wait_for(one_watch_run, timeout=180, what="ProductionErrorRateHigh raised by `mrc watch`")
    assert (alert["labels"]["model"], alert["labels"]["version"]) == (MODEL, STABLE)
    [breach] = [e for e in audit(served_ws) if e["action"] == "health.breach"]
    assert breach["details"]["metric"] == "error_rate"


def test_watch_loop_without_an_alerts_table_imports_no_alert_code(demo_ws):
    code = (
        "import json, sys\n"
        "from console import cli\n"
        f"code = cli.main(['watch', {MODEL!r}, '--runs', '1', '--workspace', {str(demo_ws)!r}])\n"
        "print(json.dumps({'code': code, 'loaded': [m for m in ('console.notify.delivery', 'console.monitor.alerts_run')"
        " if m in sys.modules]}), file=sys.stderr)\n")
    assert "[alerts]" not in (demo_ws / "mrc.toml").read_text()
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), env=mrc_env(), capture_output=True, text=True,
                          timeout=180)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, 1), proc.stderr
    assert report["loaded"] == []
