"""The exact error-rate e-process: its martingale property, its false-alarm rate under continuous
monitoring, and its speed on a large regression. Pure and seeded; each test runs in about a second."""

from __future__ import annotations

import math

import numpy as np
import pytest

from console.rollout import sequential

ALPHA = 0.05
SPLITS = [5] * 60 + [25] * 60 + [50] * 60  # the default plan's weights, one look a second


def hypergeometric_pmf(x: int, canary_n: int, stable_n: int, errors: int) -> float:
    return math.comb(canary_n, x) * math.comb(stable_n, errors - x) / math.comb(canary_n + stable_n, errors)


@pytest.mark.parametrize("canary_n, stable_n, errors", [(10, 190, 1), (10, 190, 4), (50, 150, 7), (3, 100, 3), (100, 100, 30)])
def test_each_window_factor_has_null_mean_at_most_one(canary_n, stable_n, errors):
    # Under H0 the canary's share of a window's errors is hypergeometric: the factor must average <= 1
    # for every odds ratio (else the product is no supermartingale and Ville says nothing).
    share = canary_n / (canary_n + stable_n)
    for ratio in sequential.ODDS_RATIOS:
        ev = sequential.new_error_evidence((ratio,), (1.0,))
        factor = {x: math.exp(sequential.update_error_evidence(ev, x, canary_n, errors - x, stable_n)["log_e"][0])
                  for x in range(0, errors + 1)}
        exact = sum(hypergeometric_pmf(x, canary_n, stable_n, errors) * factor[x]
                    for x in range(max(0, errors - stable_n), min(errors, canary_n) + 1))
        assert exact <= 1.0 + 1e-12
        # Errors drawn with replacement (the binomial) is the law the normaliser is exact for: mean 1,
        # so the test keeps all the evidence it can while few of a window's requests fail.
        binomial = sum(math.comb(errors, x) * share ** x * (1 - share) ** (errors - x) * factor[x] for x in factor)
        assert binomial == pytest.approx(1.0, rel=1e-9)


def simulate_alarms(runs: int, canary_rate: float, stable_rate: float, seed: int, rate: float = 200.0):
    """Monitor every look of `runs` canaries through the plan's splits; return (alarmed, first look)."""
    rng = np.random.default_rng(seed)
    alarms, looks = [], []
    for _ in range(runs):
        evidence, alarmed = sequential.new_error_evidence(), False
        for look, weight in enumerate(SPLITS, start=1):
            total = int(rng.poisson(rate))
            canary_n = int(rng.binomial(total, weight / 100))
            stable_n = total - canary_n
            evidence = sequential.update_error_evidence(evidence, int(rng.binomial(canary_n, canary_rate)), canary_n,
                                                        int(rng.binomial(stable_n, stable_rate)), stable_n)
            if sequential.error_e_value(evidence) >= 1 / ALPHA:
                alarmed = True
                looks.append(look)
                break
        alarms.append(alarmed)
    return np.mean(alarms), looks


def test_false_alarms_stay_below_alpha_when_every_look_may_stop():
    # 400 A/A canaries at 3 % errors, looked at after every second while the split moves 5 -> 25 -> 50 %.
    # Ville's inequality allows at most alpha; 400 runs leave ~1 point of sampling noise, hence the slack.
    rate, _ = simulate_alarms(400, 0.03, 0.03, seed=11)
    assert rate <= ALPHA + 0.02


def test_a_canary_failing_less_than_stable_is_not_rolled_back_either():
    rate, _ = simulate_alarms(200, 0.01, 0.03, seed=12)  # H0 is "no worse", not only "equal"
    assert rate <= 0.01


def test_the_simulation_can_see_a_broken_guarantee():
    # The same A/A streams judged by a naive z-test at every look (valid only for one look) alarm far
    # more often than alpha: proof that the check above would notice a test that is not anytime-valid.
    rng = np.random.default_rng(11)
    alarms = 0
    for _ in range(400):
        ce = cn = se = sn = 0
        for weight in SPLITS:
            total = int(rng.poisson(200))
            c = int(rng.binomial(total, weight / 100))
            cn, sn = cn + c, sn + total - c
            ce, se = ce + int(rng.binomial(c, 0.03)), se + int(rng.binomial(total - c, 0.03))
            pooled = (ce + se) / (cn + sn)
            sd = math.sqrt(max(pooled * (1 - pooled), 1e-9) * (1 / max(cn, 1) + 1 / max(sn, 1)))
            if cn and (ce / cn - se / sn) / sd > 1.645:
                alarms += 1
                break
    assert alarms / 400 > 2 * ALPHA


def test_a_large_regression_is_caught_after_few_canary_requests():
    # 1 % -> 5 % at a 5 % split of 200 req/s: ten canary requests a second.
    rate, looks = simulate_alarms(100, 0.05, 0.01, seed=13)
    assert rate >= 0.95
    assert float(np.median(looks)) <= 20  # seconds, i.e. about 200 canary requests; 3 windows of 10 s take 30


def test_evidence_is_json_friendly_and_keeps_its_own_grid():
    import json

    ev = sequential.update_error_evidence(sequential.new_error_evidence((2.0, 4.0), (0.5, 0.5)), 2, 10, 1, 190)
    again = json.loads(json.dumps(ev))
    assert again == ev and again["odds_ratios"] == [2.0, 4.0] and again["windows"] == 1
    # An empty side, or a window without errors, carries no evidence about the difference.
    assert sequential.update_error_evidence(ev, 0, 10, 0, 190)["log_e"] == ev["log_e"]
    assert sequential.update_error_evidence(ev, 3, 10, 0, 0)["log_e"] == ev["log_e"]
    with pytest.raises(ValueError):
        sequential.new_error_evidence((0.5,), (1.0,))
