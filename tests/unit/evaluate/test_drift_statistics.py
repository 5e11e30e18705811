"""Drift statistics against scipy, and the drift engine's verdicts on data with known drift."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from backends.base import BadInputError
from console.evaluate import drift
from console.evaluate import stats

# values drawn from a small pool make ties, between and within the two samples
pool = st.sampled_from([0.0, 1.0, 1.5, 2.0, -3.0, 7.25, 1e6, np.nan])
column = st.lists(st.one_of(pool, st.floats(-100, 100, allow_nan=False)), min_size=0, max_size=60)


@st.composite
def numeric_tables(draw):
    k = draw(st.integers(1, 4))
    n, m = draw(st.integers(1, 60)), draw(st.integers(1, 60))

    def col(size):
        kind = draw(st.sampled_from(["mixed", "constant", "pool"]))
        if kind == "constant":
            return np.full(size, draw(st.sampled_from([0.0, 2.5, np.nan])))
        values = draw(st.lists(st.one_of(pool, st.floats(-100, 100, allow_nan=False)) if kind == "mixed" else pool,
                               min_size=size, max_size=size))
        return np.array(values, dtype=float)

    ref = {f"x{j}": col(n) for j in range(k)}
    cur = {f"x{j}": col(m) for j in range(k)}
    return ref, cur


@pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")  # scipy's own exact-method fallback
@settings(max_examples=150, deadline=None)
@given(numeric_tables())
def test_ks_equals_scipy_ks_2samp(tables):
    ref, cur = tables
    report = drift.drift_report(ref, cur, kinds={c: "numeric" for c in ref}, threads=1)
    for f in report.features:
        x, y = ref[f.name][~np.isnan(ref[f.name])], cur[f.name][~np.isnan(cur[f.name])]
        if x.size == 0 or y.size == 0:
            assert f.extra["ks"] is None
            continue
        expected = sps.ks_2samp(x, y).statistic
        assert f.extra["ks"] == pytest.approx(expected, abs=1e-9)
        assert f.extra["wasserstein"] == pytest.approx(sps.wasserstein_distance(x, y), abs=1e-9, rel=1e-9)


@st.composite
def categorical_tables(draw):
    k = draw(st.integers(1, 4))
    labels = st.sampled_from(["a", "b", "c", "d", None, "zz"])

    def col(size):
        if draw(st.booleans()):
            return np.array([draw(labels)] * size, dtype=object)  # constant (or all missing)
        return np.array(draw(st.lists(labels, min_size=size, max_size=size)), dtype=object)

    n, m = draw(st.integers(1, 50)), draw(st.integers(1, 50))
    return {f"c{j}": col(n) for j in range(k)}, {f"c{j}": col(m) for j in range(k)}


def contingency(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """The 2 × C table, missing values a category of their own, empty categories left out."""
    def key(v):
        return "<missing>" if v is None else v

    cats = sorted({key(v) for v in ref} | {key(v) for v in cur})
    table = np.array([[sum(key(v) == c for v in side) for c in cats] for side in (ref, cur)], dtype=float)
    return table[:, table.sum(axis=0) > 0]


@settings(max_examples=150, deadline=None)
@given(categorical_tables())
def test_chi2_equals_chi2_contingency(tables):
    ref, cur = tables
    report = drift.drift_report(ref, cur, threads=1)
    for f in report.features:
        assert f.kind == "categorical" and f.method == "chi2"
        table = contingency(ref[f.name], cur[f.name])
        expected = sps.chi2_contingency(table)
        assert f.statistic == pytest.approx(expected.statistic, abs=1e-9)
        assert f.p_value == pytest.approx(expected.pvalue, abs=1e-9)


def test_chi2_two_sample_vectorised_matches_scipy_on_random_tables():
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 40, size=(30, 6)).astype(float)
    cur = rng.integers(0, 40, size=(30, 6)).astype(float)
    ref[:5, 2:] = 0  # 2 × 2 tables after removing empty columns: Yates' correction
    cur[:5, 2:] = 0
    stat, p, dof = stats.chi2_two_sample(ref, cur)
    for i in range(30):
        table = np.vstack([ref[i], cur[i]])
        expected = sps.chi2_contingency(table[:, table.sum(axis=0) > 0])
        assert stat[i] == pytest.approx(expected.statistic, abs=1e-9)
        assert p[i] == pytest.approx(expected.pvalue, abs=1e-9)
        assert dof[i] == expected.dof


def test_ks_pvalue_close_to_scipy():
    rng = np.random.default_rng(1)
    # small samples: the exact permutation law (scipy's method="exact"); larger: scipy's asymptotic mode
    for n, m, tol, method in ((50, 80, 1e-10, "exact"), (3000, 2000, 1e-12, "asymp"), (100_000, 100_000, 1e-3, "asymp")):
        x, y = rng.normal(size=n), rng.normal(0.01, 1, size=m)
        res = sps.ks_2samp(x, y, method=method)
        assert stats.ks_pvalue(res.statistic, n, m)[0] == pytest.approx(res.pvalue, abs=tol)


def test_benjamini_hochberg_matches_scipy():
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.5, 0.001, np.nan])
    ours = stats.benjamini_hochberg(p)
    assert np.isnan(ours[-1])
    np.testing.assert_allclose(ours[:-1], sps.false_discovery_control(p[:-1]), rtol=1e-12)


def test_mcnemar_exact_and_chi2():
    cand = np.array([True] * 10 + [False] * 2 + [True] * 50)
    base = np.array([False] * 10 + [True] * 2 + [True] * 50)
    res = stats.mcnemar(cand, base)
    assert (res["b"], res["c"], res["method"]) == (10, 2, "exact-binomial")
    assert res["p_value"] == pytest.approx(sps.binomtest(2, 12, 0.5).pvalue, rel=1e-12)
    cand2 = np.array([True] * 40 + [False] * 20)
    base2 = ~cand2
    res2 = stats.mcnemar(cand2, base2)
    assert res2["method"] == "chi2-cc"
    assert res2["p_value"] == pytest.approx(sps.chi2.sf((abs(40 - 20) - 1) ** 2 / 60, 1), rel=1e-9)


def test_paired_bootstrap_ci_covers_the_difference_and_is_reproducible():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.4
    base = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 400), 0, 1)
    cand = np.clip(y * 0.7 + rng.normal(0.15, 0.2, 400), 0, 1)
    for metric in ("auc_roc", "accuracy", "f1", "rmse"):
        a = stats.paired_bootstrap(metric, y, cand, base, n_boot=500, seed=4)
        b = stats.paired_bootstrap(metric, y, cand, base, n_boot=500, seed=4)
        assert a == b
        assert a["ci_low"] <= a["delta"] <= a["ci_high"]
    from backends.native.metrics import auc_roc

    assert stats.metric_value("auc_roc", y, cand) == pytest.approx(auc_roc(y, cand), abs=1e-12)


# -- the engine's verdicts ------------------------------------------------------------------------


def test_missing_rate_change_is_drift_in_itself():
    rng = np.random.default_rng(5)
    ref = rng.normal(size=20_000)
    cur = rng.normal(size=20_000)
    cur[rng.random(20_000) < 0.2] = np.nan  # the values are not drifted, only missing more often
    report = drift.drift_report({"x": ref}, {"x": cur}, threads=1)
    f = report.features[0]
    assert f.extra["ks_p_value"] > 0.01  # KS on the values alone sees nothing (Evidently's blind spot)
    assert f.severity == "critical" and f.extra["missing_rate_current"] == pytest.approx(0.2, abs=0.01)


def test_unseen_categories_are_counted_and_flagged():
    rng = np.random.default_rng(6)
    ref = rng.choice(np.array(["a", "b", "c"], dtype=object), 5000)
    cur = rng.choice(np.array(["a", "b", "c", "new"], dtype=object), 5000, p=[0.25, 0.25, 0.25, 0.25])
    f = drift.drift_report({"k": ref}, {"k": cur}, threads=1).features[0]
    assert f.extra["unseen_categories"] == ["new"] and f.extra["unseen_share"] == pytest.approx(0.25, abs=0.02)
    assert f.severity == "critical"


def test_undrifted_large_categoricals_are_not_flagged():
    """Eight undrifted categorical columns at 200,000 rows: a two-sample test flags none."""
    rng = np.random.default_rng(8)
    n = 200_000
    ref, cur = {}, {}
    for j in range(8):
        labels = np.array([f"v{i}" for i in range(4 + j)], dtype=object)
        p = np.linspace(1, 3, labels.size)
        p /= p.sum()
        ref[f"c{j}"] = labels[rng.choice(labels.size, n, p=p)]
        cur[f"c{j}"] = labels[rng.choice(labels.size, n, p=p)]
    report = drift.drift_report(ref, cur)
    assert [f.severity for f in report.features] == ["none"] * 8 and report.severity == "none"


def test_small_samples_need_significance_not_just_psi():
    """At 60 rows noise alone gives PSI > 0.1; without significance that would be a warning."""
    rng = np.random.default_rng(9)
    ref = {f"x{j}": rng.normal(size=60) for j in range(10)}
    cur = {f"x{j}": rng.normal(size=60) for j in range(10)}
    report = drift.drift_report(ref, cur, threads=1)
    assert max(f.extra["psi"] for f in report.features) > 0.1
    assert all(f.severity == "none" for f in report.features)
    assert all(f.method == "ks" for f in report.features)


def test_large_shift_is_critical_and_methods_follow_sample_size():
    rng = np.random.default_rng(10)
    ref = {"a": rng.normal(size=5000), "b": rng.normal(size=5000), "flag": rng.integers(0, 2, 5000).astype(float)}
    cur = {"a": rng.normal(1.0, 1, size=5000), "b": rng.normal(size=5000), "flag": rng.integers(0, 2, 5000).astype(float)}
    report = drift.drift_report(ref, cur)
    by = {f.name: f for f in report.features}
    assert by["a"].method == "psi" and by["a"].severity == "critical"
    assert by["b"].severity == "none"
    assert by["flag"].kind == "categorical"  # two distinct values: a category, not a number
    assert report.severity == "critical" and report.drift_share == pytest.approx(1 / 3)
    assert not report.dataset_drift


def test_cached_profile_gives_the_same_report_as_cold():
    rng = np.random.default_rng(11)
    ref = {"a": rng.normal(size=3000), "b": np.round(rng.normal(size=3000)), "c": rng.choice(np.array(list("xyz"), dtype=object), 3000)}
    ref["a"][::17] = np.nan
    cur = {"a": rng.normal(0.2, 1, size=2000), "b": np.round(rng.normal(size=2000)), "c": rng.choice(np.array(list("xyzw"), dtype=object), 2000)}
    cold = drift.drift_report(ref, cur, threads=1).to_dict()
    warm = drift.drift_report(drift.profile(ref), cur, threads=2).to_dict()
    assert cold == warm


def test_missing_column_is_critical_and_text_in_a_numeric_column_is_bad_input():
    rng = np.random.default_rng(12)
    report = drift.drift_report({"a": rng.normal(size=100), "b": rng.normal(size=100)}, {"a": rng.normal(size=100)})
    by = {f.name: f for f in report.features}
    assert by["b"].method == "missing-column" and by["b"].severity == "critical"
    with pytest.raises(BadInputError, match=r"cur\.csv: column 'a': declared numeric but holds text"):
        drift.drift_report({"a": rng.normal(size=3)}, {"a": np.array(["1", "x", "2"], dtype=object)},
                           kinds={"a": "numeric"}, source_current="cur.csv")


def test_ks_pruned_search_equals_scipy_on_large_samples_with_ties_and_nan():
    # above 4 × KS_STRIDE distinct reference values the KS search is pruned: it must stay exact
    rng = np.random.default_rng(11)
    shapes = {
        "continuous": lambda n, s: rng.normal(s, 1, n),
        "ties": lambda n, s: np.round(rng.normal(50 + 3 * s, 10, n)),
        "few ties": lambda n, s: np.round(rng.normal(0, 1, n) * 300) / 300 + s,
        "heavy tail": lambda n, s: rng.standard_t(2, n) * (1 + s),
        "nan": lambda n, s: np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 1 + s, n)),
    }
    for shift in (0.0, 0.02, 0.3):
        for n, m in ((5000, 5000), (3000, 7000), (8000, 1500)):
            ref = {name: make(n, 0.0) for name, make in shapes.items()}
            cur = {name: make(m, shift) for name, make in shapes.items()}
            report = drift.drift_report(ref, cur, kinds={c: "numeric" for c in ref}, threads=2)
            for f in report.features:
                x, y = ref[f.name][~np.isnan(ref[f.name])], cur[f.name][~np.isnan(cur[f.name])]
                assert f.extra["ks"] == sps.ks_2samp(x, y, method="asymp").statistic, (f.name, shift, n, m)
                assert f.extra["wasserstein"] == pytest.approx(sps.wasserstein_distance(x, y), rel=1e-9, abs=1e-12)


@pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")  # scipy's own exact-method fallback
@settings(max_examples=100, deadline=None)
@given(numeric_tables(), st.integers(1, 3))
def test_ks_pruned_search_equals_scipy_at_any_stride(tables, stride):
    # a stride of 1–3 sends the small hypothesis samples through the pruned search too
    ref, cur = tables
    saved = drift.KS_STRIDE
    drift.KS_STRIDE = stride
    try:
        report = drift.drift_report(ref, cur, kinds={c: "numeric" for c in ref}, threads=1)
    finally:
        drift.KS_STRIDE = saved
    for f in report.features:
        x, y = ref[f.name][~np.isnan(ref[f.name])], cur[f.name][~np.isnan(cur[f.name])]
        if x.size and y.size:
            assert f.extra["ks"] == pytest.approx(sps.ks_2samp(x, y).statistic, abs=1e-12)
