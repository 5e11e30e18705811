"""The gate policy: the seed's gate_config.json with the seed's verdicts, and bad input."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.base import BadInputError
from console.evaluate import gates

# The seed article's own example policy (000_c87f1661b78c8c91.txt), as written.
SEED_POLICY = {
    "metric_directions": {"auc_roc": "higher", "precision": "higher", "recall": "higher", "f1": "higher",
                          "rmse": "lower", "mae": "lower"},
    "hard_gates": {"auc_roc": 0.85, "precision": 0.80},
    "relative_gates": {"auc_roc": 0.02, "f1": 0.03, "rmse": 0.05},
    "max_p99_latency_ms": 50,
    "max_model_size_mb": 500,
}


def reference_verdict(policy: dict, candidate: dict, baseline: dict) -> tuple[bool, dict[str, bool]]:
    """An independent statement of the seed's rules, to check the engine against."""
    verdicts: dict[str, bool] = {}
    for metric, threshold in policy.get("hard_gates", {}).items():
        higher = policy["metric_directions"][metric] == "higher"
        value = candidate[metric]
        verdicts[f"hard_gate_{metric}"] = not (value < threshold) if higher else not (value > threshold)
    for metric, tolerance in policy.get("relative_gates", {}).items():
        higher = policy["metric_directions"][metric] == "higher"
        c, b = candidate[metric], baseline[metric]
        loss = (b - c) if higher else (c - b)
        if b > 1e-9:  # the seed's relative rule needs a positive baseline; otherwise the absolute change
            loss /= b
        verdicts[f"relative_gate_{metric}"] = loss < tolerance
    if "max_p99_latency_ms" in policy and "p99_latency_ms" in candidate:
        verdicts["latency_gate"] = candidate["p99_latency_ms"] <= policy["max_p99_latency_ms"]
    if "max_model_size_mb" in policy and "model_size_mb" in candidate:
        verdicts["size_gate"] = candidate["model_size_mb"] <= policy["max_model_size_mb"]
    return all(verdicts.values()), verdicts


def run_engine(policy: dict, candidate: dict, baseline: dict):
    report = gates.evaluate_metrics(gates.parse_policy(policy, "policy.json"), candidate, baseline)
    return report.passed, {c.name: c.passed for c in report.checks if not c.extra.get("skipped")}


GOOD = {"auc_roc": 0.91, "precision": 0.86, "recall": 0.8, "f1": 0.83, "rmse": 0.30, "mae": 0.2,
        "p99_latency_ms": 42.0, "model_size_mb": 120.0}
PRODUCTION = {"auc_roc": 0.92, "precision": 0.85, "recall": 0.8, "f1": 0.84, "rmse": 0.29, "mae": 0.2,
              "p99_latency_ms": 40.0, "model_size_mb": 110.0}


@pytest.mark.parametrize("change, expected_failures", [
    ({}, set()),
    ({"auc_roc": 0.84}, {"hard_gate_auc_roc", "relative_gate_auc_roc"}),
    ({"auc_roc": 0.8832}, {"relative_gate_auc_roc"}),  # 4% below production's 0.92
    ({"precision": 0.7999}, {"hard_gate_precision"}),
    ({"precision": 0.80}, set()),  # a hard gate is met at equality
    ({"rmse": 0.3045}, {"relative_gate_rmse"}),  # exactly 5% worse: regression must be < tolerance
    ({"p99_latency_ms": 50.0}, set()),
    ({"p99_latency_ms": 50.01}, {"latency_gate"}),
    ({"model_size_mb": 501}, {"size_gate"}),
])
def test_seed_example_verdicts(change, expected_failures):
    candidate = {**GOOD, **change}
    passed, checks = run_engine(SEED_POLICY, candidate, PRODUCTION)
    ref_passed, ref_checks = reference_verdict(SEED_POLICY, candidate, PRODUCTION)
    assert passed == ref_passed == (not expected_failures)
    assert checks == ref_checks
    assert {name for name, ok in checks.items() if not ok} == expected_failures


def test_every_check_explains_itself():
    report = gates.evaluate_metrics(gates.parse_policy(SEED_POLICY, "p.json"), {**GOOD, "auc_roc": 0.5}, PRODUCTION)
    failed = {c.name: c for c in report.failed_checks}
    rel = failed["relative_gate_auc_roc"]
    assert rel.value == 0.5 and rel.threshold == 0.02 and rel.baseline_value == 0.92
    assert "0.5" in rel.detail and "0.92" in rel.detail and "tolerance" in rel.detail
    assert failed["hard_gate_auc_roc"].threshold == 0.85


def test_latency_and_size_are_skipped_when_the_candidate_has_no_figure():
    candidate = {k: v for k, v in GOOD.items() if k not in ("p99_latency_ms", "model_size_mb")}
    report = gates.evaluate_metrics(gates.parse_policy(SEED_POLICY, "p.json"), candidate, PRODUCTION)
    skipped = {c.name for c in report.checks if c.extra.get("skipped")}
    assert skipped == {"latency_gate", "size_gate"} and report.passed


METRICS = ["auc_roc", "precision", "recall", "f1", "rmse", "mae", "accuracy"]
values = st.floats(min_value=-1.0, max_value=2.0, allow_nan=False, allow_infinity=False)


@st.composite
def policies_and_metrics(draw):
    names = draw(st.lists(st.sampled_from(METRICS), min_size=1, max_size=len(METRICS), unique=True))
    directions = {m: draw(st.sampled_from(["higher", "lower"])) for m in names}
    hard = {m: draw(values) for m in draw(st.lists(st.sampled_from(names), unique=True))}
    relative = {m: draw(st.floats(min_value=0, max_value=0.5)) for m in draw(st.lists(st.sampled_from(names), unique=True))}
    policy = {"metric_directions": directions, "hard_gates": hard, "relative_gates": relative}
    if draw(st.booleans()):
        policy["max_p99_latency_ms"] = draw(st.floats(min_value=0, max_value=100))
    if draw(st.booleans()):
        policy["max_model_size_mb"] = draw(st.floats(min_value=0, max_value=1000))
    # baselines of exactly 0 and below exercise the absolute rule (the seed passed anything against 0)
    candidate = {m: draw(st.one_of(values, st.just(0.0))) for m in names}
    baseline = {m: draw(st.one_of(values, st.just(0.0))) for m in names}
    for key in ("p99_latency_ms", "model_size_mb"):
        if draw(st.booleans()):
            candidate[key] = draw(st.floats(min_value=0, max_value=1000))
    return policy, candidate, baseline


@settings(max_examples=300, deadline=None)
@given(policies_and_metrics())
def test_agrees_with_the_seed_rules_on_random_policies(case):
    policy, candidate, baseline = case
    assert run_engine(policy, candidate, baseline) == reference_verdict(policy, candidate, baseline)


@pytest.mark.parametrize("direction, base, value, passed", [
    ("higher", -0.1, -0.9, False),  # R² collapsing below a negative baseline (the seed: an 800 % "gain")
    ("higher", -0.5, -0.48, True),
    ("higher", 0.0, -0.3, False),   # the seed: regression 0 against a 0 baseline, whatever the value
    ("lower", 0.0, 0.5, False),     # an error rate of 0 in production, 0.5 in the candidate
    ("lower", 0.0, 0.01, True),
    ("higher", 0.8, 0.79, True),    # positive baselines keep the seed's relative rule
    ("higher", 0.8, 0.7, False),
])
def test_relative_gate_is_absolute_when_the_baseline_is_not_positive(direction, base, value, passed):
    policy = gates.parse_policy({"metric_directions": {"r2": direction}, "relative_gates": {"r2": 0.05}}, "p.json")
    [check] = gates.seed_checks(policy, {"r2": value}, {"r2": base})
    assert check.passed is passed, check.detail
    assert check.extra["mode"] == ("relative" if base > 0 else "absolute")
    if base <= 0:
        assert "absolute" in check.detail
        assert check.extra["regression"] == pytest.approx((base - value) if direction == "higher" else (value - base))


# -- bad policies: one line naming the file and the field ---------------------------------------


@pytest.mark.parametrize("policy, field", [
    ({"metric_directions": {"auc_roc": "up"}}, "metric_directions.auc_roc"),
    ({"metric_directions": {}, "hard_gates": {"auc_roc": 0.8}}, "hard_gates.auc_roc"),
    ({"metric_directions": {"auc_roc": "higher"}, "hard_gates": {"auc_roc": float("nan")}}, "hard_gates.auc_roc"),
    ({"metric_directions": {"auc_roc": "higher"}, "hard_gates": {"auc_roc": "0.8"}}, "hard_gates.auc_roc"),
    ({"metric_directions": {"auc_roc": "higher"}, "relative_gates": {"auc_roc": True}}, "relative_gates.auc_roc"),
    ({"metric_directions": {"auc_roc": "higher"}, "relative_gates": {"auc_roc": -0.1}}, "relative_gates.auc_roc"),
    ({"max_p99_latency_ms": float("inf")}, "max_p99_latency_ms"),
    ({"hard_gate": {}}, "hard_gate"),
    ({"metric_directions": []}, "metric_directions"),
    ({"significance": {"require": "maybe"}}, "significance.require"),
    ({"significance": {"metrics": ["bleu"]}}, "significance.metrics"),
    ({"slices": {"column": ""}}, "slices.column"),
    ({"fairness": {"sensitive_column": "sex", "max_demographic_parity_diff": float("nan")}},
     "fairness.max_demographic_parity_diff"),
])
def test_bad_policy_names_the_field(policy, field):
    with pytest.raises(BadInputError) as info:
        gates.parse_policy(policy, "gate_policy.json")
    message = str(info.value)
    assert message.startswith("gate_policy.json: ") and field in message and "\n" not in message


def test_missing_metric_names_file_and_metric(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(SEED_POLICY))
    cand, base = tmp_path / "cand.json", tmp_path / "base.json"
    cand.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "rmse"}))
    base.write_text(json.dumps(PRODUCTION))
    with pytest.raises(BadInputError, match=r"cand\.json: rmse: missing \(needed by relative_gates\.rmse"):
        gates.evaluate_files(str(cand), str(base), str(policy))


def test_metric_of_the_wrong_type(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(SEED_POLICY))
    cand, base = tmp_path / "cand.json", tmp_path / "base.json"
    cand.write_text(json.dumps({**GOOD, "auc_roc": "0.9"}))
    base.write_text(json.dumps(PRODUCTION))
    with pytest.raises(BadInputError, match=r"cand\.json: auc_roc: must be a number"):
        gates.evaluate_files(str(cand), str(base), str(policy))


def test_nan_metric_fails_its_gate_like_the_seed():
    passed, checks = run_engine(SEED_POLICY, {**GOOD, "precision": math.nan}, PRODUCTION)
    assert not passed and checks["hard_gate_precision"] is False


def test_the_shipped_policies_load():
    from console.assets import asset_path

    assert gates.load_policy(None).hard_gates == {"auc_roc": 0.85, "precision": 0.80}
    full = gates.load_policy(asset_path("gate_policy_full.json"))
    assert full.significance["require"] == "non_inferior" and full.slices and full.fairness
