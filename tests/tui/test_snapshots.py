"""One snapshot per screen and per critical state (gate failed, drift critical, read-only,
empty registry). Review a report before `--snapshot-update`: these are what users see.

The registry is synthetic and fixed (tests/support/workspaces.py), the clock is fixed, and the gate and
drift reports are built here, so that every byte of every snapshot is stable; the engines that
produce such reports are tested in their own areas and in test_flows.py.
"""

from __future__ import annotations

import shutil

import pytest

from console.domain import DriftFeature, DriftReport, GateCheck, GateReport
from tests.support.once import exclusive
from tests.support.pilot import SNAPSHOT_WS, make_app, settle

SIZE = (150, 48)


def failing_report() -> GateReport:
    return GateReport("breast-cancer", "4", "2", "ab" * 32, [
        GateCheck("hard_gate_auc_roc", "hard", False, 0.6132, 0.85, None, "auc_roc 0.6132 below the hard gate 0.85"),
        GateCheck("hard_gate_precision", "hard", False, 0.62, 0.80, None, "precision 0.62 below the hard gate 0.8"),
        GateCheck("relative_gate_auc_roc", "relative", False, 0.6132, 0.02, 0.9874, "regression 37.9% > 2%"),
        GateCheck("latency_gate", "latency", True, 0.4, 50.0, 0.4, "p99 0.4 ms within 50 ms"),
        GateCheck("significance_auc_roc", "significance", False, -0.3742, -0.01, 0.9874,
                  "auc_roc loss -0.3742, 95% CI [-0.41, -0.33]", {"ci": [-0.41, -0.33]}),
    ])


def passing_report() -> GateReport:
    return GateReport("breast-cancer", "5", "2", "ab" * 32, [
        GateCheck("hard_gate_auc_roc", "hard", True, 0.9901, 0.85, None, "auc_roc 0.9901 meets the hard gate 0.85"),
        GateCheck("relative_gate_auc_roc", "relative", True, 0.9901, 0.02, 0.9874, "improvement +0.27%"),
        GateCheck("significance_auc_roc", "significance", True, 0.0027, -0.01, 0.9874,
                  "auc_roc gain +0.0027, 95% CI [-0.004, +0.009]", {"ci": [-0.004, 0.009]}),
        GateCheck("significance_f1", "significance", True, 0.01, -0.01, 0.93,
                  "f1 gain +0.01, 95% CI [-0.02, +0.04]", {"ci": [-0.02, 0.04]}),
    ])


def drift(critical: bool) -> DriftReport:
    shifted = [0, 1, 2, 5, 9, 14, 20, 26]
    normal = [26, 20, 14, 9, 5, 2, 1, 0]
    features = [
        DriftFeature("mean_texture", "numeric", "psi", 1.92 if critical else 0.02, 1e-12 if critical else 0.6,
                     "critical" if critical else "none",
                     {"reference_bins": normal, "current_bins": shifted if critical else normal}),
        DriftFeature("worst_symmetry", "numeric", "ks", 0.21, 0.004, "warning",
                     {"reference_bins": normal, "current_bins": [20, 22, 14, 10, 6, 3, 1, 1]}),
        DriftFeature("radius_error", "numeric", "ks", 0.03, 0.9, "none",
                     {"reference_bins": normal, "current_bins": normal}),
    ]
    report = DriftReport(features, drift_share=(2 / 3) if critical else (1 / 3), dataset_drift=critical,
                         reference_rows=342, current_rows=342)
    return report


def open_review(version: str, report: GateReport, drift_report: DriftReport):
    async def run_before(pilot) -> None:
        app = pilot.app
        await settle(app, pilot)
        app.gate_reports[("breast-cancer", version)] = report
        app.drift_reports[("breast-cancer", version)] = drift_report
        app.run_command(f"review breast-cancer {version}")
        await settle(app, pilot)
    return run_before


async def loaded(pilot) -> None:
    await settle(pilot.app, pilot)


def still(run_before):
    """A blinking cursor would make a snapshot flip between two images."""
    async def wrapped(pilot) -> None:
        await run_before(pilot)
        from textual.widgets import Input

        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False
        await pilot.pause(0.05)
    return wrapped


def test_home(snap_compare, release_ws):
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(loaded))


def test_home_read_only(snap_compare, release_ws):
    assert snap_compare(make_app(release_ws, read_only=True), terminal_size=SIZE, run_before=still(loaded))


def test_home_filtered(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("slash", "r", "e", "j")
        await pilot.pause(0.4)  # the model table follows once typing pauses
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))


@pytest.fixture
def empty_fixed_ws(mrc):
    with exclusive(SNAPSHOT_WS):  # the fixed path, one test at a time
        if SNAPSHOT_WS.parent.exists():
            shutil.rmtree(SNAPSHOT_WS.parent)
        assert mrc("init", "--workspace", str(SNAPSHOT_WS)).returncode == 0
        yield SNAPSHOT_WS
        shutil.rmtree(SNAPSHOT_WS.parent, ignore_errors=True)


def test_home_empty_registry(snap_compare, empty_fixed_ws):
    assert snap_compare(make_app(empty_fixed_ws), terminal_size=SIZE, run_before=still(loaded))


def test_review_gates_passed(snap_compare, release_ws):
    assert snap_compare(make_app(release_ws), terminal_size=SIZE,
                        run_before=still(open_review("5", passing_report(), drift(False))))


def test_review_gate_failed_and_drift_critical(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await open_review("4", failing_report(), drift(True))(pilot)
        pilot.app.screen.query_one("#review-body").scroll_to(y=12, animate=False)
        await pilot.pause(0.05)
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))


def test_approve_dialog_on_failed_gates(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await open_review("4", failing_report(), drift(True))(pilot)
        await pilot.press("a")
        await pilot.pause(0.6)
        await pilot.press("ctrl+y")  # refused: gates failed, no override
        await pilot.pause(0.05)
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))


def test_reject_dialog(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await open_review("5", passing_report(), drift(False))(pilot)
        await pilot.press("x")
        await pilot.pause(0.05)
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))


def test_history(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("h")
        await settle(pilot.app, pilot)
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))


def test_diff(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("h")
        await settle(pilot.app, pilot)
        await pilot.press("up", "up", "up", "space", "down", "down", "down", "d")
        await settle(pilot.app, pilot)  # the diff's read is a worker: wait for it, not for a clock (-n 2 under load)
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))


def test_audit(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("l")
        await settle(pilot.app, pilot)
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))


def test_training_form(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("t")
        await settle(pilot.app, pilot)  # the screen reads the candidate alias it will move in a worker
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))


def test_help(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.05)
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))


def test_command_mode(snap_compare, release_ws):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        await pilot.press("colon", "h", "i")
        await pilot.pause(0.05)
    assert snap_compare(make_app(release_ws), terminal_size=SIZE, run_before=still(run_before))
