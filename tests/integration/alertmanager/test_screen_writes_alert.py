"""Writes from the canary screen (`R`) and the review screen (approve) deliver their alerts right
after they commit, like home's `R` — not only with the next write (Pilot, real Alertmanager).
Run under the TUI lock (see COMMON rules)."""

from __future__ import annotations

import time

import pytest

from tests.support.alerts import audit, configure
from tests.support.canary import CANDIDATE, STABLE
from tests.support.canary_screen import ScreenHost, live_canary, live_split, wait_until
from tests.support.policy import protect
from tests.support.pilot import make_app, run, settle

pytestmark = pytest.mark.integration

MODEL = "breast-cancer"


def _keys(text: str) -> list[str]:
    return ["space" if c == " " else c for c in text]


def _delivered_after(ws, action: str, actor: str) -> bool:
    events = audit(ws)
    written = [e for e in events if e["action"] == action]
    return bool(written) and any(e["action"] == "alert.delivered" and e["seq"] > written[-1]["seq"]
                                 and e["actor"] == actor for e in events)


@pytest.mark.asyncio
async def test_canary_screen_R_delivers_the_rollback_alert_after_the_move(served_ws, alertmanager):
    label = configure(served_ws, alertmanager.url)
    ws, _state = live_canary(served_ws)  # starting and stepping deliver nothing: only the screen's R can
    app = ScreenHost(ws, MODEL)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.state is not None and screen.state.weight == 50)
        await pilot.press("R")
        await wait_until(pilot, lambda: live_split(served_ws) == {STABLE: 100}, timeout=60)
        await wait_until(pilot, lambda: alertmanager.alerts(run=label), timeout=60)
    [alert] = alertmanager.alerts(run=label)
    assert (alert["labels"]["alertname"], alert["labels"]["version"]) == ("CanaryRolledBack", CANDIDATE)
    assert _delivered_after(served_ws, "canary-rollback", "pilot")


def test_review_screen_approval_delivers_its_alert_right_after_the_decision(demo_ws, alertmanager, monkeypatch):
    """Two approvals required: bob's approval leaves one more to find, and the on-call channel
    hears about it (ApprovalRequested) as soon as bob's approval has committed."""
    from screens.dialogs import approve as approve_dialog

    now = [1000.0]
    monkeypatch.setattr(approve_dialog, "clock", lambda: now[0])
    protect(demo_ws, "required_approvals = 2")
    label = configure(demo_ws, alertmanager.url)

    async def as_bob():
        app = make_app(demo_ws, actor="bob")
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            app.run_command(f"review {MODEL} 5")
            await settle(app, pilot)
            review = app.screen
            assert review.gate_report is not None and review.gate_report.passed
            await pilot.press("a")
            now[0] += 2.0
            await pilot.press(*_keys("gates pass"))
            await pilot.press("ctrl+y")
            await settle(app, pilot)
            deadline = time.monotonic() + 60
            while not alertmanager.alerts(run=label) and time.monotonic() < deadline:
                await pilot.pause(0.1)  # the decide worker delivers after posting its message

    run(as_bob())
    alerts = alertmanager.alerts(run=label)
    assert [(a["labels"]["alertname"], a["labels"]["version"]) for a in alerts] == [("ApprovalRequested", "5")]
    assert "approval requested by bob" in alerts[0]["annotations"]["summary"]
    assert _delivered_after(demo_ws, "approve", "bob")
