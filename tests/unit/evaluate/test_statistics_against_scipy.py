"""The statistics under the gates and drift, against scipy/sklearn and by seeded simulation (issue 12, item 7)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from console.evaluate import drift
from console.evaluate import stats
from console.evaluate.validation import seed_psi


# -- AUC from ranks -----------------------------------------------------------------------------


def test_rank_auc_equals_sklearn_on_resamples_with_ties():
    rng = np.random.default_rng(7)
    for n in (9, 60, 700):
        y = rng.random(n) < 0.35
        scores = np.round(rng.random(n) + 0.2 * y, 1)  # one decimal: many ties within and across classes
        picks = rng.integers(0, n, size=(30, n))
        weights = np.stack([np.bincount(p, minlength=n) for p in picks])
        ours = stats._weighted_auc(weights, y, scores)
        for b, p in enumerate(picks):
            if y[p].all() or not y[p].any():
                assert np.isnan(ours[b])
            else:
                assert ours[b] == pytest.approx(roc_auc_score(y[p], scores[p]), abs=1e-12)
        assert stats.metric_value("auc_roc", y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auc_bootstrap_handles_8000_rows_in_bounded_memory():
    import tracemalloc

    rng = np.random.default_rng(0)
    n = 8000
    y = rng.random(n) < 0.4
    cand, base = rng.random(n) + 0.3 * y, rng.random(n) + 0.3 * y
    tracemalloc.start()
    try:
        res = stats.paired_bootstrap("auc_roc", y, cand, base, n_boot=500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the pairwise table alone was n_pos · n_neg · 8 B ≈ 123 MB (384 MB peak with its temporaries)
    assert peak < 80e6, peak
    assert res["n_boot"] == 500 and res["ci_low"] < res["delta"] < res["ci_high"]
    assert res["candidate"] == pytest.approx(roc_auc_score(y, cand), abs=1e-12)


# -- KS p-values --------------------------------------------------------------------------------


@pytest.mark.parametrize("n,m", [(8, 8), (3, 7), (20, 13), (50, 80), (1, 5), (37, 200), (120, 120)])
def test_ks_pvalue_small_samples_is_scipys_exact(n, m):
    rng = np.random.default_rng(n * 1000 + m)
    for shift in (0.0, 0.5, 1.5):
        x, y = rng.normal(size=n), rng.normal(shift, 1, size=m)
        res = sps.ks_2samp(x, y, method="exact")
        assert stats.ks_pvalue(res.statistic, n, m)[0] == pytest.approx(res.pvalue, abs=1e-10, rel=1e-8)


def test_ks_size_at_n_8_is_within_alpha():
    """Under H0 the test rejects at most α of the time (the asymptotic law gave 8.6 % at α = 5 %)."""
    rng = np.random.default_rng(12)
    trials, alpha = 4000, 0.05
    x, y = rng.normal(size=(trials, 8)), rng.normal(size=(trials, 8))
    d = np.array([sps.ks_2samp(a, b).statistic for a, b in zip(x, y)])
    rate = float(np.mean(stats.ks_pvalue(d, 8, 8) <= alpha))
    margin = 3 * np.sqrt(alpha * (1 - alpha) / trials)
    assert rate <= alpha + margin, rate


def test_drift_small_sample_ks_pvalue_is_exact():
    rng = np.random.default_rng(3)
    ref, cur = {"x": rng.normal(size=30)}, {"x": rng.normal(0.4, 1, size=25)}
    feature = drift.drift_report(ref, cur, threads=1).features[0]
    assert feature.method == "ks"
    assert feature.extra["ks_p_value"] == pytest.approx(sps.ks_2samp(ref["x"], cur["x"], method="exact").pvalue, rel=1e-9)


# -- McNemar ------------------------------------------------------------------------------------


def test_mcnemar_continuity_correction_never_goes_negative():
    # b = c = 15: no evidence at all; (|b − c| − 1)² would read as 1/30 (p ≈ 0.86)
    cand = np.array([True] * 15 + [False] * 15 + [True] * 20)
    base = np.array([False] * 15 + [True] * 15 + [True] * 20)
    res = stats.mcnemar(cand, base)
    assert (res["b"], res["c"], res["method"]) == (15, 15, "chi2-cc")
    assert res["statistic"] == 0.0 and res["p_value"] == 1.0


# -- ±inf in drift ------------------------------------------------------------------------------


def test_infinities_are_missing_values_in_drift():
    rng = np.random.default_rng(5)
    ref = {"x": rng.normal(size=400), "k": rng.integers(0, 3, 400).astype(float), "t": np.array(["a", "b"] * 200, dtype=object)}
    cur = {"x": rng.normal(size=400), "k": rng.integers(0, 3, 400).astype(float), "t": np.array(["a", "b"] * 200, dtype=object)}
    cur["x"][:20], cur["x"][20:30] = np.inf, -np.inf
    cur["k"][:8] = -np.inf
    ref["x"][:4] = np.inf
    with_nan = {c: np.where(np.isinf(v), np.nan, v) if v.dtype.kind == "f" else v for c, v in cur.items()}
    ref_nan = {c: np.where(np.isinf(v), np.nan, v) if v.dtype.kind == "f" else v for c, v in ref.items()}
    inf_report = drift.drift_report(ref, cur, threads=1)
    nan_report = drift.drift_report(ref_nan, with_nan, threads=1)
    by_name = {f.name: f for f in inf_report.features}
    assert by_name["x"].extra["missing_rate_current"] == pytest.approx(30 / 400)
    assert by_name["x"].extra["missing_rate_reference"] == pytest.approx(4 / 400)
    finite = cur["x"][np.isfinite(cur["x"])]
    assert by_name["x"].extra["ks"] == pytest.approx(sps.ks_2samp(ref["x"][4:], finite).statistic, abs=1e-12)
    assert by_name["x"].extra["wasserstein"] is not None  # ±inf used to make it NaN
    assert "<missing>" in by_name["k"].extra["categories"] and "-inf" not in map(str, by_name["k"].extra["categories"])
    for a, b in zip(inf_report.features, nan_report.features):
        assert (a.name, a.statistic, a.p_value, a.severity) == (b.name, b.statistic, b.p_value, b.severity)


# -- the seed's PSI -----------------------------------------------------------------------------


def test_seed_psi_counts_values_outside_the_baseline_bins():
    bins, counts = [0.0, 1.0, 2.0, 3.0, 4.0], [25, 25, 25, 25]
    rng = np.random.default_rng(1)
    inside = rng.uniform(0, 4, 2000)
    assert seed_psi(bins, counts, inside) < 0.01
    # every value above the baseline's range: the seed's np.histogram saw no values at all
    moved = rng.uniform(5, 9, 2000)
    assert seed_psi(bins, counts, moved) > 1.0
    # a quarter moved below the range: lands in the first bin, which then holds ~44 %
    mixed = np.concatenate([rng.uniform(0, 4, 1500), rng.uniform(-9, -1, 500)])
    share = np.array([(mixed < 1).mean(), ((mixed >= 1) & (mixed < 2)).mean(), ((mixed >= 2) & (mixed < 3)).mean(),
                      (mixed >= 3).mean()])
    expected = float(np.sum((share - 0.25) * np.log(share / 0.25)))
    assert seed_psi(bins, counts, mixed) == pytest.approx(expected, rel=1e-9)
    assert seed_psi(bins, counts, np.array([np.inf, -np.inf, 2.5, 0.5])) == pytest.approx(
        seed_psi(bins, counts, np.array([3.5, 0.5, 2.5, 0.5])))
