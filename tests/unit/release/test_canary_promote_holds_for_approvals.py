"""A canary promote short of the two-person rule's approvals holds; it never leaves a stale intent
behind and never rolls a healthy canary back. Traffic is the in-memory CAS Traffic of
tests/unit/rollout/test_controller_races.py; the metrics are two identical healthy windows."""

from __future__ import annotations

import pytest

from backends.base import HealthWindow
from console.domain import CanaryPlan
from console.release.policy import PolicyViolation
from tests.support.controllers import MODEL, MemoryTraffic, NoData
from tests.support.policy import protect


class Healthy:
    """Both variants alike: every check passes, so the plan steps on to its promote."""

    def health(self, model, version, start, end):
        return HealthWindow(model, version, start, end, requests=200, errors=0, latency_p50_ms=10.0,
                            latency_p99_ms=20.0, latencies_ms=[10.0] * 190 + [20.0] * 10,
                            predictions=[0.2, 0.4, 0.6, 0.8] * 50, labelled=200, correct=190)


class Clock:
    def __init__(self):
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += max(s, 0.05)


def _setup(synthetic_ws, metrics, clock=None):
    from backends.local.registry import LocalRegistry
    from console.release.audit import AuditLog
    from console.rollout.controller import Controller
    from console.release.policy import workspace_policy
    from console.release.actions import decide
    from console.workspace import Workspace

    protect(synthetic_ws, "required_approvals = 2")
    ws = Workspace.open(synthetic_ws)
    policy = workspace_policy(ws)
    registry, audit = LocalRegistry(synthetic_ws), AuditLog(str(synthetic_ws / "mrc.db"))
    decide(registry, audit, MODEL, "5", status="approved", actor="bob", reason="ok", override=True, policy=policy)
    traffic = MemoryTraffic("2")
    extra = {"clock": clock, "sleep": clock.sleep} if clock else {"sleep": lambda s: None}
    controller = Controller(ws, MODEL, actor="tester", traffic=traffic, metrics=metrics, registry=registry,
                            audit=audit, **extra)
    return controller, traffic, registry, audit, policy


def test_a_refused_operator_promote_leaves_no_pending_intent(synthetic_ws):
    controller, traffic, registry, audit, _ = _setup(synthetic_ws, NoData())
    controller.start("5", CanaryPlan(steps=[5, 50, 100], hold_s=0, interval_s=1))
    controller.act("next")
    with pytest.raises(PolicyViolation, match="1 of 2 approvals"):
        controller.act("promote", wait_s=0.2)
    state = controller.store.latest(MODEL)
    assert state.pending is None and state.status == "progressing"
    assert traffic.split.weights == {"5": 5, "2": 95}
    assert registry.get_pointers(MODEL)["production"] == "2"
    assert not [e for e in audit.events() if e.action == "canary-rollback"]


def test_the_last_step_auto_promote_short_of_approvals_holds_and_asks_once(synthetic_ws):
    from console.release.actions import decide

    clock = Clock()
    controller, traffic, registry, audit, policy = _setup(synthetic_ws, Healthy(), clock)
    plan = CanaryPlan(steps=[5, 50, 100], hold_s=0, interval_s=1, judge="threshold", min_requests=10,
                      min_detectable_error_ratio=None, min_detectable_tail_ratio=None, check_sample_ratio=False)
    state = controller.start("5", plan)
    state = controller.run(state, max_seconds=60)  # far past the plan: it would have promoted by now
    assert state.status == "progressing" and state.pending is None, (state.status, state.reason)
    assert state.weight == 50 and traffic.split.weights == {"5": 50, "2": 50}
    assert registry.get_pointers(MODEL)["production"] == "2"
    assert [e["kind"] for e in state.events].count("awaiting-approvals") == 1
    asked = [e for e in audit.events() if e.action == "approval.requested" and e.details.get("canary") == state.id]
    assert len(asked) == 1 and asked[0].details["needs"] == 1
    assert not [e for e in audit.events() if e.action in ("canary-rollback", "canary-abort")]

    decide(registry, audit, MODEL, "5", status="approved", actor="carol", reason="ok", override=True, policy=policy)
    state = controller.run(state, max_seconds=60)
    assert state.status == "promoted", state.reason
    assert traffic.split.weights == {"5": 100} and registry.get_pointers(MODEL)["production"] == "5"
    assert audit.verify().ok
