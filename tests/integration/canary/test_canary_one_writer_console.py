"""The blocker of issue 23 in the console (Pilot, real servers and router): a canary is live,
someone runs `mrc promote` on its candidate, on-call presses `R`. Registry and router must
agree afterwards (today: 100 % to the old stable while the registry says the candidate)."""

from __future__ import annotations

import pytest

from tests.support.canary import CANDIDATE, MODEL, STABLE
from tests.support.cli import run_mrc
from tests.support.one_truth import live_canary_at_50, world
from tests.support.pilot import make_app, run, settle

pytestmark = pytest.mark.integration


async def press_R_on_the_model(app, pilot) -> None:
    await settle(app, pilot)
    home = app.screen
    assert home.selected_model() == MODEL
    await pilot.press("R")
    await settle(app, pilot)


def test_R_after_a_promote_during_a_live_canary_leaves_registry_and_router_agreeing(served_ws):
    live_canary_at_50(served_ws)
    promoted = run_mrc("promote", MODEL, CANDIDATE, "--reason", "ship it", "--workspace", str(served_ws))
    assert promoted.returncode == 3 and f"mrc canary promote {MODEL}" in promoted.stderr, promoted.stderr
    assert world(served_ws) == (STABLE, {STABLE: 50, CANDIDATE: 50}, "progressing")

    async def scenario():
        app = make_app(served_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await press_R_on_the_model(app, pilot)

    run(scenario())
    assert world(served_ws) == (STABLE, {STABLE: 100}, "rolled_back")


def test_R_when_production_moved_outside_the_canary_moves_pointer_and_traffic_together(served_ws):
    from backends.local.registry import LocalRegistry

    live_canary_at_50(served_ws)
    registry = LocalRegistry(served_ws)  # the team's own tool moved production while the canary ran
    registry.move_pointer(MODEL, "production", expected=STABLE, new=CANDIDATE, actor="someone", reason="by hand")
    registry.close()

    async def scenario():
        app = make_app(served_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await press_R_on_the_model(app, pilot)

    run(scenario())
    assert world(served_ws) == (STABLE, {STABLE: 100}, "rolled_back")


def test_F_during_a_live_canary_is_refused_and_moves_nothing(served_ws):
    """Roll forward is a promote: while the canary is live it says how to end it, and moves nothing."""
    from console.workspace import Workspace

    ws = Workspace.open(served_ws)
    registry = ws.registry()
    # production reached 2 by a rollback from 5, so F offers 5
    registry.move_pointer(MODEL, "production", expected=STABLE, new=CANDIDATE, actor="t", reason="promote")
    registry.move_pointer(MODEL, "production", expected=CANDIDATE, new=STABLE, actor="t", reason="rollback: bad")
    registry.close()
    live_canary_at_50(served_ws)
    before = world(served_ws)
    notes: list[str] = []

    async def scenario():
        app = make_app(served_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            app.notify = lambda message, **kw: notes.append(str(message))  # what the banner says
            await pilot.press("F")
            await settle(app, pilot)
            await pilot.press("ctrl+y")
            await settle(app, pilot)

    run(scenario())
    assert world(served_ws) == before
    assert any("mrc canary abort" in n and "refused" in n for n in notes), notes
