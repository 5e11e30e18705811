"""Review: enter on a gate check opens its full detail (Pilot, real demo workspace and gate engine)."""

from __future__ import annotations

import re

from rich.console import Console

from tests.support.pilot import make_app, run, settle
from tests.support.remote import _remote_credentials  # noqa: F401  (autouse: sentinel credentials, as in its old folder)


def _plain(renderable, width: int) -> str:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text()


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_enter_on_a_failed_check_shows_its_whole_detail_and_escape_returns(demo_ws):
    from screens.check_detail_screen import CheckDetailScreen
    from screens.review_screen import ReviewScreen

    async def scenario():
        app = make_app(demo_ws)
        async with app.run_test(size=(100, 40)) as pilot:  # narrow: the table cuts the detail column
            await settle(app, pilot)
            app.run_command("review breast-cancer 4")  # trained on drifted data: gates fail
            await settle(app, pilot)
            review = app.screen
            assert isinstance(review, ReviewScreen) and review.gate_report is not None
            checks = review.gate_report.checks
            row = next(i for i, c in enumerate(checks) if c.passed is False and c.detail)
            table = review.query_one("#gates")
            table.focus()
            table.move_cursor(row=row)
            await pilot.press("enter")
            await settle(app, pilot)
            detail = app.screen
            assert isinstance(detail, CheckDetailScreen)
            assert detail.check is checks[row]
            body = detail.query_one("#check-body")
            from textual.geometry import Region

            strips = body.render_lines(Region(0, 0, body.size.width, body.size.height))
            shown = _squash(" ".join(strip.text for strip in strips))  # what is on screen, wrapped
            assert _squash(checks[row].detail) in shown
            assert "FAIL" in shown and checks[row].name in shown
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.screen is review

    run(scenario())


def test_check_lines_keep_the_full_detail_and_extra_and_escape_control_characters():
    from console.domain import GateCheck
    from screens.check_detail_screen import check_lines

    long_detail = "auc_roc 0.812 < threshold 0.85 " + "because the candidate lost ground on the drifted slice " * 8
    check = GateCheck("auc_floor", "metric", False, value=0.812, threshold=0.85, baseline_value=0.9,
                      detail=long_detail + "\x1b[31mred", extra={"ci": [-0.1, -0.02], "n": 569})
    text = _squash(_plain(check_lines(check), 60))
    assert _squash(long_detail) in text
    assert "\\x1b[31mred" in text and "\x1b" not in text
    assert "[-0.1, -0.02]" in text and "569" in text and "FAIL" in text
