"""Drift from the data a version's lineage names (data_uri, name@version, else the model's
reference_data), recorded per version; and the console's honest review of a version gated from
recorded metrics only (no test set) or whose gates could not be evaluated at all."""

from __future__ import annotations

import json

import pytest

from tests.support.datagates import append_toml, synthetic


def _local_ws(tmp_path, mrc, versions: dict[str, dict], production: str, candidate: str):
    """A local workspace whose versions carry recorded metrics and lineage (artifacts are bytes:
    nothing here loads a model)."""
    from backends.base import Lineage
    from console.workspace import Workspace

    root = tmp_path / "ws"
    assert mrc("init", "--workspace", str(root)).returncode == 0
    ws = Workspace.open(root)
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"opaque model bytes")
    for version, spec in versions.items():
        ws.registry().register_version("m", str(artifact), version=version, metrics=spec.get("metrics", {}),
                                       lineage=Lineage(**spec.get("lineage", {})))
    assert mrc("promote", "m", production, "--override", "--reason", "setup", "--workspace", str(root)).returncode == 0
    assert mrc("alias", "m", "candidate", candidate, "--workspace", str(root)).returncode == 0
    return root


def _data(tmp_path, name: str, seed: int, shift: float = 0.0) -> str:
    path = tmp_path / name
    df = synthetic(800, seed=seed, shift=shift)
    df.to_parquet(path, index=False) if name.endswith(".parquet") else df.to_csv(path, index=False)
    return str(path)


def test_drift_uses_the_lineage_data_and_records_it_per_version(tmp_path, mrc):
    v1, v2, v3 = _data(tmp_path, "v1.csv", 20), _data(tmp_path, "v2.parquet", 21, shift=1.5), _data(tmp_path, "v3.csv", 22)
    root = _local_ws(tmp_path, mrc, {"1": {"lineage": {"data_uri": v1}}, "2": {"lineage": {"data_uri": v2}},
                                     "3": {"lineage": {"data_uri": v3}}}, production="1", candidate="2")
    drifted = mrc("drift", "--model", "m", "--json", "--workspace", str(root))
    assert drifted.returncode == 1, drifted.stderr  # critical: f0 moved by 1.5 sd
    report = drifted.json()
    assert (report["reference"], report["current"], report["version"], report["baseline_version"]) == (v1, v2, "2", "1")
    assert {f["name"]: f["severity"] for f in report["features"]}["f0"] == "critical"
    assert _models_drift(mrc, root) == "critical"

    same = mrc("drift", "--model", "m", "--version", "3", "--json", "--workspace", str(root))
    assert same.returncode == 0 and same.json()["severity"] != "critical" and same.json()["current"] == v3
    # reviewing another version does not rewrite the candidate's status (issue 11)
    assert _models_drift(mrc, root) == "critical"
    recorded = json.loads((root / "reports" / "m" / "drift-3.json").read_text())
    assert (recorded["version"], recorded["current"], recorded["reference"]) == ("3", v3, v1)
    assert json.loads((root / "reports" / "m" / "drift-2.json").read_text())["severity"] == "critical"

    human = mrc("drift", "--model", "m", "--read-only", "--workspace", str(root))
    assert human.returncode == 1 and "drift CRITICAL" in human.stdout


def _models_drift(mrc, root):
    result = mrc("models", "--json", "--workspace", str(root))
    assert result.returncode == 0, result.stderr
    return {m["name"]: m for m in result.json()["models"]}["m"]["drift"]


def test_drift_without_readable_data_is_one_line(tmp_path, mrc):
    root = _local_ws(tmp_path, mrc, {"1": {"lineage": {"data_version": "dvc:1abc"}},
                                     "2": {"lineage": {"data_version": "churn-train"}}}, production="1", candidate="2")
    result = mrc("drift", "--model", "m", "--workspace", str(root))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "m: no training data to compare: neither version 2 nor production 1" in result.stderr
    assert "models.m.reference_data is not set" in result.stderr
    assert not (root / "reports").exists()


def test_reference_data_from_mrc_toml_when_production_names_none(tmp_path, mrc):
    ref, cur = _data(tmp_path, "ref.csv", 30), _data(tmp_path, "cur.csv", 31)
    root = _local_ws(tmp_path, mrc, {"1": {}, "2": {"lineage": {"data_uri": cur}}}, production="1", candidate="2")
    append_toml(root, f'[models.m]\nreference_data = "{ref}"\n')
    result = mrc("drift", "--model", "m", "--json", "--workspace", str(root))
    assert result.returncode == 0, result.stderr
    assert (result.json()["reference"], result.json()["current"], result.json()["baseline_version"]) == (ref, cur, "")


# -- the console ------------------------------------------------------------------------------

METRICS = {"1": {"auc_roc": 0.90, "precision": 0.85, "f1": 0.80}, "2": {"auc_roc": 0.91, "precision": 0.86, "f1": 0.81}}


def test_review_lists_checks_not_run_and_approval_needs_the_override_key(tmp_path, mrc):
    from screens.dialogs.approve import ApproveDialog
    from screens.review_screen import ReviewScreen
    from tests.support.pilot import make_app, run, settle
    from tests.support.pilot import keys

    v1, v2 = _data(tmp_path, "v1.csv", 40), _data(tmp_path, "v2.csv", 41)
    root = _local_ws(tmp_path, mrc, {"1": {"metrics": METRICS["1"], "lineage": {"data_uri": v1}},
                                     "2": {"metrics": METRICS["2"], "lineage": {"data_uri": v2}}},
                     production="1", candidate="2")

    async def scenario():
        app = make_app(root)
        async with app.run_test(size=(160, 60)) as pilot:
            await settle(app, pilot)
            app.push_screen(ReviewScreen("m"))
            await settle(app, pilot)
            review = app.screen
            assert isinstance(review, ReviewScreen) and review.gate_state == "done"
            rows = [[str(cell) for cell in row] for row in _rows(review.query_one("#gates"))]
            not_run = [r[1] for r in rows if r[0] == "· not run"]
            assert not_run == ["significance", "robustness", "sanity"]
            assert [r[0] for r in rows if r[1].startswith(("hard_", "relative_"))] == ["✔ pass"] * 4
            status = str(review.query_one("#gates-status").render())
            assert "ALL GATES PASSED" in status and "3 checks not run: no test set" in status
            drift = str(review.query_one("#drift-status").render())
            assert v2 in drift and v1 in drift  # says which data it compared

            await pilot.press("a")
            dialog = app.screen
            assert isinstance(dialog, ApproveDialog)
            statement = str(dialog.query_one("#approve-statement").render())
            assert "3 checks not run: no test set" in statement
            await pilot.pause(0.6)
            await pilot.press(*keys("recorded metrics reviewed"))
            await pilot.press("ctrl+y")
            await pilot.pause(0.1)
            assert app.screen is dialog  # refused without the override
            assert "refused: 3 checks not run" in str(dialog.query_one("#dialog-error").render())
            await pilot.press("ctrl+o", "ctrl+y")
            await settle(app, pilot)
            assert not isinstance(app.screen, ApproveDialog)

    run(scenario())
    from console.workspace import Workspace

    ws = Workspace.open(root)
    mv = ws.registry().get_version("m", "2")
    assert mv.approval.status == "approved" and mv.approval.override is True and len(mv.approval.gate_report_sha256) == 64
    event = ws.audit().events()[-1]
    assert event.action == "approve" and event.details["checks_not_run"] == ["significance", "robustness", "sanity"]
    assert event.details["override"] is True and event.details["gate_passed"] is True


def test_a_gate_evaluation_error_never_records_a_clean_approval(tmp_path, mrc):
    """The console bug of issue 10: an errored gate evaluation approved with override=False."""
    from screens.dialogs.approve import ApproveDialog
    from screens.review_screen import ReviewScreen
    from tests.support.pilot import make_app, run, settle
    from tests.support.pilot import keys

    root = _local_ws(tmp_path, mrc, {"1": {"metrics": METRICS["1"]}, "2": {"metrics": METRICS["2"]}},
                     production="1", candidate="2")
    append_toml(root, f'[models.m]\ntest_data = "{tmp_path / "gone.csv"}"\n')

    async def scenario():
        app = make_app(root)
        async with app.run_test(size=(160, 60)) as pilot:
            await settle(app, pilot)
            app.push_screen(ReviewScreen("m"))
            await settle(app, pilot)
            review = app.screen
            assert review.gate_state == "error" and "gone.csv: no such file" in review.gate_error
            await pilot.press("a")
            dialog = app.screen
            assert isinstance(dialog, ApproveDialog)
            assert "gates: NOT EVALUATED" in str(dialog.query_one("#approve-statement").render())
            await pilot.pause(0.6)
            await pilot.press(*keys("trust me"))
            await pilot.press("ctrl+y")
            await pilot.pause(0.1)
            assert app.screen is dialog
            assert "refused: the gates could not be evaluated" in str(dialog.query_one("#dialog-error").render())
            await pilot.press("ctrl+o", "ctrl+y")
            await settle(app, pilot)

    run(scenario())
    from console.workspace import Workspace

    ws = Workspace.open(root)
    mv = ws.registry().get_version("m", "2")
    assert mv.approval.status == "approved" and mv.approval.override is True and mv.approval.gate_report_sha256 == ""
    event = ws.audit().events()[-1]
    assert event.details["override"] is True and "gone.csv: no such file" in event.details["gate_error"]


def test_decide_refuses_an_errored_gate_without_override(tmp_path, mrc):
    """The one path every surface calls: no clean approval on a gate error, even if a UI forgets."""
    from console.errors import PolicyRefusal
    from console.release.actions import decide
    from console.workspace import Workspace

    root = _local_ws(tmp_path, mrc, {"1": {}, "2": {}}, production="1", candidate="2")
    ws = Workspace.open(root)
    with pytest.raises(PolicyRefusal, match="could not be evaluated"):
        decide(ws.registry(), ws.audit(), "m", "2", status="approved", actor="t", reason="r", gate_error="boom")
    assert ws.registry().get_version("m", "2").approval.status == "pending"


def _rows(table):
    return [table.get_row_at(i) for i in range(table.row_count)]
