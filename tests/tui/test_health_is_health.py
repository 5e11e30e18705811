"""Health is health (issue 23), through Pilot on a real workspace and a real request log: `F`
shows why the version was rolled back and whether it is healthy by the team's [alerts]
thresholds (a server answering /health is not that); home's health panel measures production
against [alerts], not a fixed 5 %, and names the alerts firing; a second `R` says one is running."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support.pilot import make_app, run, settle
from tests.support.workspaces import release_workspace

MODEL = "breast-cancer"


def _requests(ws: Path, version: str, n: int, errors: int, ms: float = 12.0) -> None:
    """What the router appends to serving/MODEL/requests.jsonl for each request, now."""
    log = ws / "serving" / MODEL / "requests.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    with open(log, "a") as fh:
        for i in range(n):
            status = 500 if i < errors else 200
            fh.write(json.dumps({"type": "request", "t": now - 1 + i * 1e-4, "id": f"{version}-{i}", "key": None,
                                 "v": version, "status": status, "ms": ms, "p": None if status == 500 else 0.3}) + "\n")


def _notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def test_roll_forward_shows_why_and_the_targets_health_by_the_thresholds(tmp_path):
    from screens.dialogs.roll_forward import RollForwardDialog

    ws_path = release_workspace(tmp_path / "ws")

    async def scenario():
        app = make_app(ws_path)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            home = app.screen
            await pilot.press("R")
            await settle(app, pilot)
            assert home.rows[0].production == "1"
            assert any("rolling back breast-cancer: production 2 → 1" in n for n in _notes(app))  # heard at once
            _requests(ws_path, "2", 120, 36)  # 2 still answers /health, and fails 30 % of its requests
            await pilot.press("F")
            await settle(app, pilot)
            dialog = app.screen
            assert isinstance(dialog, RollForwardDialog)
            text = " ".join(str(dialog.query_one("#roll-forward-statement").render()).split())
            assert "Why: rolled back from 2 by tester" in text and "rollback from the console" in text
            assert "2: UNHEALTHY — errors 30.0% > 5.0% max" in text, text
            assert dialog.unhealthy is True
            await pilot.press("escape")

    run(scenario())


def test_a_second_R_while_one_runs_says_so(tmp_path):
    ws_path = release_workspace(tmp_path / "ws")

    async def scenario():
        app = make_app(ws_path)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            home = app.screen
            home._rolling_back = MODEL  # the first R's worker still running (a cold server start)
            await pilot.press("R")
            await pilot.pause(0.05)
            assert any(f"rollback of {MODEL} in progress" in n for n in _notes(app))
            assert home.rows[0].production == "2"  # and nothing else started

    run(scenario())


def test_home_health_uses_the_teams_thresholds_and_names_firing_alerts(tmp_path):
    ws_path = release_workspace(tmp_path / "ws")
    with open(ws_path / "mrc.toml", "a") as fh:
        fh.write("\n[alerts]\nmax_error_rate = 0.2\nmax_p99_latency_ms = 50\n")
    _requests(ws_path, "2", 100, 10)  # 10 % errors: under the team's 20 %, over a fixed 5 %

    async def scenario():
        app = make_app(ws_path)
        async with app.run_test(size=(200, 50)) as pilot:
            await settle(app, pilot)
            panel = app.screen.query_one("#health")
            numbers = str(panel.query_one("#health-numbers").render())
            assert "error rate 10.00% (max 20.00%)" in numbers and "(max 50 ms)" in numbers, numbers
            assert "OVER THRESHOLD" not in numbers and "req/s (alerts judge from" in numbers
            assert panel.alarm is False  # red only over the team's thresholds

            _requests(ws_path, "2", 100, 0, ms=80.0)  # p99 over the team's 50 ms
            panel.refresh_now()
            await settle(app, pilot)
            numbers = str(panel.query_one("#health-numbers").render())
            assert "OVER THRESHOLD: p99 80 ms > 50 ms" in numbers and panel.alarm, numbers

            await pilot.press("R")  # a rollback fires RollbackDone: the panel names it
            await settle(app, pilot)
            panel.refresh_now()
            await settle(app, pilot)
            alerts = panel.query_one("#health-alerts")
            assert alerts.display and "alerts firing: RollbackDone" in str(alerts.render()), str(alerts.render())

    run(scenario())
