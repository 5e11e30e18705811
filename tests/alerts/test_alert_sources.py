"""Alerts from the other sources of the audit log, end to end: `mrc watch` past the critical
drift tier pages through Alertmanager before its retraining starts."""

from __future__ import annotations

import pytest

from tests.alerts.conftest import wait_for
from tests.alerts.test_alertmanager import audit, configure
from tests.conftest import run_mrc
from tests.watch.conftest import EPOCHS, MODEL, add_dataset, copy_ws, production_ws  # noqa: F401  (fixture)

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
