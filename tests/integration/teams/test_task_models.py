"""Regression, 3-class and mixed-type models a team logged to MLflow with plain libraries,
gated by `mrc gate MODEL VERSION` with and without a test set; every figure is compared with
scikit-learn's on the team's own model loaded by plain MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from tests.support.cli import run_mrc


def mrc_in(ws: Path, *args: str):
    return run_mrc(*args, "--workspace", str(ws), timeout=600)


def checks_of(result) -> dict[str, dict]:
    return {c["name"]: c for c in result.json()["checks"]}


def plain_model(team, short: str, kind: str, flavor: str):
    import mlflow

    mlflow.set_tracking_uri(team["url"])
    name = f"{team['prefix']}-{short}"
    module = __import__(f"mlflow.{flavor}", fromlist=["load_model"])
    return module.load_model(f"models:/{name}/{team['models'][name]['versions'][kind]}")


def version(team, short, kind) -> str:
    return team["models"][f"{team['prefix']}-{short}"]["versions"][kind]


def test_regression_without_a_test_set_gates_mlflows_recorded_names(task_team, task_ws):
    ws = task_ws({})  # no task, no test set: the recorded names (r2_score …) say regression
    name = f"{task_team['prefix']}-demand"
    result = mrc_in(ws, "gate", name, version(task_team, "demand", "lightgbm"), "--json")
    assert result.returncode in (0, 1), result.stderr
    checks = checks_of(result)
    recorded = task_team["models"][name]["metrics"]
    assert checks["relative_gate_rmse"]["value"] == pytest.approx(recorded["lightgbm"]["root_mean_squared_error"])
    assert checks["relative_gate_rmse"]["baseline_value"] == pytest.approx(recorded["sklearn"]["root_mean_squared_error"])
    assert checks["hard_gate_r2"]["value"] == pytest.approx(recorded["lightgbm"]["r2_score"])
    assert result.returncode == 0 and "significance" in result.json()["not_run"]


def test_regression_with_a_test_set_scores_lightgbm_like_lightgbm(task_team, task_ws):
    data = task_team["data"]["demand"]
    ws = task_ws({"demand": {"test_data": data["test"], "label": "units"}})
    name = f"{task_team['prefix']}-demand"
    result = mrc_in(ws, "gate", name, version(task_team, "demand", "lightgbm"), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = checks_of(result)
    test = pd.read_csv(data["test"])
    cols = ["price", "promo", "season", "stock"]
    lgb_pred = plain_model(task_team, "demand", "lightgbm", "lightgbm").predict(test[cols])
    sk_pred = plain_model(task_team, "demand", "sklearn", "sklearn").predict(test[cols])
    assert checks["relative_gate_rmse"]["value"] == pytest.approx(skm.root_mean_squared_error(test.units, lgb_pred))
    assert checks["relative_gate_mae"]["baseline_value"] == pytest.approx(skm.mean_absolute_error(test.units, sk_pred))
    assert checks["hard_gate_r2"]["value"] == pytest.approx(skm.r2_score(test.units, lgb_pred))
    sig = checks["significance_mae"]
    assert sig["value"] == pytest.approx(skm.mean_absolute_error(test.units, sk_pred)
                                         - skm.mean_absolute_error(test.units, lgb_pred))
    assert {"robustness_nan_input", "robustness_deterministic", "sanity_prediction_shift"} <= set(checks)
    assert result.json()["complete"] is True

    bad = mrc_in(ws, "gate", name, version(task_team, "demand", "bad"), "--json")
    assert bad.returncode == 1
    failed = {c["name"] for c in bad.json()["checks"] if c["status"] == "failed"}
    assert {"hard_gate_r2", "relative_gate_rmse", "significance_mae"} <= failed


def test_three_class_xgboost_is_gated_on_its_class_probabilities(task_team, task_ws, tmp_path):
    data = task_team["data"]["triage"]
    ws = task_ws({"triage": {"test_data": data["test"], "label": "queue"}})
    name = f"{task_team['prefix']}-triage"
    policy = tmp_path / "policy.json"  # per-class recall floor: only a test set has it
    policy.write_text(json.dumps({
        "metric_directions": {"accuracy": "higher", "macro_f1": "higher", "min_class_recall": "higher"},
        "hard_gates": {"accuracy": 0.6, "min_class_recall": 0.5}, "relative_gates": {"macro_f1": 0.03}}))
    result = mrc_in(ws, "gate", name, version(task_team, "triage", "xgboost"), "--policy", str(policy), "--json")
    assert result.returncode in (0, 1), result.stderr
    checks = checks_of(result)
    test = pd.read_csv(data["test"])
    cols = [f"f{i}" for i in range(5)]
    booster = plain_model(task_team, "triage", "xgboost", "xgboost")
    lr = plain_model(task_team, "triage", "sklearn", "sklearn")
    pred, base = booster.predict(test[cols]), lr.predict(test[cols])
    assert checks["hard_gate_accuracy"]["value"] == pytest.approx(skm.accuracy_score(test.queue, pred))
    assert checks["relative_gate_macro_f1"]["value"] == pytest.approx(skm.f1_score(test.queue, pred, average="macro"))
    assert checks["relative_gate_macro_f1"]["baseline_value"] == pytest.approx(
        skm.f1_score(test.queue, base, average="macro"))
    assert checks["hard_gate_min_class_recall"]["value"] == pytest.approx(
        skm.recall_score(test.queue, pred, average=None).min())
    sig = checks["significance_accuracy"]
    assert sig["extra"]["b"] == int(np.sum((pred == test.queue) & (base != test.queue)))
    assert sig["extra"]["c"] == int(np.sum((pred != test.queue) & (base == test.queue)))
    assert checks["robustness_class_collapse"]["status"] == "passed"
    # without a test set: accuracy_score and f1_score (weighted) as MLflow named them
    plain = mrc_in(task_ws({"triage": {"task": "multiclass"}}, name="ws-plain"), "gate", name,
                   version(task_team, "triage", "xgboost"), "--json")
    recorded = task_team["models"][name]["metrics"]["xgboost"]
    assert plain.returncode in (0, 1), plain.stderr
    plain_checks = checks_of(plain)
    assert plain_checks["hard_gate_accuracy"]["value"] == pytest.approx(recorded["accuracy_score"])
    assert plain_checks["relative_gate_weighted_f1"]["value"] == pytest.approx(recorded["f1_score"])


def test_a_mixed_type_pipeline_with_unseen_categories(task_team, task_ws):
    data = task_team["data"]["tickets"]
    ws = task_ws({"tickets": {"test_data": data["test"], "label": "category"}})
    name = f"{task_team['prefix']}-tickets"
    result = mrc_in(ws, "gate", name, version(task_team, "tickets", "v2"), "--json")
    assert result.returncode in (0, 1), result.stderr
    checks = checks_of(result)
    test = pd.read_csv(data["test"])
    cols = ["channel", "plan", "n_calls", "premium", "amount"]
    pipe = plain_model(task_team, "tickets", "v2", "sklearn")
    pred = pipe.predict(test[cols])
    assert checks["hard_gate_accuracy"]["value"] == pytest.approx(skm.accuracy_score(test.category, pred))
    assert checks["relative_gate_weighted_f1"]["value"] == pytest.approx(
        skm.f1_score(test.category, pred, average="weighted"))
    assert checks["robustness_nan_input"]["status"] == "passed", checks["robustness_nan_input"]
    # drift on the same files: χ² names the unseen channel, and the missing values are a category
    drift = run_mrc("drift", "--reference", data["train"], "--current", data["test"], "--json")
    assert drift.returncode in (0, 1), drift.stderr
    channel = next(f for f in drift.json()["features"] if f["name"] == "channel")
    assert channel["method"] == "chi2" and "fax" in channel["extra"]["unseen_categories"]


def test_a_wrong_label_column_is_one_line_exit_2(task_team, task_ws):
    data = task_team["data"]["demand"]
    ws = task_ws({"demand": {"test_data": data["test"], "label": "sales"}})
    result = mrc_in(ws, "gate", f"{task_team['prefix']}-demand", version(task_team, "demand", "lightgbm"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "sales: no label column in the test set" in result.stderr


def test_report_and_review_are_task_shaped(task_team, task_ws, tmp_path):
    """`mrc report --html --md` draws the confusion matrix and recall per class of a 3-class
    model; the console's review screen (Pilot) shows the confusion matrix as text."""
    from screens.review_screen import ReviewScreen
    from tests.support.pilot import make_app, run, settle

    data = task_team["data"]["triage"]
    ws = task_ws({"triage": {"test_data": data["test"], "label": "queue"}})
    name = f"{task_team['prefix']}-triage"
    v = version(task_team, "triage", "xgboost")
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    result = mrc_in(ws, "report", name, v, "--html", str(html), "--md", str(md))
    assert result.returncode == 0, result.stderr
    page = html.read_text()
    assert "Confusion matrix, candidate" in page and "Recall per class" in page
    assert page.count("plotly.js v") == 1  # plotly travels once
    assert "| macro_f1 |" in md.read_text() and "| recall_class_2 |" in md.read_text()

    async def review():
        app = make_app(ws)
        async with app.run_test(size=(160, 60)) as pilot:
            await settle(app, pilot)
            app.run_command(f"review {name} {v}")
            for _ in range(20):
                await settle(app, pilot)
                screen = app.screen
                if isinstance(screen, ReviewScreen) and screen.gate_state not in ("running", None, ""):
                    break
            screen = app.screen
            return screen.gate_state, str(screen.query_one("#task-view").render())

    state, view = run(review())
    assert state == "done", view
    assert "confusion matrix, candidate" in view and "recall per class" in view


@pytest.mark.parametrize("short, kind, flavor, label", [("demand", "lightgbm", "lightgbm", "units"),
                                                        ("triage", "xgboost", "xgboost", "queue"),
                                                        ("tickets", "v2", "sklearn", "category")])
def test_served_answer_is_the_gated_answer_behind_the_real_router(task_team, task_ws, short, kind, flavor, label):
    """`mrc serve-models`, then rows (mixed types and nulls as JSON sends them) through the real
    router: the value / class-probability vector the plain library computes, as the gate does."""
    from tests.support.serving import http_json

    data = task_team["data"][short]
    ws = task_ws({short: {"test_data": data["test"], "label": label}}, name=f"ws-serve-{short}")
    name = f"{task_team['prefix']}-{short}"
    v = version(task_team, short, kind)
    started = mrc_in(ws, "serve-models", name, "--versions", v, "--json")
    assert started.returncode == 0, started.stderr
    try:
        port = int(started.json()["router"].rsplit(":", 1)[1])
        test = pd.read_csv(data["test"]).head(40)
        cols = [c for c in test.columns if c != label]
        rows = [[None if isinstance(x, float) and np.isnan(x) else x for x in row]
                for row in test[cols].astype(object).itertuples(index=False)]
        rows = [[x.item() if hasattr(x, "item") else x for x in row] for row in rows]
        status, reply = http_json(port, "POST", "/predict", {"columns": cols, "rows": rows})
        assert status == 200, reply
        model = plain_model(task_team, short, kind, flavor)
        if short == "demand":
            np.testing.assert_allclose(reply["predictions"], model.predict(test[cols]), rtol=1e-9)
        else:
            np.testing.assert_allclose(reply["predictions"], model.predict_proba(test[cols]), rtol=1e-9)
            assert [str(c) for c in reply["classes"]] == [str(c) for c in model.classes_]
    finally:
        mrc_in(ws, "serve-models", name, "--stop")
