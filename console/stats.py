"""Pure statistics for the gates and the drift engine: numpy in, numbers out, no I/O.

scipy is imported inside the functions that need it (special functions only), so importing this
module costs numpy alone.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

# -- paired comparisons of two models on the same rows ---------------------------------------


def mcnemar(candidate_correct, baseline_correct) -> dict[str, float]:
    """McNemar's test on paired correctness.

    b = rows only the candidate gets right, c = rows only the baseline gets right. With fewer
    than 25 discordant rows the exact binomial test is used (the χ² approximation is poor
    there), otherwise χ² with the continuity correction. Two-sided p-value.
    """
    cand = np.asarray(candidate_correct, dtype=bool)
    base = np.asarray(baseline_correct, dtype=bool)
    b = int(np.sum(cand & ~base))
    c = int(np.sum(~cand & base))
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "none"}
    if n < 25:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
        return {"b": b, "c": c, "statistic": float(k), "p_value": min(1.0, 2.0 * tail), "method": "exact-binomial"}
    stat = (abs(b - c) - 1.0) ** 2 / n
    return {"b": b, "c": c, "statistic": stat, "p_value": math.erfc(math.sqrt(stat / 2.0)), "method": "chi2-cc"}


def _weighted_auc(weights: np.ndarray, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each weighted resample (rows of `weights` = multiplicities), exactly, ties ½."""
    pos, neg = scores[y], scores[~y]
    # pairwise wins of every positive over every negative: fixed across resamples
    wins = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    wp, wn = weights[:, y].astype(float), weights[:, ~y].astype(float)
    num = np.einsum("bi,ij,bj->b", wp, wins, wn)
    den = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _weighted_metric(name: str, weights: np.ndarray, y: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    w = weights.astype(float)
    if name == "auc_roc":
        return _weighted_auc(weights, y.astype(bool), scores)
    if name in ("rmse", "mae"):
        err = scores - y.astype(float)
        total = w.sum(axis=1)
        if name == "rmse":
            return np.sqrt((w @ (err * err)) / total)
        return (w @ np.abs(err)) / total
    yb, pred = y.astype(bool), scores >= threshold
    tp, fp, fn = w @ (yb & pred), w @ (~yb & pred), w @ (yb & ~pred)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "accuracy":
            return (w @ (yb == pred)) / w.sum(axis=1)
        if name == "precision":
            return np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        if name == "recall":
            return np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        if name == "f1":
            return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    raise ValueError(f"no paired bootstrap for metric {name!r}")


BOOTSTRAP_METRICS = ("auc_roc", "accuracy", "precision", "recall", "f1", "rmse", "mae")


def metric_value(name: str, y, scores, threshold: float = 0.5) -> float:
    """The metric on the whole sample (weights all one)."""
    y, scores = np.asarray(y), np.asarray(scores, dtype=float)
    return float(_weighted_metric(name, np.ones((1, y.size), dtype=np.int64), y, scores, threshold)[0])


def paired_bootstrap(metric: str, y, candidate_scores, baseline_scores, *, n_boot: int = 2000,
                     alpha: float = 0.05, seed: int = 0, threshold: float = 0.5) -> dict[str, float]:
    """Percentile CI of metric(candidate) − metric(baseline), resampling rows jointly.

    Resampling the same rows for both models keeps the pairing, so the CI is much narrower
    than two independent CIs would suggest. Resamples are drawn as multinomial weights and
    evaluated in blocks (no Python loop per resample).
    """
    y = np.asarray(y)
    cand = np.asarray(candidate_scores, dtype=float)
    base = np.asarray(baseline_scores, dtype=float)
    n = y.size
    if metric == "auc_roc" and (y.astype(bool).all() or not y.astype(bool).any()):
        nan = float("nan")
        return {"delta": nan, "ci_low": nan, "ci_high": nan, "candidate": nan, "baseline": nan, "n_boot": 0}
    rng = np.random.default_rng(seed)
    block = max(1, min(n_boot, 4_000_000 // max(n, 1)))
    deltas = []
    done = 0
    while done < n_boot:
        size = min(block, n_boot - done)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
        deltas.append(_weighted_metric(metric, weights, y, cand, threshold) - _weighted_metric(metric, weights, y, base, threshold))
        done += size
    d = np.concatenate(deltas)
    d = d[np.isfinite(d)]
    cand_value, base_value = metric_value(metric, y, cand, threshold), metric_value(metric, y, base, threshold)
    lo, hi = (np.quantile(d, [alpha / 2, 1 - alpha / 2]) if d.size else (np.nan, np.nan))
    return {"delta": cand_value - base_value, "ci_low": float(lo), "ci_high": float(hi),
            "candidate": cand_value, "baseline": base_value, "n_boot": int(d.size)}


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    z = _normal_quantile(1 - alpha / 2)
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def _normal_quantile(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


def two_proportion_pvalue(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Two-sided pooled z-test of p1 = p2, vectorised over columns (missing-value rates)."""
    from scipy import special

    x1, n1, x2, n2 = (np.asarray(a, dtype=float) for a in (x1, n1, x2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (x1 + x2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = np.abs(x1 / n1 - x2 / n2) / se
        p = special.erfc(z / math.sqrt(2))
    return np.where(se > 0, p, 1.0)


# -- multiple testing --------------------------------------------------------------------------


def benjamini_hochberg(p_values) -> np.ndarray:
    """BH-adjusted p-values (false discovery rate across columns); NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(ranked, 1.0)
    out[ok] = adjusted
    return out


# -- distribution distances --------------------------------------------------------------------

PSI_EPS = 1e-4  # floor of a bin's share: an empty bin would make PSI infinite


def psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray, eps: float = PSI_EPS) -> np.ndarray:
    """PSI = Σ (q − p) · ln(q / p) over the last axis, shares floored at eps."""
    ref = np.asarray(ref_counts, dtype=float)
    cur = np.asarray(cur_counts, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.clip(ref / ref.sum(axis=-1, keepdims=True), eps, None)
        q = np.clip(cur / cur.sum(axis=-1, keepdims=True), eps, None)
        return np.sum((q - p) * np.log(q / p), axis=-1)


def psi_null_pvalue(psi, n_ref, n_cur, bins) -> np.ndarray:
    """P(PSI ≥ observed | no drift): under H0, PSI / (1/N + 1/M) ≈ χ²(B − 1)."""
    from scipy import special

    psi, n_ref, n_cur, bins = (np.asarray(a, dtype=float) for a in (psi, n_ref, n_cur, bins))
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = psi / (1.0 / n_ref + 1.0 / n_cur)
        dof = np.maximum(bins - 1, 1)
        return np.where(np.isfinite(scaled), special.chdtrc(dof, np.maximum(scaled, 0)), np.nan)


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> np.ndarray:
    """Jensen–Shannon distance (base 2, in [0, 1]) over the last axis."""
    ref = np.asarray(ref_counts, dtype=float)
    cur = np.asarray(cur_counts, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = ref / ref.sum(axis=-1, keepdims=True)
        q = cur / cur.sum(axis=-1, keepdims=True)
        m = (p + q) / 2

        def kl(a, b):
            return np.sum(np.where(a > 0, a * np.log2(a / np.where(b > 0, b, 1)), 0.0), axis=-1)

        return np.sqrt(np.maximum((kl(p, m) + kl(q, m)) / 2, 0.0))


def ks_pvalue(d, n_ref, n_cur) -> np.ndarray:
    """Two-sided p-value of the two-sample KS statistic.

    Small samples (effective size round(NM/(N+M)) ≤ 10,000) use the exact one-sample law with
    that size, as scipy's ks_2samp does in its asymptotic mode; larger ones use the limiting
    Kolmogorov law, ~10⁴× cheaper and within 1e-3 of it at those sizes.
    """
    from scipy import special, stats

    d = np.atleast_1d(np.asarray(d, dtype=float))
    n_ref = np.broadcast_to(np.asarray(n_ref, dtype=float), d.shape)
    n_cur = np.broadcast_to(np.asarray(n_cur, dtype=float), d.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        en = n_ref * n_cur / (n_ref + n_cur)
        p = special.kolmogorov(np.sqrt(en) * d)
    small = np.isfinite(d) & (en > 0) & (np.round(en) <= 10_000)
    if small.any():
        p[small] = stats.kstwo.sf(d[small], np.maximum(np.round(en[small]), 1))
    p[~np.isfinite(d) | ~(en > 0)] = np.nan
    return np.clip(p, 0.0, 1.0)


def chi2_two_sample(ref_counts: np.ndarray, cur_counts: np.ndarray, *, correction: bool = True):
    """Two-sample contingency χ² (a 2 × C table per row), vectorised over rows.

    Equals scipy.stats.chi2_contingency on the table [ref_counts; cur_counts] with the
    all-zero category columns removed: same statistic, same dof = C' − 1, Yates' continuity
    correction when dof = 1 (as scipy does by default), statistic 0 and p = 1 when dof = 0.
    Not a goodness-of-fit test against the reference shares: that treats the reference as
    exact and flags undrifted columns on large samples.
    Returns (statistic, p_value, dof); NaN where a side is empty.
    """
    from scipy import special

    ref = np.atleast_2d(np.asarray(ref_counts, dtype=float))
    cur = np.atleast_2d(np.asarray(cur_counts, dtype=float))
    present = (ref + cur) > 0
    dof = present.sum(axis=1) - 1
    n_ref, n_cur = ref.sum(axis=1, keepdims=True), cur.sum(axis=1, keepdims=True)
    total = n_ref + n_cur
    with np.errstate(invalid="ignore", divide="ignore"):
        col = ref + cur
        exp_ref, exp_cur = col * n_ref / total, col * n_cur / total
        obs_ref, obs_cur = ref.copy(), cur.copy()
        yates = (dof == 1)[:, None] & correction
        if yates.any():
            for obs, exp in ((obs_ref, exp_ref), (obs_cur, exp_cur)):
                diff = exp - obs
                adj = np.sign(diff) * np.minimum(0.5, np.abs(diff))
                obs += np.where(yates, adj, 0.0)
        terms = np.where(present, (obs_ref - exp_ref) ** 2 / exp_ref + (obs_cur - exp_cur) ** 2 / exp_cur, 0.0)
        stat = terms.sum(axis=1)
        p = special.chdtrc(np.maximum(dof, 1), stat)
    empty = (n_ref[:, 0] == 0) | (n_cur[:, 0] == 0)
    stat = np.where(dof <= 0, 0.0, stat)
    p = np.where(dof <= 0, 1.0, p)
    stat[empty] = np.nan
    p[empty] = np.nan
    return stat, p, dof


def severity_tier(effect, warning: float, critical: float) -> np.ndarray:
    """0 none · 1 warning · 2 critical, from an effect size and its two cut-offs."""
    e = np.asarray(effect, dtype=float)
    return np.where(e >= critical, 2, np.where(e >= warning, 1, 0))


def safe_call(fn: Callable[[], float]) -> float:
    try:
        return float(fn())
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return float("nan")
