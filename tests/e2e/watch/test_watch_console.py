"""In the console, where drift shows critical (home's row, review's drift pane), `w` opens the
training screen prefilled with the model and the newest data version. Run under the TUI lock:
flock /tmp/mrc-tui.lock … pytest tests/e2e/watch/test_watch_console.py"""

from __future__ import annotations

import asyncio

from textual.widgets import Input, Static

from screens.help_screen import screen_keys
from screens.training_screen import TrainingScreen
from tests.support.pilot import make_app, settle
from tests.support.watch import MODEL, add_dataset, copy_ws


def workspace_with_newer_data(story, tmp_path):
    """The story after its retrain (candidate 2 on credit@v3, drift critical), plus a newer credit@v4:
    the key must pick the newest version, not the candidate's own data."""
    ws = copy_ws(story.ws, tmp_path)
    add_dataset(ws, "credit@v4", seed=4, shift=2.0, parent="credit@v3")
    with open(ws / "mrc.toml", "a") as fh:  # [models.credit] is the file's last table
        fh.write('watch_params = "epochs=3 hidden=8"\n')
    return ws


async def wait_for_training_screen(app, pilot) -> TrainingScreen:
    for _ in range(200):  # the newest version is read in a worker; poll, generously
        await settle(app, pilot, rounds=1)
        if isinstance(app.screen, TrainingScreen):
            return app.screen
    raise AssertionError(f"no training screen; on {type(app.screen).__name__}")


def test_home_w_opens_training_prefilled_with_the_newest_data(story, tmp_path):
    ws = workspace_with_newer_data(story, tmp_path)

    async def go():
        app = make_app(ws)
        async with app.run_test(size=(150, 48)) as pilot:
            await settle(app, pilot)
            home = app.screen
            row = home.selected_row()
            assert row is not None and row.model == MODEL and row.drift == "critical"
            keys = {binding_id: text for _, text, binding_id in screen_keys(home)}
            assert "home.retrain" in keys  # the help screen lists it while drift is critical
            await pilot.press("w")
            screen = await wait_for_training_screen(app, pilot)
            assert screen.model == MODEL
            assert screen.query_one("#data", Input).value == "credit@v4"
            assert screen.query_one("#params", Input).value == "epochs=3 hidden=8"
            assert "credit@v4" in str(screen.query_one("#training-reason", Static).render())
    asyncio.run(go())


def test_review_w_opens_training_where_drift_is_critical(story, tmp_path):
    ws = workspace_with_newer_data(story, tmp_path)

    async def go():
        app = make_app(ws)
        async with app.run_test(size=(150, 48)) as pilot:
            await settle(app, pilot)
            app.run_command(f"review {MODEL} 2")
            for _ in range(200):  # drift of the candidate's data vs production's is computed in a worker
                await settle(app, pilot, rounds=1)
                if getattr(app.screen, "drift_report", None) is not None:
                    break
            review = app.screen
            assert review.drift_report.severity == "critical"
            assert review.check_action("retrain_newest", ()) is True
            assert "review.retrain" in {binding_id for _, _, binding_id in screen_keys(review)}
            await pilot.press("w")
            screen = await wait_for_training_screen(app, pilot)
            assert screen.model == MODEL and screen.query_one("#data", Input).value == "credit@v4"
    asyncio.run(go())


def test_w_is_absent_without_critical_drift_and_in_read_only(story, production_ws, tmp_path):
    calm = copy_ws(production_ws, tmp_path / "calm")  # production only: no candidate, no drift

    async def go(ws, read_only):
        app = make_app(ws, read_only=read_only)
        async with app.run_test(size=(150, 48)) as pilot:
            await settle(app, pilot)
            home = app.screen
            assert "home.retrain" not in {binding_id for _, _, binding_id in screen_keys(home)}
            await pilot.press("w")
            await settle(app, pilot)
            assert app.screen is home
    asyncio.run(go(calm, False))
    asyncio.run(go(copy_ws(story.ws, tmp_path / "ro"), True))


def test_home_w_names_the_candidate_already_trained_on_the_newest_data(story, tmp_path):
    """The story's retrain left candidate 2 on credit@v3, the newest version, with drift critical:
    `w` must not offer a second retrain on credit@v3; it names the candidate and stays on home."""
    ws = copy_ws(story.ws, tmp_path)

    async def go():
        app = make_app(ws)
        async with app.run_test(size=(150, 48)) as pilot:
            await settle(app, pilot)
            home = app.screen
            row = home.selected_row()
            assert row is not None and row.model == MODEL and row.drift == "critical"
            await pilot.press("w")
            messages: list[str] = []
            for _ in range(200):  # the check runs in a worker; poll, generously
                await settle(app, pilot, rounds=1)
                messages = [n.message for n in app._notifications]
                if messages or app.screen is not home:
                    break
            assert app.screen is home and not isinstance(app.screen, TrainingScreen)
            assert any("candidate 2" in m and "credit@v3" in m for m in messages), messages
    asyncio.run(go())
