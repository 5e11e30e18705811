"""The canary start dialog (Pilot): it describes the judge that runs, and the focus starts on the
plan, so a typed plan replaces the default instead of landing in the reason (issue 23)."""

from __future__ import annotations

from tests.support.pilot import make_app, run, settle
from tests.support.workspaces import release_workspace


def test_canary_start_focuses_the_plan_and_names_the_running_judge(tmp_path):
    from screens.dialogs.canary_start import CanaryStartDialog

    ws_path = release_workspace(tmp_path / "ws")

    async def scenario():
        app = make_app(ws_path)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            dialog = CanaryStartDialog("breast-cancer", "5", "2", "approved", opened_by="C")
            app.push_screen(dialog)
            await settle(app, pilot)
            assert app.focused is dialog.query_one("#plan")
            statement = " ".join(str(dialog.query_one("#canary-start-statement").render()).split())
            assert "sequential (anytime-valid) tests" in statement and "failing windows in a row" not in statement
            await pilot.pause(0.5)  # past the held-key guard: a person typing now
            await pilot.press(*"50,100")
            assert dialog.query_one("#plan").value == "50,100"  # the typed plan replaced the default
            assert dialog.query_one("#reason").value == ""
            await pilot.press("escape")

    run(scenario())
