"""The monitor's anytime-valid detector on simulated months: an A/A stream (units drawn from the
reference itself) alarms no more often than the stated false-alarm rate, within a binomial
margin; a real shift is found within minutes. Seeded, pure, no I/O."""

from __future__ import annotations

import math

import numpy as np
import pytest

from console.monitor.decide import MonitorConfig, detector, pane_log_evalues, proportions, DETECTOR_PSEUDO

W = 12


def reference_counts(rng, features: int, n_ref: int) -> np.ndarray:
    """Decile-like reference counts: ten value bins, no missing, no unseen."""
    ref = np.zeros((features, W))
    ref[:, :10] = rng.multinomial(n_ref, np.full(10, 0.1), size=features)
    return ref


def simulate(rng, ref: np.ndarray, panes: int, units_per_pane, shift_from: int | None = None,
             shift_to: np.ndarray | None = None) -> np.ndarray:
    """(panes, F, W) unit counts drawn from the reference (the detector's H0), Poisson traffic."""
    p0 = proportions(ref, DETECTOR_PSEUDO)
    n = rng.poisson(units_per_pane, size=panes)
    out = np.empty((panes, ref.shape[0], W))
    for f in range(ref.shape[0]):
        out[:, f, :] = rng.multinomial(n, p0[f])
    if shift_from is not None:
        n2 = n[shift_from:]
        out[shift_from:, 0, :] = rng.multinomial(n2, shift_to)
    return out


def alarms_in_months(seed: int, months: int, features: int, units_per_pane: float, cfg: MonitorConfig) -> int:
    rng = np.random.default_rng(seed)
    total = 0
    for _ in range(months):
        ref = reference_counts(rng, features, 500)
        units = simulate(rng, ref, 30 * 24 * 60, units_per_pane)
        alarms, _ = detector(pane_log_evalues([(ref, units)], cfg), cfg.alarm_threshold)
        total += len(alarms)
    return total


def poisson_upper(mean: float, tail: float = 1e-4) -> int:
    """The smallest k with P(Poisson(mean) > k) < tail: the binomial margin of a rare count."""
    k, term, cdf = 0, math.exp(-mean), math.exp(-mean)
    while 1.0 - cdf >= tail:
        k += 1
        term *= mean / k
        cdf += term
    return k


@pytest.mark.parametrize("units_per_pane", [2.0, 60.0], ids=["low-traffic", "busy"])
def test_an_aa_month_stays_within_the_stated_false_alarm_rate(units_per_pane):
    # a generous rate (30 a month) so a month holds enough alarms for the bound to bite
    cfg = MonitorConfig(false_alarms_per_month=30.0)
    months = 3
    alarms = alarms_in_months(20261208, months, features=4, units_per_pane=units_per_pane, cfg=cfg)
    bound = months * cfg.false_alarms_per_month  # the e-detector's guarantee: ARL >= A panes
    assert alarms <= poisson_upper(bound), (alarms, bound)


def test_the_stated_rate_of_one_a_month_is_met_on_a_simulated_month():
    cfg = MonitorConfig(false_alarms_per_month=1.0)
    alarms = alarms_in_months(7, 2, features=6, units_per_pane=20.0, cfg=cfg)
    assert alarms <= poisson_upper(2 * cfg.false_alarms_per_month), alarms


def test_a_shift_on_one_feature_is_found_within_minutes():
    """The same detector is not blind: 0.3 SD on one feature of six (PSI ≈ 0.09 on deciles) at
    100 req/s sampled 10 % (≈ 600 units a pane) alarms within five panes of the change."""
    from statistics import NormalDist

    rng = np.random.default_rng(3)
    cfg = MonitorConfig(false_alarms_per_month=1.0)
    ref = reference_counts(rng, 6, 20_000)
    edges = [NormalDist().inv_cdf(q / 10) for q in range(1, 10)]
    shifted = np.diff([0.0] + [NormalDist(0.3, 1).cdf(e) for e in edges] + [1.0])
    shift_to = np.concatenate([shifted, [0.0, 0.0]])
    start = 600
    units = simulate(rng, ref, 720, 600.0, shift_from=start, shift_to=shift_to / shift_to.sum())
    alarms, _ = detector(pane_log_evalues([(ref, units)], cfg), cfg.alarm_threshold)
    assert not [a for a in alarms if a < start]
    after = [a for a in alarms if a >= start]
    assert after and after[0] - start <= 5, after[:3]


def test_heavy_users_count_once_per_pane_so_an_aa_stream_stays_within_the_rate():
    """A user who sends 30 requests a minute with the same features is one observation, not 30:
    on unit counts (each key once per pane) the detector keeps its rate on an A/A stream whose
    requests are heavily clustered; on request counts the same stream alarms far more often."""
    from console.monitor.panes import Layout, fold
    from console.monitor.profile import build_profile

    rng = np.random.default_rng(11)
    profile = build_profile({"a": rng.normal(size=200_000), "b": rng.normal(size=200_000)})
    layout = Layout(2)
    panes, t, keys, a, b = 2 * 24 * 60, [], [], [], []
    for pane in range(panes):
        active = [0] + list(rng.choice(np.arange(1, 400), size=4, replace=False))
        for user in active:
            row = rng.normal(size=2)  # the user's features this minute: a fresh draw from the reference
            count = 30 if user == 0 else int(rng.integers(1, 3))
            t += list(pane * 60 + rng.uniform(0, 60, count))
            keys += [f"user{user}"] * count
            a += [row[0]] * count
            b += [row[1]] * count
    n = len(t)
    folded = fold(profile, np.asarray(t), np.asarray(["1"] * n, dtype=object), np.asarray(keys, dtype=object),
                  np.asarray([str(i) for i in range(n)], dtype=object), {"a": np.asarray(a), "b": np.asarray(b)},
                  np.full(n, 0.5))
    matrix = np.stack([folded[("1", m)] for m in range(panes)])
    ref = np.asarray([f.ref for f in profile.features], dtype=float)
    cfg = MonitorConfig(false_alarms_per_month=600.0)  # A = 72 panes: ≈ 40 alarms allowed in two days
    allowed = panes / cfg.alarm_threshold
    on_units, _ = detector(pane_log_evalues([(ref, layout.feature_counts(matrix, units=True))], cfg),
                           cfg.alarm_threshold)
    on_requests, _ = detector(pane_log_evalues([(ref, layout.feature_counts(matrix, units=False))], cfg),
                              cfg.alarm_threshold)
    assert len(on_units) <= poisson_upper(allowed), (len(on_units), allowed)
    assert len(on_requests) > 3 * poisson_upper(allowed), (len(on_requests), allowed)


def test_a_large_change_in_the_first_pane_after_silence_alarms_in_that_pane():
    """No earlier traffic to learn from (a replay right after a quiet spell): the fixed
    alternatives still see a unit change (values ×1.6 land in the top bins) in its first pane."""
    rng = np.random.default_rng(4)
    cfg = MonitorConfig(false_alarms_per_month=1.0)
    ref = reference_counts(rng, 14, 342)
    units = np.zeros((61, 14, W))
    top = np.zeros(W)
    top[7:10] = 1 / 3
    units[60, :5, :] = rng.multinomial(150, top, size=5)  # five features moved to the top bins
    units[60, 5:, :] = rng.multinomial(150, proportions(ref[5:], DETECTOR_PSEUDO)[0], size=9)
    alarms, _ = detector(pane_log_evalues([(ref, units)], cfg), cfg.alarm_threshold)
    assert alarms == [60]
