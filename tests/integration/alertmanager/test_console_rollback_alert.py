"""The console's `R`: the rollback commits first, then its alert goes out (Pilot, real Alertmanager)."""

from __future__ import annotations

import time

import pytest

from tests.support.alerts import audit, configure
from tests.support.pilot import make_app, run, settle
from tests.support.workspaces import release_workspace

pytestmark = pytest.mark.integration

MODEL = "breast-cancer"


def test_rollback_key_delivers_the_rollback_alert(tmp_path, alertmanager):
    ws_path = release_workspace(tmp_path / "ws")
    label = configure(ws_path, alertmanager.url)

    async def scenario():
        app = make_app(ws_path)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("R")
            await settle(app, pilot)
            assert app.screen.rows[0].production == "1"
            deadline = time.monotonic() + 60
            while not alertmanager.alerts(run=label) and time.monotonic() < deadline:
                await pilot.pause(0.1)  # the worker delivers after posting its banner message

    run(scenario())
    [alert] = alertmanager.alerts(run=label)
    assert {k: alert["labels"][k] for k in ("alertname", "model", "version", "severity")} == {
        "alertname": "RollbackDone", "model": MODEL, "version": "1", "severity": "warning"}
    assert alert["annotations"]["summary"].startswith(f"{MODEL}: production rolled back 2 -> 1 by tester: ")
    events = audit(ws_path)
    [rollback] = [e for e in events if e["action"] == "rollback"]
    [delivered] = [e for e in events if e["action"] == "alert.delivered"]
    assert delivered["seq"] > rollback["seq"] and delivered["actor"] == "tester"
