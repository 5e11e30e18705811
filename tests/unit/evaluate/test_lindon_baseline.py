"""The literature baseline of bench_canary.py (Lindon et al., KDD 2022; tests/bench/lindon_baseline.py):
its Bayes factor is theirs, it holds alpha under continuous monitoring, and it finds a 5x error rate."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy.special import betaln

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import lindon_baseline  # noqa: E402

ALPHA = 0.05


def test_quadrature_matches_their_conjugate_bayes_factor_at_an_even_split():
    rng = np.random.default_rng(5)
    k = rng.integers(0, 80, 40)
    x = rng.binomial(k, 0.62)
    thetas = lindon_baseline.prior_thetas(nodes=4000)
    ours = np.log(np.mean(np.exp(x[:, None] * np.log(thetas) - k[:, None] * np.log(0.5 * thetas + 0.5)), axis=1))
    a = lindon_baseline.PRIOR_A
    theirs = betaln(a + x, a + k - x) - betaln(a, a) + k * math.log(2.0)  # written out, not via the helper
    assert np.max(np.abs(ours - theirs)) < 1e-2
    assert np.allclose(lindon_baseline.closed_form_log_bf(x, k, 0.5), theirs)


def test_false_alarms_under_continuous_monitoring_stay_within_alpha():
    runs = 2000
    margin = 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    rng = np.random.default_rng(2026)
    # the plan's moving split, then 20 more minutes at 50 %, a look every 5 s (276 looks)
    counts = lindon_baseline.simulate(rng, runs, 0.01, 0.01, 200.0, steps=(0.05, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5), hold_s=240.0)
    first = lindon_baseline.lindon_detections(counts, ALPHA)
    assert (first >= 0).mean() <= ALPHA + margin


def test_a_five_fold_error_rate_is_caught_before_promotion():
    rng = np.random.default_rng(2027)
    counts = lindon_baseline.simulate(rng, 1000, 0.05, 0.01, 200.0)  # the bench's plan: 180 s, 5 -> 25 -> 50 %
    first = lindon_baseline.lindon_detections(counts, ALPHA)
    assert (first >= 0).mean() > 0.9
    # and the stable side failing more is not a canary regression: no rollbacks from it
    flipped = lindon_baseline.simulate(np.random.default_rng(2028), 1000, 0.01, 0.05, 200.0)
    assert (lindon_baseline.lindon_detections(flipped, ALPHA) >= 0).mean() <= ALPHA
