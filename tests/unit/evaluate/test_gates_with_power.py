"""Slice and fairness gates state their power (issue 20): the smallest drop each slice could show,
the fairness gap with an interval and a power-derived group size, and "insufficient data" (not run:
neither pass nor fail) when the data cannot decide. Seeded, binomial margins."""

from __future__ import annotations

import math

import numpy as np

from console.evaluate import gates


def policy(**sections) -> gates.GatePolicy:
    return gates.parse_policy({"metric_directions": {"accuracy": "higher"}, **sections}, "policy.json")


def two_models(rng, n: int, acc_candidate: float, acc_baseline: float):
    y = (rng.random(n) < 0.5).astype(float)

    def model(acc):
        pred = np.where(rng.random(n) < acc, y, 1 - y)
        return np.clip(0.2 + 0.6 * pred + rng.normal(0, 0.05, n), 0, 1)

    return y, model(acc_candidate), model(acc_baseline)


SLICES = {"column": "x", "metrics": ["accuracy"], "tolerance": 0.02, "k": 2}
FAIRNESS = {"sensitive_column": "g", "max_demographic_parity_diff": 0.1, "max_equal_opportunity_diff": 0.1}


def test_each_slice_states_the_smallest_drop_it_could_show_and_small_slices_say_insufficient_data():
    rng = np.random.default_rng(7)
    y, cand, base = two_models(rng, 200, 0.8, 0.8)
    checks = gates.slice_checks(policy(slices=SLICES), gates.PairedPredictions(y, cand, base, {"x": rng.random(200)}))
    assert all(c.extra["min_detectable_drop"] > 0.04 for c in checks)  # 50 rows cannot see a 0.04 drop
    undecided = [c for c in checks if c.passed is None]
    assert undecided and all(c.status == "not_run" and "insufficient data" in c.detail for c in undecided)
    report = gates.GateReport("m", "2", "1", "x", checks)
    assert not report.complete  # an undecided gate is no approval
    # 40,000 rows in 4 slices: each could see the allowed drop, and equal models pass
    y, cand, base = two_models(rng, 40_000, 0.8, 0.8)
    big = gates.slice_checks(policy(slices={**SLICES, "n_boot": 200}),
                             gates.PairedPredictions(y, cand, base, {"x": rng.random(40_000)}))
    assert all(c.passed is True and c.extra["min_detectable_drop"] <= 0.04 for c in big), [c.detail for c in big]


def fairness_of(rng, sizes, rates, policy_cfg=FAIRNESS):
    groups = np.concatenate([[f"g{i}"] * n for i, n in enumerate(sizes)]).astype(object)
    y = (rng.random(len(groups)) < 0.5).astype(float)
    rate = np.concatenate([[r] * n for r, n in zip(rates, sizes)])
    scores = np.where(rng.random(len(groups)) < rate, 0.9, 0.1)
    return {c.name: c for c in gates.fairness_checks(policy(fairness=policy_cfg),
                                                     gates.PairedPredictions(y, scores, None, {"g": groups}))}


def test_equal_groups_fail_the_fairness_gate_at_most_at_its_level():
    rng = np.random.default_rng(11)
    trials, failed, undecided = 300, 0, 0
    for _ in range(trials):
        check = fairness_of(rng, [30, 30], [0.5, 0.5])["fairness_demographic_parity_diff"]
        failed += check.passed is False
        undecided += check.passed is None
    assert failed / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)  # was 10.2 % with a fixed gap
    assert undecided / trials > 0.5  # 30 rows a group cannot tell a gap of 0.1 from none


def test_the_fairness_gap_has_an_interval_and_a_power_derived_group_size():
    rng = np.random.default_rng(12)
    check = fairness_of(rng, [30, 30], [0.5, 0.5])["fairness_demographic_parity_diff"]
    lo, hi = check.extra["gap_ci"]
    assert 0 <= lo <= check.value <= hi and check.extra["power_min_group_size"] > 300
    unfair = fairness_of(rng, [2000, 2000], [0.3, 0.6])["fairness_demographic_parity_diff"]
    assert unfair.passed is False and unfair.extra["gap_ci"][0] > 0.1 and "over" in unfair.detail
    fair = fairness_of(rng, [4000, 4000], [0.5, 0.5])["fairness_demographic_parity_diff"]
    assert fair.passed is True and fair.extra["gap_ci"][1] <= 0.1
