"""`mrc watch` raises the alert in a real Alertmanager (Debian's prometheus-alertmanager on
127.0.0.1, the alerts suite's session server): DriftCritical is delivered as soon as
drift.critical is recorded, before the retrain registers its candidate, and resolves when a
newer data version is back under the critical tier."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.alerts import alertmanager, wait_for  # noqa: F401  (the session Alertmanager)
from tests.support.cli import run_mrc
from tests.support.watch import EPOCHS, MODEL, add_dataset, audit, copy_ws

pytestmark = pytest.mark.integration


def test_drift_critical_fires_in_alertmanager_before_the_retrain_and_resolves_after(
        production_ws, alertmanager, tmp_path):  # noqa: F811
    ws = copy_ws(production_ws, tmp_path)
    run = uuid.uuid4().hex[:10]  # keeps this test's alerts apart in the session's one Alertmanager
    with open(ws / "mrc.toml", "a") as fh:
        fh.write(f'\n[alerts]\nalertmanager_url = "{alertmanager.url}"\ntimeout_s = 2\nlabels = {{ run = "{run}" }}\n')
    add_dataset(ws, "credit@v3", seed=3, shift=2.0, parent="credit@v1")

    result = run_mrc("watch", MODEL, "--once", "--json", "--param", EPOCHS, "--workspace", str(ws))
    assert result.returncode == 1, result.stderr
    outcome = json.loads(result.stdout)
    [alert] = wait_for(lambda: alertmanager.alerts(run=run), what="DriftCritical in Alertmanager")
    assert alert["labels"] == {"alertname": "DriftCritical", "model": MODEL, "version": "1", "severity": "critical",
                               "run": run}
    summary = alert["annotations"]["summary"]
    assert "credit@v3" in summary and outcome["worst_feature"]["name"] in summary
    events = audit(ws)
    seq = {e["action"]: e["seq"] for e in events}  # the first of each action
    delivered = [e["seq"] for e in events if e["action"] == "alert.delivered"]
    assert delivered and seq["drift.critical"] < min(delivered) < seq["register"] < seq["watch.retrain"]

    add_dataset(ws, "credit@v4", seed=4, parent="credit@v3")  # back under the critical tier
    calm = run_mrc("watch", MODEL, "--once", "--json", "--workspace", str(ws))
    assert calm.returncode == 0, calm.stderr
    assert json.loads(calm.stdout)["resolved_alert"] is True
    wait_for(lambda: alertmanager.alerts(run=run) == [], what="DriftCritical resolved in Alertmanager")
