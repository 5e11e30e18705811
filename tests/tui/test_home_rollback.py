"""The console's rollback: after `R` the banner never offers the version just rolled away from,
`R` again moves nothing, and going back to it is `F` with a confirmation on another key (Pilot)."""

from __future__ import annotations

from tests.support.pilot import make_app, run, settle
from tests.support.workspaces import release_workspace

MODEL = "breast-cancer"


def test_banner_after_a_rollback_does_not_offer_the_bad_version_and_roll_forward_confirms(tmp_path):
    from console.workspace import Workspace
    from screens.dialogs.roll_forward import RollForwardDialog

    ws_path = release_workspace(tmp_path / "ws")

    async def scenario():
        app = make_app(ws_path)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            home = app.screen
            assert "R rolls production 2 back to 1" in str(home.query_one("#home-status").render())
            await pilot.press("R")
            await settle(app, pilot)
            assert home.rows[0].production == "1"
            status = str(home.query_one("#home-status").render())
            assert "back to 2" not in status and "nothing earlier to roll back to" in status
            assert home.rows[0].rollback_to is None
            descriptions = [b.binding.description for b in home.active_bindings.values()]
            assert "Rollback → 2" not in descriptions
            home._last_rollback = 0.0  # past the debounce: a deliberate second press
            await pilot.press("R")
            await settle(app, pilot)
            assert home.rows[0].production == "1"  # nothing to roll back to: nothing moved

            await pilot.press("F")
            await settle(app, pilot)
            dialog = app.screen
            assert isinstance(dialog, RollForwardDialog)
            assert "production 1 → 2" in str(dialog.query_one("#roll-forward-statement").render())
            await pilot.press("F", "enter", "R")  # neither the opening key nor enter confirms
            await settle(app, pilot)
            assert app.screen is dialog
            await pilot.press("ctrl+y")
            await settle(app, pilot)
            assert app.screen is home and home.rows[0].production == "2"

    run(scenario())
    ws = Workspace.open(ws_path)
    registry = ws.registry()
    moves = [(m.from_version, m.to_version) for m in registry.pointer_history(MODEL, "production")]
    assert moves[-2:] == [("2", "1"), ("1", "2")]
    actions = [(e.action, e.version) for e in ws.audit().events(model=MODEL)][-2:]
    assert actions == [("rollback", "1"), ("promote", "2")]
    assert "roll forward" in ws.audit().events(model=MODEL)[-1].details["reason"]
    registry.close()


def test_escape_cancels_the_roll_forward(tmp_path):
    from console.workspace import Workspace

    ws_path = release_workspace(tmp_path / "ws")

    async def scenario():
        app = make_app(ws_path)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("R")
            await settle(app, pilot)
            await pilot.press("F")
            await settle(app, pilot)
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.screen.rows[0].production == "1"

    run(scenario())
    registry = Workspace.open(ws_path).registry()
    assert registry.get_pointers(MODEL)["production"] == "1"
    registry.close()
