"""Home on a big registry paints every model and a first page of versions, then the rest.

Real local backend (tests/support/workspaces.big_workspace); the order of what reached the screen is
read from the console's own trace lines and from the tables, never from timings."""

from __future__ import annotations

from screens.widgets.virtual_table import VirtualTable
from tests.support.pilot import make_app, run, settle
from tests.support.workspaces import big_workspace
from tests.support.remote import _remote_credentials  # noqa: F401  (autouse: sentinel credentials, as in its old folder)


def test_big_registry_paints_rows_first_then_every_version(tmp_path):
    from screens.home_screen import FIRST_PAGE_VERSIONS

    ws = big_workspace(tmp_path / "ws", models=6, versions=90)  # 540 versions: more than one page
    traced: list[str] = []

    async def scenario():
        app = make_app(ws)
        original = app.trace
        app.trace = lambda line: (traced.append(line), original(line))
        async with app.run_test(size=(150, 45)) as pilot:
            home = app.screen
            await settle(app, pilot, rounds=6)
            assert home.loads == 1
            assert home.query_one("#versions", VirtualTable).row_count == 540

    run(scenario())
    loaded = [line for line in traced if line.startswith("home ")]
    assert loaded[0].startswith("home loaded: 6 models, first page of ")
    first_page = int(loaded[0].split("first page of ")[1].split()[0])
    assert FIRST_PAGE_VERSIONS <= first_page < 540 and first_page % 90 == 0  # whole models, a screenful or more
    assert loaded[1] == "home all versions: 540"


def test_small_registry_loads_in_one_message(release_ws):
    traced: list[str] = []

    async def scenario():
        app = make_app(release_ws)
        original = app.trace
        app.trace = lambda line: (traced.append(line), original(line))
        async with app.run_test(size=(150, 45)) as pilot:
            await settle(app, pilot)
            assert app.screen.loads == 1

    run(scenario())
    loaded = [line for line in traced if line.startswith("home ")]
    assert len(loaded) == 1 and loaded[0].startswith("home loaded: 2 models, ") and "first page" not in loaded[0]
