"""Alerts in a real Alertmanager and a local webhook receiver, from real canaries on the demo
workspace: an automatic rollback fires (read back from /api/v2/alerts), a promotion resolves it,
the webhook's HMAC verifies, and a receiver that is down never blocks the rollback."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest

from tests.support.alerts import free_port, wait_for
from tests.support.canary import CANDIDATE, MODEL, STABLE
from tests.support.cli import run_mrc
from tests.support.alerts import RUNBOOK, SECRET, SECRET_ENV, audit, configure, set_alertmanager_url, verified  # noqa: F401

pytestmark = pytest.mark.integration


def _split(ws) -> dict[str, int]:
    from backends.local.traffic import LocalTraffic

    return {v: w for v, w in LocalTraffic(ws).get_split(MODEL).weights.items() if w}


def test_automatic_rollback_fires_in_alertmanager_and_webhook_and_a_promotion_resolves_it(
        served_ws, load, controllers, alertmanager, webhook):
    run = configure(served_ws, alertmanager.url, webhook.url)
    drill = run_mrc("drill", MODEL, CANDIDATE, "--error-rate", "0.2", "--workspace", str(served_ws))
    assert drill.returncode == 0, drill.stderr
    proc = controllers.start(env=SECRET_ENV)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err  # the controller rolled the canary back
    assert json.loads(out)["status"] == "rolled_back" and _split(served_ws) == {STABLE: 100}

    [rollback] = [e for e in audit(served_ws) if e["action"] == "canary-rollback"]
    reason = rollback["details"]["reason"]
    assert "error_rate" in reason

    # Alertmanager holds it, with the labels and the judge's reason.
    [alert] = wait_for(lambda: alertmanager.alerts(run=run), what="the rollback alert in Alertmanager")
    assert alert["labels"] == {"alertname": "CanaryRolledBack", "model": MODEL, "version": CANDIDATE,
                               "severity": "critical", "run": run}
    summary = alert["annotations"]["summary"]
    assert summary.startswith(f"{MODEL} {CANDIDATE}: canary rolled back to {STABLE}: ")
    assert " ".join(reason.split())[:200] in summary
    assert alert["annotations"]["runbook_url"] == RUNBOOK
    assert alert["status"]["state"] == "active"

    # The webhook got the same alert, signed; the secret is nowhere in the workspace.
    body = verified(webhook.received[0])
    assert [(a["labels"]["alertname"], a["labels"]["severity"]) for a in body["alerts"]] == [
        ("CanaryRolledBack", "critical")]
    assert SECRET.encode() not in (served_ws / "mrc.db").read_bytes()
    events = audit(served_ws)
    assert SECRET not in json.dumps(events)
    delivered = [e for e in events if e["action"] == "alert.delivered"]
    # delivered from the controller's own loop, after the rollback had committed
    assert {e["details"]["receiver"] for e in delivered if e["actor"] == "controller"} == {"alertmanager", "chat"}
    assert min(e["seq"] for e in delivered) > rollback["seq"]
    assert not [e for e in events if e["action"] == "alert.failed"]

    # Production moves on: the alert resolves, in Alertmanager and at the webhook.
    promote = run_mrc("promote", MODEL, CANDIDATE, "--reason", "fixed", "--workspace", str(served_ws), env=SECRET_ENV)
    assert promote.returncode == 0, promote.stderr
    wait_for(lambda: alertmanager.alerts(run=run) == [], what="the alert resolved in Alertmanager")
    last = verified(webhook.received[-1])
    [resolved] = [a for a in last["alerts"] if a["labels"]["alertname"] == "CanaryRolledBack"]
    fired = verified(webhook.received[0])["alerts"][0]
    assert resolved["labels"] == fired["labels"] and resolved["startsAt"] == fired["startsAt"]  # the same alert
    assert resolved["startsAt"] < resolved["endsAt"] < fired["endsAt"]  # ended now, before its planned end
    view = run_mrc("alerts", "--json", "--workspace", str(served_ws))
    assert view.returncode == 0, view.stderr
    states = {(a["alertname"], a["version"]): a["state"] for a in view.json()["alerts"]}
    assert states[("CanaryRolledBack", CANDIDATE)] == "resolved"
    # alert.delivered / alert.failed are not alerts themselves
    assert all(not a["alertname"].startswith("alert") for a in view.json()["alerts"])


def test_alertmanager_down_never_blocks_the_rollback_and_flush_delivers_later(served_ws, alertmanager, webhook):
    from console.rollout.controller import Controller
    from console.domain import CanaryPlan
    from console.workspace import Workspace

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    run = configure(served_ws, dead, webhook.url)
    webhook.status = 500  # the chat hook is failing too
    controller = Controller(Workspace.open(served_ws), MODEL, actor="tester")
    controller.start(CANDIDATE, CanaryPlan(steps=[50, 100], hold_s=600, interval_s=600))
    controller.act("next")
    assert _split(served_ws) == {CANDIDATE: 50, STABLE: 50}

    rollback = run_mrc("rollback", MODEL, "--reason", "paged at 3 AM", "--json", "--workspace", str(served_ws),
                       env=SECRET_ENV)
    assert rollback.returncode == 0, rollback.stderr
    assert _split(served_ws) == {STABLE: 100}
    events = audit(served_ws)
    [rolled] = [e for e in events if e["action"] == "canary-rollback"]
    failed = [e for e in events if e["action"] == "alert.failed"]
    assert {e["details"]["receiver"] for e in failed} == {"alertmanager", "chat"}
    assert all(e["seq"] > rolled["seq"] for e in failed)  # tried after the rollback committed
    assert "HTTP 500" in next(e for e in failed if e["details"]["receiver"] == "chat")["details"]["error"]
    assert not [e for e in events if e["action"] == "alert.delivered"]
    pending = run_mrc("alerts", "--json", "--workspace", str(served_ws)).json()
    [row] = [a for a in pending["alerts"] if a["alertname"] == "CanaryRolledBack"]
    assert row["state"] == "pending" and sorted(row["pending_for"]) == ["alertmanager", "chat"]
    assert row["severity"] == "warning"  # a person rolled back: not the controller's critical

    # Flush while still down: exit 4, still pending, audited again.
    again = run_mrc("alerts", "flush", "--json", "--workspace", str(served_ws), env=SECRET_ENV)
    assert again.returncode == 4
    assert len([e for e in audit(served_ws) if e["action"] == "alert.failed"]) == 4

    # The receivers come back: one flush delivers what was missed.
    set_alertmanager_url(served_ws, alertmanager.url)
    webhook.status = 200
    flush = run_mrc("alerts", "flush", "--json", "--workspace", str(served_ws), env=SECRET_ENV)
    assert flush.returncode == 0, flush.stderr
    assert {d["receiver"]: (d["ok"], d["alerts"]) for d in flush.json()["deliveries"]} == {
        "alertmanager": (True, 1), "chat": (True, 1)}
    [alert] = alertmanager.alerts(run=run)
    assert alert["labels"]["alertname"] == "CanaryRolledBack" and alert["labels"]["version"] == CANDIDATE
    assert "paged at 3 AM" in alert["annotations"]["summary"]
    assert verified(webhook.received[-1])["alerts"][0]["labels"]["alertname"] == "CanaryRolledBack"
    assert run_mrc("alerts", "--json", "--workspace", str(served_ws)).json()["alerts"][0]["state"] == "fired"

    # Nothing new: the next flush sends nothing and audits nothing.
    before = len(audit(served_ws))
    quiet = run_mrc("alerts", "flush", "--json", "--workspace", str(served_ws), env=SECRET_ENV)
    assert quiet.returncode == 0 and quiet.json()["deliveries"] == []
    assert len(audit(served_ws)) == before


def test_production_error_rate_fires_then_resolves_when_it_ends(served_ws, load, alertmanager):
    run = configure(served_ws, alertmanager.url, health_window_s=2, min_requests=20, max_error_rate=0.05)

    def flush() -> None:
        result = run_mrc("alerts", "flush", "--json", "--workspace", str(served_ws))
        assert result.returncode == 0, result.stderr

    def firing():
        flush()
        return alertmanager.alerts(run=run, alertname="ProductionErrorRateHigh")

    assert run_mrc("drill", MODEL, STABLE, "--error-rate", "0.5", "--workspace", str(served_ws)).returncode == 0
    [alert] = wait_for(firing, timeout=120, what="ProductionErrorRateHigh in Alertmanager")
    assert alert["labels"]["model"] == MODEL and alert["labels"]["version"] == STABLE
    assert alert["labels"]["severity"] == "critical"

    assert run_mrc("drill", MODEL, STABLE, "--off", "--workspace", str(served_ws)).returncode == 0
    wait_for(lambda: not firing(), timeout=120, what="ProductionErrorRateHigh resolved")
    health = [e for e in audit(served_ws) if e["action"].startswith("health.")]
    assert [e["action"] for e in health] == ["health.breach", "health.recovered"]
    assert health[0]["details"]["value"] > 0.05 and health[1]["details"]["value"] <= 0.05


def test_alerts_test_reaches_every_receiver_and_writes_nothing(served_ws, alertmanager, webhook):
    run = configure(served_ws, alertmanager.url, webhook.url)
    before = audit(served_ws)
    result = run_mrc("alerts", "test", "--json", "--workspace", str(served_ws), env=SECRET_ENV)
    assert result.returncode == 0, result.stderr
    [alert] = alertmanager.alerts(run=run)
    assert alert["labels"]["alertname"] == "MrcTest"
    assert verified(webhook.received[0])["alerts"][0]["labels"]["alertname"] == "MrcTest"
    assert audit(served_ws) == before

    missing_secret = run_mrc("alerts", "test", "--json", "--workspace", str(served_ws))
    assert missing_secret.returncode == 4
    chat = next(d for d in missing_secret.json()["deliveries"] if d["receiver"] == "chat")
    assert "$MRC_TEST_HOOK_SECRET is not set" in chat["error"]


def test_flush_is_a_write_refused_read_only_with_nothing_written(served_ws, alertmanager):
    import sqlite3

    run = configure(served_ws, alertmanager.url)
    before = audit(served_ws)
    result = run_mrc("alerts", "flush", "--read-only", "--workspace", str(served_ws))
    assert result.returncode == 2 and "--read-only: `mrc alerts flush` writes, refused" in result.stderr
    assert audit(served_ws) == before
    with sqlite3.connect(served_ws / "mrc.db") as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'alert_cursors'").fetchone() is None
    assert alertmanager.alerts(run=run) == []


def test_bad_alerts_table_is_one_line_exit_2_and_does_not_block_a_write(served_ws):
    with open(served_ws / "mrc.toml", "a") as fh:
        fh.write('\n[alerts]\nalertmanager_url = "http://127.0.0.1:1"\nmax_error_rate = 3\n')
    result = run_mrc("alerts", "--workspace", str(served_ws))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "alerts.max_error_rate" in result.stderr
    rollback = run_mrc("promote", MODEL, CANDIDATE, "--reason", "ok", "--workspace", str(served_ws))
    assert rollback.returncode == 0, rollback.stderr
    assert "alerts not delivered" in rollback.stderr and "alerts.max_error_rate" in rollback.stderr


def test_rollback_with_alerts_configured_still_imports_nothing_heavy_and_delivers(served_ws, alertmanager):
    """The delivery after `mrc rollback` is stdlib only: with every heavy library and the
    drift/report/gate modules unimportable the rollback completes and the alert arrives."""
    import subprocess
    import sys

    from backends.local.registry import LocalRegistry
    from console.release.audit import AuditLog
    from console.release.actions import promote
    from tests.support.canary import HEAVY, SCRIPT
    from tests.support.cli import REPO, mrc_env

    promote(LocalRegistry(served_ws), AuditLog(str(served_ws / "mrc.db")), MODEL, CANDIDATE, actor="tester")
    run = configure(served_ws, alertmanager.url)
    broken = list(HEAVY) + ["console.evaluate.drift", "console.evaluate.report", "console.reports", "console.plots", "console.evaluate.gates"]
    code = SCRIPT.format(broken=broken, model=MODEL, ws=str(served_ws), heavy=list(HEAVY))
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), env=mrc_env(), capture_output=True, text=True,
                          timeout=120)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr
    assert report["heavy"] == []
    [alert] = alertmanager.alerts(run=run)
    assert (alert["labels"]["alertname"], alert["labels"]["version"]) == ("RollbackDone", STABLE)
    assert alert["annotations"]["summary"] == f"{MODEL}: production rolled back {CANDIDATE} -> {STABLE} by tester: page"
