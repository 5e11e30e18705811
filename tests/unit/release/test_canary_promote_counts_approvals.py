"""The canary's promote to 100 % under [policy.production]: counted before any traffic moves, and
again inside the production move. Traffic is an in-memory Traffic with the router's CAS contract
(as tests/unit/rollout/test_controller_races.py): under test is the controller's orchestration."""

from __future__ import annotations

import pytest

from console.domain import CanaryPlan
from console.release.policy import PolicyViolation
from tests.support.controllers import MODEL, MemoryTraffic, NoData
from tests.support.policy import protect


def test_canary_promote_waits_for_the_second_approval(synthetic_ws):
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
    controller = Controller(ws, MODEL, actor="tester", traffic=traffic, metrics=NoData(), registry=registry,
                            audit=audit, sleep=lambda s: None)
    controller.start("5", CanaryPlan(steps=[5, 50, 100], hold_s=0, interval_s=1))
    controller.act("next")
    assert traffic.split.weights == {"5": 5, "2": 95}

    with pytest.raises(PolicyViolation, match="1 of 2 approvals: needs 1 more, not tester \\(trainer\\), not bob"):
        controller.act("promote", wait_s=0.2)
    assert traffic.split.weights == {"5": 5, "2": 95}  # nothing moved: not the split, not production
    assert registry.get_pointers(MODEL)["production"] == "2"

    decide(registry, audit, MODEL, "5", status="approved", actor="carol", reason="ok", override=True, policy=policy)
    state = controller.act("promote")
    assert state.status == "promoted", state.reason
    assert traffic.split.weights == {"5": 100}
    assert registry.get_pointers(MODEL)["production"] == "5"
    promote = [e for e in audit.events() if e.action == "promote"][-1]
    assert promote.details["policy"]["approved_by"] == ["bob", "carol"]
    assert promote.details["policy"]["checked"] == "in the move's transaction"
    assert audit.verify().ok
