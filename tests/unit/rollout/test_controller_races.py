"""The controller never overwrites a move it did not decide on, and never promotes a withdrawn approval.

Traffic here is an in-memory implementation of the Traffic protocol with the same
compare-and-swap contract as the local router (whose own CAS has integration tests): what is
under test is the controller's orchestration, not HTTP.
"""

from __future__ import annotations

import pytest

from backends.base import Approval, ConflictError, HealthWindow, TrafficSplit
from console.domain import CanaryPlan
from tests.support.controllers import MODEL, MemoryTraffic, NoData  # noqa: F401


@pytest.fixture
def started(synthetic_ws):
    from backends.local.registry import LocalRegistry
    from console.release.audit import AuditLog
    from console.rollout.controller import Controller
    from console.release.actions import decide
    from console.workspace import Workspace

    ws = Workspace.open(synthetic_ws)
    registry, audit = LocalRegistry(synthetic_ws), AuditLog(str(synthetic_ws / "mrc.db"))
    decide(registry, audit, MODEL, "5", status="approved", actor="t", reason="ok", override=True)
    traffic = MemoryTraffic("2")
    controller = Controller(ws, MODEL, actor="tester", traffic=traffic, metrics=NoData(), registry=registry,
                            audit=audit, sleep=lambda s: None)
    controller.start("5", CanaryPlan(steps=[5, 50, 100], hold_s=0, interval_s=1))
    state = controller.act("next")  # the first step
    assert traffic.split.weights == {"5": 5, "2": 95}
    return controller, traffic, registry, audit, state


def test_a_step_never_overwrites_traffic_moved_since_it_decided(started):
    controller, traffic, registry, audit, _ = started
    traffic.rollback(MODEL, "2")  # someone else moved traffic back to stable
    events_before = len(audit.events())
    with pytest.raises(ConflictError):
        controller.act("next", wait_s=0.2)
    assert traffic.split.weights == {"2": 100}
    assert not [e for e in audit.events()[events_before:] if e.action.startswith("canary-")]


def test_a_withdrawn_approval_rolls_back_instead_of_promoting(started):
    controller, traffic, registry, audit, _ = started
    registry.set_approval(MODEL, "5", Approval("rejected", "sec", "", "CVE in a dependency"), expected_status="approved")
    state = controller.act("promote")
    assert state.status == "rolled_back" and "no longer approved" in state.reason
    assert traffic.split.weights == {"2": 100}
    assert registry.get_pointers(MODEL)["production"] == "2"
    assert audit.verify().ok


def test_the_canary_promote_refuses_production_moved_during_the_canary(started):
    controller, traffic, registry, audit, _ = started
    registry.move_pointer(MODEL, "production", expected="2", new="1", actor="someone", reason="manual")
    with pytest.raises(ConflictError):
        controller.act("promote", wait_s=0.2)
    assert registry.get_pointers(MODEL)["production"] == "1"  # theirs stands
