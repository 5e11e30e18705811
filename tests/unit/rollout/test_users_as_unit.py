"""Users are the unit when requests carry a key (issue 20): delta-method ratio differences on hashed
user buckets, their anytime validity on sticky, heavy-tailed and 3 req/s streams (seeded,
vectorised, binomial margins), the multinomial sample-ratio e-process on users, and the local
metrics backend's per-user windows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from console.domain import CanaryPlan
from console.rollout import sequential, units
from tests.support import user_sim
from tests.support.canary_streams import SHAPES, Regression, run_canary


def margin(p: float, runs: int) -> float:
    """p plus three binomial standard deviations: what a seeded run may show when the truth is p."""
    return p + 3 * math.sqrt(p * (1 - p) / runs)


# -- the delta method ------------------------------------------------------------------------


def test_ratio_difference_is_the_delta_method_on_cluster_sums():
    rng = np.random.default_rng(1)
    cells = {"c": {b: (float(rng.poisson(3)), float(rng.poisson(30) + 1)) for b in range(20)},
             "s": {b: (float(rng.poisson(3)), float(rng.poisson(30) + 1)) for b in range(40)}}
    sums = units.add_ratio(units.add_ratio(None, "0", "c", cells["c"]), "0", "s", cells["s"])
    found = units.ratio_difference(sums)
    rc = sum(y for y, _ in cells["c"].values()) / sum(n for _, n in cells["c"].values())
    rs = sum(y for y, _ in cells["s"].values()) / sum(n for _, n in cells["s"].values())
    nc, ns = sum(n for _, n in cells["c"].values()), sum(n for _, n in cells["s"].values())
    # Deng et al.: Var(r) = sum_u (y_u - r n_u)^2 / N^2 per arm; a bucket's two arms share one cluster
    infl = {}
    for b, (y, n) in cells["c"].items():
        infl[b] = infl.get(b, 0) + (y - rc * n) / nc
    for b, (y, n) in cells["s"].items():
        infl[b] = infl.get(b, 0) - (y - rs * n) / ns
    k = len(infl)
    assert found["estimate"] == pytest.approx(rc - rs)
    assert found["variance"] == pytest.approx(sum(v * v for v in infl.values()) * k / (k - 1))
    json.dumps(sums)  # the judge persists it


def test_a_stratum_with_too_few_users_on_a_side_is_left_out_and_nothing_raises():
    sums = units.add_ratio(None, "0", "c", {0: (1.0, 2.0)})
    sums = units.add_ratio(sums, "0", "s", {b: (1.0, 10.0) for b in range(30)})
    assert units.ratio_difference(sums) is None
    assert units.ratio_difference(None) is None
    assert units.ratio_difference(units.add_ratio(None, "0", "c", {0: (math.nan, 1.0), 1: (1.0, math.inf)})) is None


def test_the_vectorised_replica_is_the_real_function():
    rng = np.random.default_rng(4)
    y = rng.poisson(2.0, (5, 3, 2, units.UNIT_BUCKETS)).astype(float)
    n = y + rng.poisson(20.0, y.shape)
    n[1, :, 0, :55] = 0  # a replication whose canary has too few buckets in every stratum
    est, var, ok = user_sim.ratio_difference(y, n)
    for r in range(5):
        sums = None
        for s in range(3):
            for arm, name in ((0, "c"), (1, "s")):
                sums = units.add_ratio(sums, str(s), name, {b: (y[r, s, arm, b], n[r, s, arm, b])
                                                            for b in range(units.UNIT_BUCKETS) if n[r, s, arm, b] > 0})
        found = units.ratio_difference(sums)
        assert (found is not None) == bool(ok[r])
        if found:
            assert est[r] == pytest.approx(found["estimate"]) and var[r] == pytest.approx(found["variance"])
            for gap in (0.0, 0.5 * math.sqrt(found["variance"]), 4 * math.sqrt(found["variance"])):
                real = sequential._judge("x", found["estimate"] + gap, found["variance"], 0.0, 0.05,
                                         sequential.ERROR_TAUS, 100, 100, "", False)
                assert (real.decision == sequential.REJECT) == bool(
                    user_sim.rejects(np.array([found["estimate"] + gap]), np.array([found["variance"]]),
                                     np.array([True]), 0.0, 0.05, sequential.ERROR_TAUS)[0])


# -- anytime validity on users ---------------------------------------------------------------

STREAMS = {
    "sticky (load generator: 1,000 users)": dict(users=1000, rate=200.0),
    "heavy-tailed users, per-user effects": dict(users=2000, rate=200.0, pareto=1.2, user_latency_sigma=0.5,
                                                 failing_share=0.005),
    "3 req/s, sticky": dict(users=1000, rate=3.0),
}


@pytest.mark.parametrize("stream", list(STREAMS))
def test_user_level_tests_hold_alpha_under_continuous_monitoring(stream):
    """A/A through the plan (5 -> 25 -> 50 %, 60 s holds) and two more minutes, a look every 5 s,
    margin 0 (the sharpest null), alpha 5 %: the share of canaries ever rejected stays within the
    binomial margin of alpha for the error test and the log-latency test."""
    runs = 200
    rates = user_sim.simulate_aa(np.random.default_rng(20), runs, extra_s=120.0, alpha=0.05, **STREAMS[stream])
    assert rates["errors"] <= margin(0.05, runs), rates
    assert rates["latency"] <= margin(0.05, runs), rates


def test_the_simulation_sees_the_broken_guarantee_of_request_level_clusters():
    """The same heavy-tailed stream with each user's requests scattered over clusters (what a
    request-level test assumes): latency false alarms far above alpha."""
    rates = user_sim.simulate_aa(np.random.default_rng(21), 100, extra_s=120.0, alpha=0.05, request_level=True,
                                 **STREAMS["heavy-tailed users, per-user effects"])
    assert rates["latency"] > 0.2, rates


def test_a_1_2x_slowdown_and_doubled_errors_are_found_on_users():
    kw = STREAMS["sticky (load generator: 1,000 users)"]
    rates = user_sim.simulate_aa(np.random.default_rng(22), 100, extra_s=120.0, alpha=0.01, slow=1.2,
                                 error_factor=2.0, **kw)
    assert rates["latency"] >= 0.95 and rates["errors"] >= 0.5, rates


# -- the sample ratio on users (Lindon & Malek) ----------------------------------------------


@pytest.mark.parametrize("p0", [0.05, 0.25, 0.5])
def test_the_multinomial_bayes_factor_has_null_mean_one(p0):
    n = 40
    total = sum(math.comb(n, x) * p0 ** x * (1 - p0) ** (n - x)
                * math.exp(units.multinomial_log_bf([x, n - x], [p0, 1 - p0])) for x in range(n + 1))
    assert total == pytest.approx(1.0, rel=1e-9)


def srm_run(rng, weights_by_window, users_per_window: int, keep_canary: float = 1.0):
    state = units.new_srm()
    serial = 0
    halted = False
    for weight in weights_by_window:
        keys = [f"u{serial + i}" for i in range(users_per_window)]
        serial += users_per_window
        canary = rng.random(users_per_window) < weight
        shown = canary & (rng.random(users_per_window) < keep_canary)  # a canary that loses users
        state, fresh = units.new_users_of(state, [k for k, c in zip(keys, shown) if c],
                                          [k for k, c in zip(keys, canary) if not c], True)
        state = units.update_srm(state, fresh, [weight, 1 - weight])
        halted |= units.srm_e_value(state) >= 1 / 0.05
    return halted, state


def test_user_sample_ratio_false_alarms_stay_below_alpha_and_a_lossy_canary_is_caught():
    rng = np.random.default_rng(5)
    plan = [0.05] * 12 + [0.25] * 12 + [0.5] * 24
    runs = 300
    false = sum(srm_run(rng, plan, 10)[0] for _ in range(runs))
    assert false / runs <= margin(0.05, runs)
    caught = sum(srm_run(rng, plan, 40, keep_canary=0.7)[0] for _ in range(50))
    assert caught >= 45
    _, state = srm_run(rng, plan, 10)
    json.dumps(state)


def test_the_user_sample_ratio_check_stops_and_says_why_past_its_cap(monkeypatch):
    monkeypatch.setattr(units, "SEEN_USERS_CAP", 5)
    state, fresh = units.new_users_of(None, [f"c{i}" for i in range(3)], [f"s{i}" for i in range(4)], True)
    assert fresh == [0, 0] and "users seen" in state["off"] and state["seen"] == []


# -- the whole judge on users ----------------------------------------------------------------


def test_the_whole_judge_on_heavy_tailed_users_holds_and_still_catches_a_slowdown():
    plan = CanaryPlan(interval_s=5.0, min_requests=10)
    rng = np.random.default_rng(31)
    aa = [run_canary(plan, Regression(), 200.0, rng, SHAPES["heavy"]) for _ in range(4)]
    assert not any(r["rolled_back"] for r in aa), aa
    slow = [run_canary(plan, Regression(slow=1.5), 200.0, rng, SHAPES["sticky"]) for _ in range(2)]
    assert all(r["rolled_back"] and "log_latency" in r["rejected"] for r in slow), slow
