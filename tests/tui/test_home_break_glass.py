"""The console's break glass: `G` opens a dialog naming the split now and the fallback, only
ctrl+y confirms (neither G again nor enter), escape leaves traffic and the audit log as they were
(Pilot). The confirmed act is `console.release.break_glass`, proven on the real router in
tests/integration/serving/test_break_glass.py."""

from __future__ import annotations

import json

from tests.support.pilot import make_app, run, settle
from tests.support.workspaces import release_workspace

MODEL = "breast-cancer"


def test_g_asks_first_names_the_fallback_and_escape_moves_nothing(tmp_path):
    from console.release.audit import AuditLog
    from screens.dialogs.break_glass import BreakGlassDialog

    ws_path = release_workspace(tmp_path / "ws")
    serving = ws_path / "serving" / MODEL
    serving.mkdir(parents=True)
    split = json.dumps({"weights": [["2", 90], ["5", 10]], "revision": 7})
    (serving / "split.json").write_text(split)  # what a stopped router left: the split the console reads
    events_before = len(AuditLog(str(ws_path / "mrc.db")).events())

    async def scenario():
        app = make_app(ws_path)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            home = app.screen
            await pilot.press("G")
            await settle(app, pilot)
            dialog = app.screen
            assert isinstance(dialog, BreakGlassDialog)
            text = str(dialog.query_one("#break-glass-statement").render())
            assert f"Break glass: {MODEL}: traffic 2 90%, 5 10% → 1 100%" in text
            assert "production's pointer does not move" in text and "ctrl+y breaks the glass" in text
            await pilot.press("G", "enter")  # neither the opening key nor enter confirms
            await settle(app, pilot)
            assert app.screen is dialog
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.screen is home

    run(scenario())
    assert (serving / "split.json").read_text() == split
    assert len(AuditLog(str(ws_path / "mrc.db")).events()) == events_before
