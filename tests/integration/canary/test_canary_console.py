"""The console's release flows around a canary, driven by keys through Pilot on real workspaces:
`C` starts a canary (confirmed with ctrl+y) through `mrc canary start`, `P` / `p` in the canary
screen confirm with the judge's evidence, home shows production's live health, and the training
screen hands focus back before `v`. Real model servers, router and load where traffic matters."""

from __future__ import annotations

import os
import signal
import time

from console.domain import CanaryPlan
from tests.support.canary import CANDIDATE, MODEL, STABLE, load, served_ws  # noqa: F401  (fixtures)
from tests.support.pilot import make_app, run, settle


async def wait_for(pilot, predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.05)


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


def state_of(ws_root):
    from console.rollout.controller import current_state
    from console.workspace import Workspace

    return current_state(Workspace.open(ws_root), MODEL)


def split_of(ws_root) -> dict[str, int]:
    from backends.local.traffic import LocalTraffic

    return {v: w for v, w in LocalTraffic(ws_root).get_split(MODEL).weights.items() if w}


def audit_of(ws_root, action: str) -> list:
    from console.workspace import Workspace

    return [e for e in Workspace.open(ws_root).audit().events(model=MODEL) if e.action == action]


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- C: start a canary from home -----------------------------------------------------------------

def test_C_starts_a_canary_after_ctrl_y_and_escape_starts_nothing(served_ws):
    from screens.canary_screen import CanaryScreen
    from screens.dialogs.canary_start import CanaryStartDialog

    pids: list[int] = []

    async def scenario():
        app = make_app(served_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            home = app.screen
            await pilot.press("C")
            await settle(app, pilot)
            dialog = app.screen
            assert isinstance(dialog, CanaryStartDialog)
            statement = text_of(dialog, "#canary-start-statement")
            for words in (f"model      {MODEL}", f"candidate  {CANDIDATE}  (approval approved)", f"stable     {STABLE}",
                          "5% → 25% → 50% → 100%"):
                assert words in statement, statement
            await pilot.press("escape")  # cancelled: nothing starts
            await settle(app, pilot)
            assert app.screen is home and state_of(served_ws) is None

            await pilot.press("C")
            dialog = app.screen
            assert isinstance(dialog, CanaryStartDialog)
            await pilot.press("C", "C")  # the opening key again (held, doubled) never confirms: only ctrl+y does
            await settle(app, pilot)
            assert app.screen is dialog and state_of(served_ws) is None
            dialog.query_one("#plan").value = "50,100"
            await pilot.pause(0.6)
            await pilot.press("ctrl+y")
            await wait_for(pilot, lambda: home.last_canary_start, what="the controller to record the canary")
            pids.append(home.last_canary_start["pid"])
            await wait_for(pilot, lambda: isinstance(app.screen, CanaryScreen), what="the canary screen")
            await wait_for(pilot, lambda: (state_of(served_ws) or None) and state_of(served_ws).weight == 50,
                           what="the first step")

    try:
        run(scenario())
        state = state_of(served_ws)
        assert state.active and state.candidate == CANDIDATE and state.stable == STABLE and state.plan.steps == [50, 100]
        assert state.controller_pid == pids[0]  # the canary has its own controller process
        assert split_of(served_ws) == {CANDIDATE: 50, STABLE: 50}
        start = audit_of(served_ws, "canary-start")
        assert len(start) == 1 and start[0].actor == "tester"
    finally:
        state = state_of(served_ws)  # the canary's controller is a detached process: it must not outlive the test
        for pid in pids + ([state.controller_pid] if state is not None and state.controller_pid else []):
            kill_group(pid)


def test_C_on_an_unapproved_candidate_needs_a_reason(served_ws):
    from backends.base import Approval
    from screens.dialogs.canary_start import CanaryStartDialog

    from console.workspace import Workspace

    Workspace.open(served_ws).registry().set_approval(MODEL, CANDIDATE, Approval("pending", "", "", ""),
                                                     expected_status="approved")

    async def scenario():
        app = make_app(served_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("C")
            await settle(app, pilot)
            dialog = app.screen
            assert isinstance(dialog, CanaryStartDialog)
            assert "NOT APPROVED" in text_of(dialog, "#canary-start-statement")
            await pilot.pause(0.6)
            await pilot.press("ctrl+y")
            await settle(app, pilot)
            assert app.screen is dialog and "a reason is required" in text_of(dialog, "#dialog-error")

    run(scenario())
    assert state_of(served_ws) is None


# -- P / p in the canary screen: confirm with the evidence ---------------------------------------

def _live_canary_at_50(ws_root):
    from console.rollout.controller import Controller
    from console.workspace import Workspace

    controller = Controller(Workspace.open(ws_root), MODEL, actor="tester")
    controller.start(CANDIDATE, CanaryPlan(steps=[50, 75, 100], hold_s=600, interval_s=600))
    return controller.act("next")


def test_P_and_p_confirm_with_the_judges_evidence_before_moving_traffic(served_ws):
    from screens.canary_screen import CanaryScreen
    from screens.dialogs.promote import PromoteDialog

    _live_canary_at_50(served_ws)

    async def scenario():
        app = make_app(served_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            app.open_canary(MODEL)
            await wait_for(pilot, lambda: isinstance(app.screen, CanaryScreen) and app.screen.state is not None)
            screen = app.screen
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, PromoteDialog), what="the next-step dialog")
            dialog = app.screen
            assert "50% → 75%" in text_of(dialog, ".dialog-title")
            evidence = text_of(dialog, "#promote-evidence")
            assert "no analysis yet" in evidence and "failures so far: 0/3" in evidence
            assert "not decided the canary is safe" in text_of(dialog, "#promote-warning")
            await pilot.press("escape")  # cancelled: nothing moves
            await settle(app, pilot)
            assert app.screen is screen and split_of(served_ws) == {CANDIDATE: 50, STABLE: 50}

            await pilot.press("P")
            await wait_for(pilot, lambda: isinstance(app.screen, PromoteDialog), what="the promote dialog")
            dialog = app.screen
            assert f"Promote canary {CANDIDATE} to 100% and production" in text_of(dialog, ".dialog-title")
            await pilot.press("P", "P")  # the opening key again (held, doubled) never confirms: only ctrl+y does
            await settle(app, pilot)
            assert app.screen is dialog and split_of(served_ws) == {CANDIDATE: 50, STABLE: 50}
            await pilot.pause(0.6)
            await pilot.press(*["space" if c == " " else c for c in "judged by hand"])
            await pilot.press("ctrl+y")
            await wait_for(pilot, lambda: screen.state is not None and screen.state.status == "promoted",
                           what="the promotion")

    run(scenario())
    from backends.local.registry import LocalRegistry

    assert split_of(served_ws) == {CANDIDATE: 100}
    assert LocalRegistry(served_ws).get_pointers(MODEL)["production"] == CANDIDATE
    promote = audit_of(served_ws, "canary-promote")
    assert promote[-1].actor == "tester" and "judged by hand" in promote[-1].details["reason"]


def test_evidence_names_the_sequential_statistic_the_requests_still_needed_and_failures():
    from console.rollout import canary
    from screens.presenters import canary_evidence_lines

    state = canary.new_state("m", "1", "2", CanaryPlan(), 1000.0, "2026-01-01T00:00:00.000000Z")
    state.step, state.weight, state.failures = 1, 25, 2
    state.sequential = {"verdict": "continue", "results": [
        {"metric": "error_rate", "decision": "continue", "estimate": 0.004, "lower": -0.01, "upper": 0.02,
         "e_value": 2.5, "p_value": 0.4},
    ], "needs_more": {"test": "error_rate", "requests": 10432}}
    state.analyses = [{"window_verdict": "fail", "checks": [{"name": "metrics", "passed": False,
                                                             "detail": "metrics backend: ConnectionRefusedError"}]}]
    text = "\n".join(canary_evidence_lines(state))
    assert "error_rate: continue · Δ +0.0040 band [-0.0100, +0.0200] · e-value 2.5 · p 0.400" in text
    assert "needs ~10,432 more canary requests before the error_rate test can promote" in text
    assert "failures so far: 2/3 consecutive · last window fail" in text
    assert "last window failed: metrics backend: ConnectionRefusedError" in text


# -- home: production's live health ---------------------------------------------------------------

def _home_health(ws_root, until, *, prepare=None):
    from screens.widgets.health_panel import HealthPanel

    seen = {}

    async def scenario():
        app = make_app(ws_root)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            panel = app.screen.query_one("#health", HealthPanel)
            await wait_for(pilot, lambda: panel.measured >= 1, what="the first health read")
            while True:
                text = text_of(panel, "#health-numbers")
                if until(text):
                    break
                measured = panel.measured
                panel.refresh_now()
                await wait_for(pilot, lambda: panel.measured > measured, what="a health read")
                await pilot.pause(0.3)
            seen["numbers"] = text
            seen["sparks"] = text_of(panel, "#health-sparks")
            seen["points"] = panel.points()

    run(asyncio_timeout(scenario(), 180))
    return seen


async def asyncio_timeout(coro, seconds: float):
    import asyncio

    return await asyncio.wait_for(coro, seconds)


def test_home_shows_no_data_for_production_without_traffic(served_ws):
    seen = _home_health(served_ws, lambda text: "production" in text)
    assert seen["numbers"] == f"production {STABLE}: no data (no requests in the last window)"
    assert seen["points"] and all(p.requests == 0 for p in seen["points"])
    assert set(seen["sparks"].replace("errors", "").replace("p99", "").replace("req/s", "")) <= {" ", "▁"}


def test_home_shows_production_error_rate_p99_and_rate_live_and_sees_a_drill(served_ws, load):
    from tests.support.cli import run_mrc

    healthy = _home_health(served_ws, lambda text: "req/s" in text)
    assert f"production {STABLE}: error rate 0.00%" in healthy["numbers"] and "p99 " in healthy["numbers"]
    assert healthy["points"][-1].requests > 0
    assert "▁" in healthy["sparks"] or "█" in healthy["sparks"]
    assert run_mrc("drill", MODEL, STABLE, "--error-rate", "0.5", "--workspace", str(served_ws)).returncode == 0

    def bad(text: str) -> bool:
        import re

        match = re.search(r"error rate ([\d.]+)%", text)
        return bool(match) and float(match.group(1)) >= 20.0

    drilled = _home_health(served_ws, bad)
    assert "req/s" in drilled["numbers"]


def test_home_names_a_metrics_backend_it_cannot_read(demo_ws):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = demo_ws / "mrc.toml"
    text = config.read_text()
    assert '[metrics]\nbackend = "local"\n' in text
    config.write_text(text.replace('[metrics]\nbackend = "local"\n', '[metrics]\nbackend = "prometheus"\n'
                                   f'url = "http://127.0.0.1:{port}"\ntimeout_s = 1\nretries = 1\n'))
    seen = _home_health(demo_ws, lambda text: "production" in text)
    assert seen["numbers"].startswith(f"production {STABLE}: metrics unavailable (")


# -- training: focus back before v, and the alias it moves ------------------------------------------

def test_training_says_it_moves_the_candidate_alias_and_v_reviews_the_new_version(demo_ws):
    from textual.widgets import Input

    from screens.review_screen import ReviewScreen
    from screens.training_screen import TrainingScreen

    async def scenario():
        app = make_app(demo_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("t")
            await settle(app, pilot)
            screen = app.screen
            assert isinstance(screen, TrainingScreen)
            assert f"moves the candidate alias from {CANDIDATE}" in text_of(screen, "#training-status")
            screen.query_one("#params").value = "epochs=2 hidden=4"
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: screen.new_version is not None or "failed" in text_of(screen, "#training-status"),
                           timeout=300, what="the training run")
            await settle(app, pilot)
            status = text_of(screen, "#training-status")
            new = screen.new_version.version
            assert f"candidate alias moved {CANDIDATE} → {new}" in status, status
            assert not isinstance(app.focused, Input)  # `v` must reach the screen, not a field
            await pilot.press("v")
            await settle(app, pilot)
            assert isinstance(app.screen, ReviewScreen) and app.screen.version == new
            return new

    new = run(scenario())
    from backends.local.registry import LocalRegistry

    assert LocalRegistry(demo_ws).get_pointers(MODEL)["candidate"] == new


def test_the_canary_screen_says_what_the_power_aware_plan_still_waits_for():
    """The judge's own `needs_more` (console/rollout/canary.py), as the last step holds for evidence."""
    from console.rollout import canary
    from screens.canary_screen import sequential_line

    state = canary.new_state("m", "1", "2", CanaryPlan(), 1000.0, "2026-01-01T00:00:00.000000Z")
    state.sequential = {"results": [{"metric": "error_rate", "decision": "continue", "estimate": 0.001,
                                     "lower": -0.01, "upper": 0.01, "margin": 0.0, "p_value": 0.5}],
                        "needs_more": {"test": "latency_tail", "requests": 2400}, "min_p_value": 0.5}
    assert "needs ~2,400 more canary requests before the latency_tail test can promote" in sequential_line(state)
    state.sequential["needs_more"] = None
    assert "more canary requests" not in sequential_line(state)
