"""Helpers of the one-truth tests (issue 23): a canary live at 50 % with no controller loop, and
the world as the registry, the router and the canary state each tell it."""

from __future__ import annotations

from console.domain import CanaryPlan
from tests.support.canary import CANDIDATE, MODEL


def live_canary_at_50(ws_root):
    from console.rollout.controller import Controller
    from console.workspace import Workspace

    controller = Controller(Workspace.open(ws_root), MODEL, actor="tester")
    controller.start(CANDIDATE, CanaryPlan(steps=[50, 100], hold_s=600, interval_s=600))
    return controller.act("next")  # 50 % live and recorded; no controller loop runs


def world(ws_root) -> tuple[str | None, dict[str, int], str | None]:
    """(production pointer, live split without zero weights, the latest canary's status)."""
    from backends.local.registry import LocalRegistry
    from backends.local.traffic import LocalTraffic
    from console.rollout.controller import current_state
    from console.workspace import Workspace

    registry = LocalRegistry(ws_root)
    try:
        production = registry.get_pointers(MODEL).get("production")
    finally:
        registry.close()
    split = {v: w for v, w in LocalTraffic(ws_root).get_split(MODEL).weights.items() if w}
    state = current_state(Workspace.open(ws_root), MODEL)
    return production, split, state.status if state else None
