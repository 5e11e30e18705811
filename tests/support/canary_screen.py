"""The canary screen on its own (no console around it) on a live canary of the canary area."""

from __future__ import annotations

import json
import time

from textual.app import App

from tests.support.canary import CANDIDATE, MODEL


class ScreenHost(App):
    """The smallest app the screen needs: workspace, read_only, actor."""

    def __init__(self, workspace, model: str, *, read_only: bool = False, actor: str = "pilot"):
        super().__init__()
        self.workspace = workspace
        self.read_only = read_only
        self.actor = actor
        self.model = model

    def on_mount(self) -> None:
        from screens.canary_screen import CanaryScreen

        self.push_screen(CanaryScreen(self.model))


def live_canary(ws_root):
    from console.rollout.controller import Controller
    from console.domain import CanaryPlan
    from console.workspace import Workspace

    ws = Workspace.open(ws_root)
    controller = Controller(ws, MODEL, actor="tester")
    state = controller.start(CANDIDATE, CanaryPlan(steps=[50, 100], hold_s=600, interval_s=600))
    controller.act("next")
    return ws, state


def live_split(ws_root) -> dict[str, int]:
    data = json.loads((ws_root / "serving" / MODEL / "split.json").read_text())
    return {v: w for v, w in data["weights"] if w}


async def wait_until(pilot, predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await pilot.pause(0.01)
