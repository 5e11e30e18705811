"""Every sequential test of the canary judge under continuous monitoring (issue 12): 2,000 simulated
A/A canaries each, looked at after every window while the split moves 5 -> 25 -> 50 %, with a
shared trend in the base rate or latency; false alarms must stay <= alpha plus a binomial margin.
Then power: the regressions the issue names are found.

The simulations are vectorised with numpy (all canaries at once); each one is first checked against
the real per-window functions of console/rollout/sequential.py on a few canaries, so what is simulated is
what runs. Seeds are fixed: the outcomes are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from console.rollout import sequential

ALPHA = 0.05
RUNS = 2000
WEIGHTS = np.array([5] * 30 + [25] * 30 + [50] * 30) / 100  # the default plan, one look per window


def margin_for(runs: int, alpha: float) -> float:
    return 3 * math.sqrt(alpha * (1 - alpha) / runs)  # three binomial standard errors


# -- the exact count e-process (errors, requests above a latency bound, wrong labels) ----------------


def count_log_e(canary_x, canary_n, stable_x, stable_n, ratios=sequential.ODDS_RATIOS):
    """Per canary and grid member: the log e-process after every window (arrays runs x looks)."""
    ratios = np.asarray(ratios)
    k = canary_x + stable_x
    total = canary_n + stable_n
    share = np.where((canary_n > 0) & (stable_n > 0) & (k > 0), canary_n / np.maximum(total, 1), 0.0)
    active = share > 0
    inc = (canary_x[..., None] * np.log(ratios) - k[..., None] * np.log1p(share[..., None] * (ratios - 1)))
    return np.cumsum(np.where(active[..., None], inc, 0.0), axis=1)


def mixture(log_e, weights):
    top = log_e.max(axis=-1, keepdims=True)
    return (top + np.log((np.exp(log_e - top) * np.asarray(weights)).sum(axis=-1, keepdims=True)))[..., 0]


def simulate_counts(rng, runs, rate_of, canary_factor=1.0, requests=200, weights=WEIGHTS):
    """Canary/stable counts per window; rate_of(look) the per-request event rate (shared), canary x factor."""
    looks = len(weights)
    total = rng.poisson(requests, size=(runs, looks))
    canary_n = rng.binomial(total, weights)
    stable_n = total - canary_n
    p = np.broadcast_to(rate_of(np.arange(looks)), (runs, looks))
    canary_x = rng.binomial(canary_n, np.minimum(1.0, p * canary_factor))
    stable_x = rng.binomial(stable_n, p)
    return canary_x, canary_n, stable_x, stable_n


def test_vectorised_count_process_is_the_real_update():
    rng = np.random.default_rng(1)
    cx, cn, sx, sn = simulate_counts(rng, 5, lambda t: 0.05 + 0 * t)
    log_e = count_log_e(cx, cn, sx, sn)
    for run in range(5):
        ev = sequential.new_error_evidence()
        for look in range(len(WEIGHTS)):
            ev = sequential.update_error_evidence(ev, int(cx[run, look]), int(cn[run, look]), int(sx[run, look]),
                                                  int(sn[run, look]))
            assert ev["log_e"] == pytest.approx(list(log_e[run, look]), abs=1e-9)
        assert math.log(sequential.error_e_value(ev)) == pytest.approx(
            mixture(log_e[run, -1], sequential.ODDS_WEIGHTS), abs=1e-9)


@pytest.mark.parametrize("seed, name, rate_of, requests", [
    (11, "errors 0.5 %, steady", lambda t: 0.005 + 0 * t, 200),
    (12, "errors 3 %, bursty (x5 every 7th window)", lambda t: np.where(t % 7 == 0, 0.15, 0.03), 200),
    (13, "errors 1 % rising to 3 % over the plan", lambda t: 0.01 + 0.02 * t / 90, 200),
    (14, "online accuracy: 10 labels a window, 20 % wrong", lambda t: 0.2 + 0 * t, 20),
])
def test_count_e_process_false_alarms_stay_below_alpha(seed, name, rate_of, requests):
    rng = np.random.default_rng(seed)
    cx, cn, sx, sn = simulate_counts(rng, RUNS, rate_of, requests=requests)
    e = mixture(count_log_e(cx, cn, sx, sn), sequential.ODDS_WEIGHTS)
    alarms = (e >= math.log(1 / ALPHA)).any(axis=1).mean()
    assert alarms <= ALPHA + margin_for(RUNS, ALPHA), (name, alarms)


def test_tail_count_against_a_bound_from_the_previous_window_stays_below_alpha():
    # The bound is stable's p99 of the previous window (an order statistic: U ~ Beta(k, n - k + 1) on
    # the probability scale), so each window's share above it is random but fixed before the window;
    # a latency trend shared by both variants moves it further. Margin ratio 1 (the harshest H0).
    rng = np.random.default_rng(21)
    looks = len(WEIGHTS)
    total = rng.poisson(200, size=(RUNS, looks))
    canary_n = rng.binomial(total, WEIGHTS)
    stable_n = total - canary_n
    rank = np.maximum(1, np.ceil(0.99 * stable_n)).astype(int)
    u = rng.beta(rank, np.maximum(1, stable_n - rank + 1))  # F(bound) of each window's stable p99
    trend = np.linspace(0, 0.3, looks)  # +30 % on the log scale over the plan: the next window is slower
    # P(latency_t > bound_{t-1}) for a lognormal (sigma 0.35) that moved by the trend step since
    from scipy.stats import norm

    z = norm.ppf(u[:, :-1]) - np.diff(trend) / 0.35
    p_over = np.concatenate([np.zeros((RUNS, 1)), 1 - norm.cdf(z)], axis=1)  # no bound for the first window
    cx, sx = rng.binomial(canary_n, p_over), rng.binomial(stable_n, p_over)
    e = mixture(count_log_e(cx, canary_n, sx, stable_n), sequential.ODDS_WEIGHTS)
    alarms = (e >= math.log(1 / ALPHA)).any(axis=1).mean()
    assert alarms <= ALPHA + margin_for(RUNS, ALPHA)


def test_dense_grid_detects_an_odds_ratio_of_1_15_that_the_old_grid_never_could():
    # 1 % -> 1.15 % at a 50 % split, 10,000 requests a window, 150 windows (1.5 M requests).
    rng = np.random.default_rng(31)
    weights = np.full(150, 0.5)
    cx, cn, sx, sn = simulate_counts(rng, 200, lambda t: 0.01 + 0 * t, canary_factor=1.15, requests=10_000,
                                     weights=weights)
    new = (mixture(count_log_e(cx, cn, sx, sn), sequential.ODDS_WEIGHTS) >= math.log(1 / ALPHA)).any(axis=1).mean()
    old_ratios, old_weights = (1.5, 2.0, 3.0, 5.0, 8.0, 13.0), (0.1, 0.15, 0.15, 0.2, 0.2, 0.2)
    old = (mixture(count_log_e(cx, cn, sx, sn, old_ratios), old_weights) >= math.log(1 / ALPHA)).any(axis=1).mean()
    assert new >= 0.9 and old <= 0.2, (new, old)


def test_a_1_25x_error_regression_is_detected_with_probability_near_one():
    rng = np.random.default_rng(32)
    weights = np.full(60, 0.5)
    cx, cn, sx, sn = simulate_counts(rng, 200, lambda t: 0.01 + 0 * t, canary_factor=1.25, requests=10_000,
                                     weights=weights)
    e = mixture(count_log_e(cx, cn, sx, sn), sequential.ODDS_WEIGHTS)
    assert (e >= math.log(1 / ALPHA)).any(axis=1).mean() >= 0.95


@pytest.mark.parametrize("factor, share, horizon_errors", [(2.0, 0.5, 900), (5.0, 0.05, 600)])
def test_events_needed_plans_for_the_power_it_promises(factor, share, horizon_errors):
    # The power-aware plan's sample size: after events_needed(...) events, about 80 % of canaries with
    # that regression have been caught (the planning formula is approximate: 70 % or more).
    needed = sequential.events_needed(factor, share, ALPHA, 0.8)
    assert 0 < needed < horizon_errors
    rng = np.random.default_rng(33)
    requests = 2000
    p = 0.01
    looks = int(math.ceil(needed / (requests * p * (1 - share + share * factor)))) + 1
    cx, cn, sx, sn = simulate_counts(rng, 1000, lambda t: p + 0 * t, canary_factor=factor, requests=requests,
                                     weights=np.full(looks, share))
    events = np.cumsum(cx + sx, axis=1)
    e = mixture(count_log_e(cx, cn, sx, sn), sequential.ODDS_WEIGHTS)
    detected_by = ((e >= math.log(1 / ALPHA)) & (events <= needed)).any(axis=1).mean()
    assert detected_by >= 0.7, detected_by


# -- the normal-mixture band on a stratified difference (latency log-mean, prediction share) -------


def log_mixture_one_sided(gap, variance, taus):
    info = 1.0 / variance
    s = gap / variance
    logs = []
    for t in taus:
        value = -0.5 * np.log1p(t * t * info) + t * t * s * s / (2.0 * (1.0 + t * t * info))
        x = t * s / np.sqrt(1.0 + t * t * info)
        from scipy.special import log_ndtr

        logs.append(value + np.log(2.0) + log_ndtr(x))
    logs = np.stack(logs, axis=-1)
    top = logs.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(logs - top).mean(axis=-1, keepdims=True)))[..., 0]


def stratified(means_c, var_c, n_c, means_s, var_s, n_s, floor=1e-6):
    """Running stratified estimate and variance after each window (arrays runs x looks)."""
    ok = (n_c >= 2) & (n_s >= 2)
    w = np.where(ok, n_c * n_s / np.maximum(n_c + n_s, 1), 0.0)
    sw = np.cumsum(w * np.where(ok, means_c - means_s, 0.0), axis=1)
    W = np.cumsum(w, axis=1)
    w2c = np.cumsum(np.where(ok, w * w / np.maximum(n_c, 1), 0.0), axis=1)
    w2s = np.cumsum(np.where(ok, w * w / np.maximum(n_s, 1), 0.0), axis=1)
    ssc = np.cumsum(np.where(ok, var_c * (n_c - 1), 0.0), axis=1)
    dfc = np.cumsum(np.where(ok, n_c - 1, 0), axis=1)
    sss = np.cumsum(np.where(ok, var_s * (n_s - 1), 0.0), axis=1)
    dfs = np.cumsum(np.where(ok, n_s - 1, 0), axis=1)
    vc = np.maximum(floor, ssc / np.maximum(dfc, 1))
    vs = np.maximum(floor, sss / np.maximum(dfs, 1))
    est = sw / np.maximum(W, 1e-300)
    with np.errstate(invalid="ignore", over="ignore"):  # before any window: not ready, never judged
        var = (vc * w2c + vs * w2s) / np.maximum(W, 1e-300) ** 2
    nc, ns = np.cumsum(np.where(ok, n_c, 0), axis=1), np.cumsum(np.where(ok, n_s, 0), axis=1)
    return est, var, (W > 0) & (nc >= 30) & (ns >= 30)


def normal_windows(rng, runs, mu_of, sigma, canary_shift=0.0, requests=200, weights=WEIGHTS):
    """Exact sampling laws of each window's mean and variance of normal (log-latency) data."""
    looks = len(weights)
    total = rng.poisson(requests, size=(runs, looks))
    n_c = rng.binomial(total, weights)
    n_s = total - n_c
    mu = np.broadcast_to(mu_of(np.arange(looks)), (runs, looks))

    def side(n, shift):
        mean = mu + shift + sigma * rng.standard_normal((runs, looks)) / np.sqrt(np.maximum(n, 1))
        var = sigma ** 2 * rng.chisquare(np.maximum(n - 1, 1)) / np.maximum(n - 1, 1)
        return mean, var

    (mc, vc), (ms, vs) = side(n_c, canary_shift), side(n_s, 0.0)
    return mc, vc, n_c, ms, vs, n_s


def rejects(est, var, ready, margin, alpha, taus=sequential.LATENCY_TAUS):
    gap = est - margin
    log_m = np.where(ready & (gap > 0), log_mixture_one_sided(np.maximum(gap, 1e-12), np.maximum(var, 1e-300), taus),
                     -np.inf)
    return log_m >= math.log(1 / alpha)


def test_vectorised_stratified_band_is_the_real_test():
    rng = np.random.default_rng(2)
    mc, vc, n_c, ms, vs, n_s = normal_windows(rng, 3, lambda t: 3.0 + 0.005 * t, 0.35, canary_shift=0.04)
    est, var, ready = stratified(mc, vc, n_c, ms, vs, n_s)
    rej = rejects(est, var, ready, 0.0, ALPHA)
    for run in range(3):
        strata = None
        for look in range(len(WEIGHTS)):
            c = sequential.Moments(int(n_c[run, look]), float(mc[run, look] * n_c[run, look]),
                                   float(vc[run, look] * (n_c[run, look] - 1) + n_c[run, look] * mc[run, look] ** 2))
            s = sequential.Moments(int(n_s[run, look]), float(ms[run, look] * n_s[run, look]),
                                   float(vs[run, look] * (n_s[run, look] - 1) + n_s[run, look] * ms[run, look] ** 2))
            strata = sequential.add_stratum(strata, c, s)
            if not ready[run, look]:
                continue
            result = sequential.stratified_latency_test(strata, alpha=ALPHA, margin_ratio=1.0, explain=False)
            assert result.estimate == pytest.approx(est[run, look], abs=1e-7)
            assert (result.decision == sequential.REJECT) == bool(rej[run, look])


@pytest.mark.parametrize("trend", [0.0, math.log(1.5)])
def test_stratified_latency_false_alarms_stay_below_alpha_with_a_shared_trend(trend):
    # A/A on log latency (sigma 0.35), margin 0 (the harshest H0), a trend shared by both variants
    # (+50 % over the plan): within windows it cancels.
    rng = np.random.default_rng(41 + int(trend * 10))
    mc, vc, n_c, ms, vs, n_s = normal_windows(rng, RUNS, lambda t: 3.0 + trend * t / 90, 0.35)
    est, var, ready = stratified(mc, vc, n_c, ms, vs, n_s)
    alarms = rejects(est, var, ready, 0.0, ALPHA).any(axis=1).mean()
    assert alarms <= ALPHA + margin_for(RUNS, ALPHA), alarms


def test_pooling_across_split_changes_is_what_broke_under_a_trend():
    # The same A/A streams pooled per variant (the old test) roll back far more often than alpha:
    # the simulation above would see a stratification that does not work.
    rng = np.random.default_rng(41 + int(math.log(1.5) * 10))
    mc, vc, n_c, ms, vs, n_s = normal_windows(rng, RUNS, lambda t: 3.0 + math.log(1.5) * t / 90, 0.35)
    nc, ns = np.cumsum(n_c, axis=1), np.cumsum(n_s, axis=1)
    pooled_c, pooled_s = np.cumsum(mc * n_c, axis=1) / np.maximum(nc, 1), np.cumsum(ms * n_s, axis=1) / np.maximum(ns, 1)
    var = 0.35 ** 2 / np.maximum(nc, 1) + 0.35 ** 2 / np.maximum(ns, 1)
    alarms = rejects(pooled_c - pooled_s, var, (nc >= 30) & (ns >= 30), 0.0, ALPHA).any(axis=1).mean()
    assert alarms > 4 * ALPHA, alarms


def test_prediction_share_test_false_alarms_stay_below_alpha_two_sided():
    # The share of predictions above stable's previous-window median, two-sided, margin 0 (the
    # harshest H0; the plan's margin is 0.1): binary data, 100 predictions a window.
    rng = np.random.default_rng(51)
    looks = len(WEIGHTS)
    total = rng.poisson(100, size=(RUNS, looks))
    n_c = rng.binomial(total, WEIGHTS)
    n_s = total - n_c
    p = rng.beta(50, 51, size=(RUNS, looks))  # above a previous median: ~1/2 but random, shared by both
    xc, xs = rng.binomial(n_c, p), rng.binomial(n_s, p)
    mc, ms = xc / np.maximum(n_c, 1), xs / np.maximum(n_s, 1)
    vc = np.where(n_c > 1, mc * (1 - mc) * n_c / np.maximum(n_c - 1, 1), 0.0)
    vs = np.where(n_s > 1, ms * (1 - ms) * n_s / np.maximum(n_s - 1, 1), 0.0)
    est, var, ready = stratified(mc, vc, n_c, ms, vs, n_s)
    ready &= (np.cumsum(n_c, axis=1) >= 100) & (np.cumsum(n_s, axis=1) >= 100)
    up = rejects(est, var, ready, 0.0, ALPHA / 2, sequential.ERROR_TAUS)
    down = rejects(-est, var, ready, 0.0, ALPHA / 2, sequential.ERROR_TAUS)
    alarms = (up | down).any(axis=1).mean()
    assert alarms <= ALPHA + margin_for(RUNS, ALPHA), alarms


# -- sample-ratio mismatch ------------------------------------------------------------------------


def ratio_log_e(canary_n, total, weights):
    ratios = np.asarray(sequential.TWO_SIDED_RATIOS)
    share = np.broadcast_to(weights, canary_n.shape)[..., None]
    inc = canary_n[..., None] * np.log(ratios) - total[..., None] * np.log1p(share * (ratios - 1))
    return np.cumsum(inc, axis=1)


def test_vectorised_ratio_process_is_the_real_update():
    rng = np.random.default_rng(3)
    total = rng.poisson(200, size=(3, len(WEIGHTS)))
    n_c = rng.binomial(total, WEIGHTS)
    log_e = ratio_log_e(n_c, total, WEIGHTS)
    ev = None
    for look in range(len(WEIGHTS)):
        ev = sequential.update_ratio_evidence(ev, int(n_c[0, look]), int(total[0, look] - n_c[0, look]), WEIGHTS[look])
    assert ev["log_e"] == pytest.approx(list(log_e[0, -1]), abs=1e-7)


def test_sample_ratio_false_alarms_stay_below_alpha_and_a_real_mismatch_halts():
    rng = np.random.default_rng(61)
    total = rng.poisson(200, size=(RUNS, len(WEIGHTS)))
    n_c = rng.binomial(total, WEIGHTS)
    e = mixture(ratio_log_e(n_c, total, WEIGHTS), sequential.TWO_SIDED_WEIGHTS)
    assert (e >= math.log(1 / ALPHA)).any(axis=1).mean() <= ALPHA + margin_for(RUNS, ALPHA)
    # a router that sends 4 % where the plan says 5 % (and 20 % for 25 %, 40 % for 50 %)
    skewed = rng.binomial(total, WEIGHTS * 0.8)
    e = mixture(ratio_log_e(skewed, total, WEIGHTS), sequential.TWO_SIDED_WEIGHTS)
    assert (e >= math.log(1 / ALPHA)).any(axis=1).mean() >= 0.95
