"""Alerts from the other sources of the audit log, end to end: `mrc watch` past the critical
drift tier pages through Alertmanager before its retraining starts."""

from __future__ import annotations

import pytest

from tests.support.alerts import wait_for
from tests.support.alerts import audit, configure
from tests.support.cli import run_mrc
from tests.support.watch import EPOCHS, MODEL, add_dataset, copy_ws, production_ws  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def test_watch_drift_critical_pages_before_the_retrain_and_the_candidate_is_no_resolution(
        production_ws, tmp_path, alertmanager):  # noqa: F811
    ws = copy_ws(production_ws, tmp_path / "watch")
    run = configure(ws, alertmanager.url)
    add_dataset(ws, "credit@v2", seed=3, shift=2.0, parent="credit@v1")
    result = run_mrc("watch", MODEL, "--once", "--json", "--param", EPOCHS, "--workspace", str(ws))
    assert result.returncode == 1, result.stderr  # drift critical: a retrain was launched

    [alert] = wait_for(lambda: alertmanager.alerts(run=run), what="DriftCritical in Alertmanager")
    assert {k: alert["labels"][k] for k in ("alertname", "model", "version", "severity")} == {
        "alertname": "DriftCritical", "model": MODEL, "version": "1", "severity": "critical"}
    events = audit(ws)
    [critical] = [e for e in events if e["action"] == "drift.critical"]
    feature = critical["details"]["feature"]
    assert alert["annotations"]["summary"].startswith(f"{MODEL}: drift critical on {feature} (PSI ")
    assert "in credit@v2 vs production 1" in alert["annotations"]["summary"]

    # delivered between the drift event and the end of the retraining, by the watch itself
    [retrain] = [e for e in events if e["action"] == "watch.retrain"]
    delivered = [e for e in events if e["action"] == "alert.delivered"]
    assert delivered and critical["seq"] < delivered[0]["seq"] < retrain["seq"]
    assert delivered[0]["details"]["alerts"][0]["alertname"] == "DriftCritical"
    # a registered candidate is not a fix: the page stays until a promotion
    assert alertmanager.alerts(run=run)[0]["labels"]["alertname"] == "DriftCritical"
    candidate = retrain["version"]
    promoted = run_mrc("promote", MODEL, candidate, "--override", "--reason", "retrained", "--workspace", str(ws))
    assert promoted.returncode == 0, promoted.stderr
    wait_for(lambda: alertmanager.alerts(run=run) == [], what="DriftCritical resolved by the promotion")


def test_two_person_rule_pages_for_approvals_until_the_second_approver_signs(demo_ws, alertmanager, webhook):
    """A passed gate on a protected version asks for approvals (`mrc gate` delivers it); the first
    approval updates the page to "1 of 2"; the second ends it."""
    import json

    from tests.support.alerts import SECRET_ENV, verified
    from tests.support.policy import protect

    demo = "breast-cancer"
    run = configure(demo_ws, alertmanager.url, webhook.url)
    protect(demo_ws, "required_approvals = 2")
    ws = ["--workspace", str(demo_ws)]
    gate = run_mrc("gate", demo, "5", "--json", *ws, "--actor", "ci", env=SECRET_ENV)
    assert gate.returncode == 0, gate.stderr
    [alert] = alertmanager.alerts(run=run)
    assert {k: alert["labels"][k] for k in ("alertname", "model", "version", "severity")} == {
        "alertname": "ApprovalRequested", "model": demo, "version": "5", "severity": "info"}
    assert alert["annotations"]["summary"].startswith(f"{demo} 5: approval requested by ci: ")
    assert alert["annotations"]["summary"].endswith("0 of 2 approvals: needs 2 more, not tester (trainer)")
    assert alert["annotations"]["summary"].count("0 of 2 approvals") == 1

    bob = run_mrc("approve", demo, "5", "--reason", "gates pass", *ws, "--actor", "bob", env=SECRET_ENV)
    assert bob.returncode == 0, bob.stderr
    [alert] = alertmanager.alerts(run=run)
    assert "1 of 2 approvals: needs 1 more" in alert["annotations"]["summary"]

    carol = run_mrc("approve", demo, "5", "--reason", "fine", *ws, "--actor", "carol", env=SECRET_ENV)
    assert carol.returncode == 0, carol.stderr
    assert alertmanager.alerts(run=run) == []
    last = verified(webhook.received[-1])
    assert [(a["labels"]["alertname"], a["endsAt"] <= json.loads(webhook.received[-1]["body"])["sent_at"])
            for a in last["alerts"]] == [("ApprovalRequested", True)]
