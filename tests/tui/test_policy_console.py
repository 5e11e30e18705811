"""The console under [policy.production] (Pilot, real demo workspace, real trainer and gates):
the review header says "1 of 2 approvals" and who is still needed, and the approve dialog
refuses the trainer's own approval in one line. Run under the TUI lock (see COMMON rules)."""

from __future__ import annotations

from console.workspace import Workspace
from tests.support.policy import protect
from tests.support.pilot import make_app, run, settle
from tests.support.remote import _remote_credentials  # noqa: F401  (autouse: sentinel credentials, as in its old folder)

MODEL = "breast-cancer"


async def _review(app, pilot):
    await settle(app, pilot)
    app.run_command(f"review {MODEL} 5")
    await settle(app, pilot)
    from screens.review_screen import ReviewScreen

    assert isinstance(app.screen, ReviewScreen)
    return app.screen


def _header(review) -> str:
    return str(review.query_one("#review-header").render())


def _keys(text: str) -> list[str]:
    return ["space" if c == " " else c for c in text]


def _approval(ws_path):
    return Workspace.open(ws_path).registry().get_version(MODEL, "5").approval


def test_trainer_cannot_approve_in_the_dialog_and_the_header_names_who_is_needed(demo_ws, monkeypatch):
    from screens.dialogs import approve as approve_dialog

    now = [1000.0]
    monkeypatch.setattr(approve_dialog, "clock", lambda: now[0])
    protect(demo_ws, "required_approvals = 2")
    trainer = Workspace.open(demo_ws).registry().get_version(MODEL, "5").lineage.trained_by
    assert trainer == "tester"  # the demo's versions come from the real trainer, run as MRC_ACTOR=tester

    async def as_trainer():
        app = make_app(demo_ws, actor="tester")
        async with app.run_test(size=(160, 50)) as pilot:
            review = await _review(app, pilot)
            assert "0 of 2 approvals: needs 2 more, not tester (trainer)" in _header(review)
            await pilot.press("a")
            dialog = app.screen
            assert isinstance(dialog, approve_dialog.ApproveDialog)
            now[0] += 2.0
            await pilot.press(*_keys("looks fine to me"))
            await pilot.press("ctrl+y")
            await settle(app, pilot)
            assert app.screen is dialog  # refused: still open
            error = str(dialog.query_one("#dialog-error").render())
            assert error.count("\n") == 0
            assert "refused: tester trained breast-cancer 5 and cannot approve it" in error

    run(as_trainer())
    assert _approval(demo_ws).status == "pending"

    async def as_bob():
        app = make_app(demo_ws, actor="bob")
        async with app.run_test(size=(160, 50)) as pilot:
            review = await _review(app, pilot)
            assert review.gate_report is not None and review.gate_report.passed
            await pilot.press("a")
            dialog = app.screen
            now[0] += 2.0
            assert not dialog.query("#approve-policy")  # bob may approve: no refusal shown
            await pilot.press(*_keys("gates pass"))
            await pilot.press("ctrl+y")
            await settle(app, pilot)
            assert app.screen is review
            await settle(app, pilot)
            return _header(review)

    header = run(as_bob())
    assert "1 of 2 approvals: needs 1 more, not tester (trainer), not bob (approved)" in header
    approval = _approval(demo_ws)
    assert approval.status == "approved" and approval.by == "bob"
    events = Workspace.open(demo_ws).audit().events()
    assert events[-1].action == "approval.requested" and events[-1].details["needs"] == 1
    assert events[-2].action == "approve" and events[-2].details["identity"]["claimed"] == "bob"
