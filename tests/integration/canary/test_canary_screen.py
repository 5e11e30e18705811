"""The canary screen with Pilot: it shows the live canary, `R` rolls back, read-only hides writes."""

from __future__ import annotations

import json
import time

import pytest
from textual.app import App

from tests.support.canary import CANDIDATE, MODEL, STABLE
from tests.support.canary_screen import ScreenHost, live_canary, live_split, wait_until  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_screen_shows_the_canary_and_R_rolls_back_naming_stable(served_ws):
    ws, state = live_canary(served_ws)
    app = ScreenHost(ws, MODEL)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.state is not None and screen.state.weight == 50)
        assert f"stable {STABLE}" in str(screen.query_one("#canary-rollback-hint").render())
        assert "50%" in str(screen.query_one("#canary-split").render())
        assert "▶50%◀" in str(screen.query_one("#canary-plan").render())
        for binding in screen.BINDINGS:
            assert binding.id and binding.description
        assert live_split(served_ws) == {CANDIDATE: 50, STABLE: 50}
        await pilot.press("R")
        await wait_until(pilot, lambda: live_split(served_ws) == {STABLE: 100})
        await wait_until(pilot, lambda: screen.state is not None and screen.state.status == "rolled_back")
        assert screen.last_action["action"] == "rollback" and not screen.last_action["error"]
        events = [e for e in ws.audit().events(model=MODEL) if e.action == "canary-rollback"]
        assert events[-1].actor == "pilot"


async def test_read_only_screen_has_no_write_keys(served_ws):
    ws, state = live_canary(served_ws)
    app = ScreenHost(ws, MODEL, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.state is not None and screen.state.weight == 50)
        for action in ("rollback", "next_step", "promote", "toggle_pause"):
            assert screen.check_action(action, ()) is False
        await pilot.press("R")
        await pilot.press("space")
        await pilot.pause(0.5)
        assert live_split(served_ws) == {CANDIDATE: 50, STABLE: 50}
        assert "read-only" in str(screen.query_one("#canary-title").render())


async def test_pause_key_then_next_step_key(served_ws):
    ws, state = live_canary(served_ws)
    app = ScreenHost(ws, MODEL)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.state is not None and screen.state.weight == 50)
        await pilot.press("space")
        await wait_until(pilot, lambda: screen.state.status == "paused")
        await pilot.press("space")
        await wait_until(pilot, lambda: screen.state.status == "progressing")
        await pilot.press("p")  # 50 % -> the last step: promote, after a confirmation
        from screens.dialogs.promote import PromoteDialog

        await wait_until(pilot, lambda: isinstance(app.screen, PromoteDialog))
        assert "promote" in str(app.screen.query_one(".dialog-title").render())
        await pilot.pause(0.6)
        await pilot.press("ctrl+y")
        await wait_until(pilot, lambda: screen.state.status == "promoted")
        assert live_split(served_ws) == {CANDIDATE: 100}


async def test_R_runs_in_the_standby_thread_and_waiters_see_it_finish_and_the_thread_ends_with_the_screen(served_ws):
    import threading

    ws, state = live_canary(served_ws)
    app = ScreenHost(ws, MODEL)

    def standby_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == f"mrc-rollback-standby-{MODEL}" and t.is_alive()]

    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.state is not None and screen.state.weight == 50)
        await wait_until(pilot, lambda: screen._standby_ready, timeout=30)
        assert len(standby_threads()) == 1
        await pilot.press("R")
        # the key started no worker that moves traffic: only the receipt, which ends with the rollback
        assert {w.group for w in app.workers} <= {"canary-poll", "canary-rollback-receipt"}
        await app.workers.wait_for_complete()
        rollbacks = [e for e in ws.audit().events(model=MODEL)
                     if e.action == "canary-rollback" and e.details.get("canary") == state.id]
        assert len(rollbacks) == 1 and rollbacks[0].actor == "pilot"  # recorded before the waiters returned
        assert live_split(served_ws) == {STABLE: 100}
        await wait_until(pilot, lambda: screen.state.status == "rolled_back")
        app.pop_screen()
        await wait_until(pilot, lambda: not standby_threads(), timeout=30)


def _key_first_host(ws, **kwargs):
    from console.app import PriorityKeysFirst

    host = type("KeyFirstHost", (PriorityKeysFirst, ScreenHost), {})
    return host(ws, MODEL, **kwargs)


async def test_console_app_runs_R_as_it_is_posted_through_the_keymap_and_never_past_a_dialog(served_ws):
    ws, state = live_canary(served_ws)
    app = _key_first_host(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.state is not None and screen.state.weight == 50)
        await wait_until(pilot, lambda: screen._standby_ready, timeout=30)
        dispatched, first = [], []
        action_rollback, run_key_first = screen.action_rollback, screen.run_key_first
        screen.action_rollback = lambda: (dispatched.append(1), action_rollback())
        screen.run_key_first = lambda action: first.append(run_key_first(action)) or first[-1]

        # A dialog on top hides the canary's bindings, at post time as in Textual's own pass.
        await pilot.press("p")
        from screens.dialogs.promote import PromoteDialog

        await wait_until(pilot, lambda: isinstance(app.screen, PromoteDialog))
        await pilot.press("R")
        await pilot.pause(0.3)
        assert first == [] and dispatched == [] and live_split(served_ws) == {CANDIDATE: 50, STABLE: 50}
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)

        # A remapped rollback key: R is no longer it, ctrl+r is, and acts at post time.
        app.set_keymap({"canary.rollback": "ctrl+r"})
        await pilot.press("R")
        await pilot.pause(0.3)
        assert first == [] and live_split(served_ws) == {CANDIDATE: 50, STABLE: 50}
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: live_split(served_ws) == {STABLE: 100})
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: screen.state.status == "rolled_back")
        assert first == [True] and dispatched == []  # acted on as posted; the binding never ran
        rollbacks = [e for e in ws.audit().events(model=MODEL)
                     if e.action == "canary-rollback" and e.details.get("canary") == state.id]
        assert len(rollbacks) == 1 and rollbacks[0].actor == "pilot"

        # Nothing live: the key takes Textual's usual path (greyed binding), nothing moves.
        await pilot.press("ctrl+r")
        await pilot.pause(0.3)
        assert first == [True, False] and len([e for e in ws.audit().events(model=MODEL)
                                               if e.action == "canary-rollback"]) == len(rollbacks)


async def test_console_app_read_only_R_is_not_run_at_post_time(served_ws):
    ws, state = live_canary(served_ws)
    app = _key_first_host(ws, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.state is not None and screen.state.weight == 50)
        assert screen.run_key_first("rollback") is False
        await pilot.press("R")
        await pilot.pause(0.3)
        assert live_split(served_ws) == {CANDIDATE: 50, STABLE: 50}
