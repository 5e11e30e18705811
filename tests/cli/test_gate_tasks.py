"""`mrc gate --predictions F --task regression|multiclass` and metrics files with MLflow's names, in process."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from console.cli import main


def gate(capsys, *args):
    code = main(["gate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def regression_file(tmp_path):
    rng = np.random.default_rng(0)
    n = 1500
    y = rng.normal(100, 20, n)
    region = rng.choice(["north", "south", "east"], n)
    good = y + rng.normal(0, 5, n)
    # production is as good everywhere; the candidate is much worse in the south only
    worse = np.where(region == "south", y + rng.normal(0, 25, n), y + rng.normal(0, 5, n))
    df = pd.DataFrame({"y_true": y, "pred_new": good, "pred_bad": worse, "pred_prod": y + rng.normal(0, 5.2, n),
                       "region": region})
    path = tmp_path / "reg.csv"
    df.to_csv(path, index=False)
    return path, df


REG_POLICY = {"metric_directions": {"rmse": "lower", "mae": "lower", "r2": "higher", "max_residual": "lower"},
              "hard_gates": {"r2": 0.8}, "relative_gates": {"rmse": 0.05, "mae": 0.05},
              "slices": {"column": "region", "metrics": ["mae"], "tolerance": 1.0},
              "significance": {"metrics": ["mae", "rmse"], "require": "not_worse", "margin": 0.02}}


def test_regression_gate_computes_sklearns_metrics_and_passes_a_good_candidate(capsys, regression_file, tmp_path):
    path, df = regression_file
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(REG_POLICY))
    code, out, err = gate(capsys, "--predictions", str(path), "--task", "regression", "--policy", str(policy),
                          "--candidate-column", "pred_new", "--baseline-column", "pred_prod", "--json")
    assert code == 0, err
    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["hard_gate_r2"]["value"] == pytest.approx(skm.r2_score(df.y_true, df.pred_new))
    assert checks["relative_gate_rmse"]["value"] == pytest.approx(skm.root_mean_squared_error(df.y_true, df.pred_new))
    assert checks["relative_gate_mae"]["baseline_value"] == pytest.approx(skm.mean_absolute_error(df.y_true, df.pred_prod))
    assert {"slice_region=south_mae", "significance_mae", "significance_rmse"} <= set(checks)
    assert report["passed"] is True


def test_regression_gate_fails_a_candidate_worse_on_one_slice(capsys, regression_file, tmp_path):
    path, _ = regression_file
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(REG_POLICY))
    code, out, _ = gate(capsys, "--predictions", str(path), "--task", "regression", "--policy", str(policy),
                        "--candidate-column", "pred_bad", "--baseline-column", "pred_prod", "--json")
    assert code == 1
    failed = {c["name"] for c in json.loads(out)["checks"] if c["status"] == "failed"}
    assert "slice_region=south_mae" in failed and "significance_mae" in failed
    assert "slice_region=north_mae" not in failed and "slice_region=east_mae" not in failed


def test_multiclass_gate_with_per_class_recall_floor_and_mcnemar(capsys, tmp_path):
    rng = np.random.default_rng(1)
    n = 1200
    y = rng.choice(["billing", "fraud", "tech"], n)
    noise = rng.choice(["billing", "fraud", "tech"], n)
    prod = np.where(rng.random(n) < 0.8, y, noise)
    cand = np.where((y == "fraud") & (rng.random(n) < 0.7), "billing", prod)  # forgets fraud
    path = tmp_path / "mc.csv"
    pd.DataFrame({"y_true": y, "score_candidate": cand, "score_baseline": prod}).to_csv(path, index=False)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({
        "metric_directions": {"accuracy": "higher", "macro_f1": "higher", "recall_class_fraud": "higher"},
        "hard_gates": {"recall_class_fraud": 0.6}, "relative_gates": {"macro_f1": 0.03},
        "significance": {"require": "not_worse"}}))
    code, out, _ = gate(capsys, "--predictions", str(path), "--task", "multiclass", "--policy", str(policy), "--json")
    assert code == 1
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["hard_gate_recall_class_fraud"]["status"] == "failed"
    assert checks["hard_gate_recall_class_fraud"]["value"] == pytest.approx(
        skm.recall_score(y, cand, labels=["fraud"], average=None)[0])
    assert checks["relative_gate_macro_f1"]["value"] == pytest.approx(skm.f1_score(y, cand, average="macro"))
    sig = checks["significance_accuracy"]
    assert sig["status"] == "failed" and sig["extra"]["c"] > sig["extra"]["b"]
    # the same file with the production model as candidate passes the floor
    code, out, _ = gate(capsys, "--predictions", str(path), "--task", "multiclass", "--policy", str(policy),
                        "--candidate-column", "score_baseline", "--baseline-column", "none", "--json")
    assert code == 0, out


def test_metrics_files_with_mlflow_evaluate_names(capsys, tmp_path):
    cand, base = tmp_path / "c.json", tmp_path / "b.json"
    cand.write_text(json.dumps({"root_mean_squared_error": 4.0, "r2_score": 0.91, "mean_absolute_error": 3.0}))
    base.write_text(json.dumps({"root_mean_squared_error": 3.0, "r2_score": 0.93, "mean_absolute_error": 2.9}))
    code, out, err = gate(capsys, "--candidate", str(cand), "--baseline", str(base), "--task", "regression", "--json")
    assert code == 1, err
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["relative_gate_rmse"]["status"] == "failed" and checks["relative_gate_rmse"]["baseline_value"] == 3.0
    assert checks["relative_gate_mae"]["status"] == "passed" and checks["hard_gate_r2"]["value"] == 0.91


@pytest.mark.parametrize("args, expected", [
    (["--task", "ranking"], "--task: unknown task 'ranking'"),
    (["--task", "regression", "--label-column", "target"], "{f}: target: no such column (--label-column"),
    (["--task", "regression", "--candidate-column", "region"], "{f}: region: not numeric ('"),
    (["--task", "multiclass", "--candidate-column", "pred_new"], "{f}: y_true: holds fractions (102.5"),
])
def test_bad_input_is_one_line_exit_2(capsys, regression_file, tmp_path, args, expected):
    path, _ = regression_file
    code, out, err = gate(capsys, "--predictions", str(path), "--baseline-column", "none", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and expected.format(f=path) in err, err


def test_a_binary_metric_in_a_regression_policy_names_the_field(capsys, regression_file, tmp_path):
    path, _ = regression_file
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"metric_directions": {"auc_roc": "higher"}, "hard_gates": {"auc_roc": 0.8}}))
    code, _, err = gate(capsys, "--predictions", str(path), "--task", "regression", "--policy", str(policy),
                        "--candidate-column", "pred_new", "--baseline-column", "none")
    assert code == 2 and f"{policy}: hard_gates.auc_roc: a classification metric" in err
