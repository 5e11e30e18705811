"""A dead receiver retried every few seconds does not flood the audit log: alert.failed is
recorded when the error changes and with exponential back-off otherwise (every try is still
made), and the first delivery afterwards is recorded as alert.recovered (real HTTP receiver,
real SQLite)."""

from __future__ import annotations

import pytest

from tests.support.alerts import free_port
from tests.support.alerts import configure, set_alertmanager_url
from tests.support.canary import MODEL, STABLE

pytestmark = pytest.mark.integration


def _events(ws, action: str) -> list:
    from console.release.audit import AuditLog

    return [e for e in AuditLog(str(ws / "mrc.db")).events() if e.action == action]


def test_failures_are_audited_on_a_changed_error_or_with_back_off_and_the_recovery_is_recorded(demo_ws, webhook):
    from console.notify import delivery as alert_delivery
    from console.release.audit import AuditLog
    from console.workspace import Workspace

    configure(demo_ws, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    AuditLog(str(demo_ws / "mrc.db")).append("tester", "rollback", MODEL, STABLE, {"from": "5", "reason": "page"})
    ws = Workspace.open(demo_ws)

    for _ in range(20):  # the controller's retry loop, compressed
        [result] = alert_delivery.deliver(ws, actor="controller")
        assert not result.ok and result.alerts == 1
    failed = _events(demo_ws, "alert.failed")
    assert [e.details["failures"] for e in failed] == [1, 2, 4, 8, 16]
    assert len({e.details["since"] for e in failed}) == 1  # one run of failures

    # A different error is news: recorded at once, then back to the back-off.
    set_alertmanager_url(demo_ws, webhook.url.rsplit("/", 1)[0])
    webhook.status = 500
    ws = Workspace.open(demo_ws)
    for _ in range(3):
        [result] = alert_delivery.deliver(ws, actor="controller")
        assert not result.ok and "HTTP 500" in result.error
    failed = _events(demo_ws, "alert.failed")
    assert [e.details["failures"] for e in failed] == [1, 2, 4, 8, 16, 21]
    assert len(webhook.received) == 3  # every retry was still made

    # It answers again: delivered, and the recovery says after how many failures.
    webhook.status = 200
    [result] = alert_delivery.deliver(ws, actor="controller")
    assert result.ok
    [recovered] = _events(demo_ws, "alert.recovered")
    assert recovered.details["receiver"] == "alertmanager" and recovered.details["failures"] == 23
    assert "HTTP 500" in recovered.details["last_error"]
    [delivered] = _events(demo_ws, "alert.delivered")
    assert delivered.seq > recovered.seq

    # The next delivery is ordinary, and a new failure starts a new run at 1.
    AuditLog(str(demo_ws / "mrc.db")).append("tester", "rollback", MODEL, STABLE, {"from": "5", "reason": "again"})
    assert alert_delivery.deliver(ws, actor="controller")[0].ok
    assert len(_events(demo_ws, "alert.recovered")) == 1
    AuditLog(str(demo_ws / "mrc.db")).append("tester", "rollback", MODEL, STABLE, {"from": "5", "reason": "third"})
    webhook.status = 503
    assert not alert_delivery.deliver(ws, actor="controller")[0].ok
    assert _events(demo_ws, "alert.failed")[-1].details["failures"] == 1
    # the delivery events themselves never fire alerts
    from console.notify import alerts as rules

    assert all(rules.fired_by(e, alert_delivery.config(ws)) is None
               for e in _events(demo_ws, "alert.recovered") + _events(demo_ws, "alert.failed"))
