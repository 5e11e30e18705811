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
    stat = max(0.0, abs(b - c) - 1.0) ** 2 / n  # the correction never crosses zero: |b − c| = 0 is no evidence
    return {"b": b, "c": c, "statistic": stat, "p_value": math.erfc(math.sqrt(stat / 2.0)), "method": "chi2-cc"}


def _weighted_auc(weights: np.ndarray, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each weighted resample (rows of `weights` = multiplicities), exactly, ties ½.

    The Mann–Whitney form on ranks: the scores are sorted once, and per resample the weight of
    negatives strictly below each score (a cumulative sum in score order, read at the start of
    the score's run of ties) plus half the negatives tied with it, summed over the positives'
    weights. O(n log n) once and O(n) per resample in memory and time, where the pairwise
    table of every positive against every negative cost O(n_pos · n_neg) (8,000 rows: 384 MB).
    """
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    neg_sorted = ~y[order]
    # the run of ties each sorted position belongs to: [first, end) in sorted positions
    new_run = np.concatenate(([True], ranked[1:] != ranked[:-1]))
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], ranked.size)
    first, end = run_start[run_id], run_end[run_id]
    pos_idx = np.flatnonzero(~neg_sorted)
    w = weights[:, order].astype(float)
    wn = np.where(neg_sorted, w, 0.0)
    below = np.zeros((w.shape[0], ranked.size + 1))
    np.cumsum(wn, axis=1, out=below[:, 1:])
    # for each positive: negatives below its run + ½ those inside it = (below[first] + below[end]) / 2
    credit = 0.5 * (below[:, first[pos_idx]] + below[:, end[pos_idx]])
    wp = w[:, pos_idx]
    num = np.einsum("bi,bi->b", wp, credit)
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
    block = max(1, min(n_boot, 1_000_000 // max(n, 1)))  # a few (block × n) float arrays at a time
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
    from scipy import special  # scipy: ~0.8 s

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
    from scipy import special  # scipy: ~0.8 s

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


KS_EXACT_MAX_CELLS = 250_000  # n·m up to which the exact law is computed (500 × 500: ~0.25 s for 40 columns)


def ks_exact_sf(d, n: int, m: int) -> np.ndarray:
    """P(D ≥ d) for the two-sample KS statistic of sizes n and m with no ties, exactly.

    The law scipy's ks_2samp(method="exact") uses: under H0 every interleaving of the two
    samples is equally likely, i.e. a uniform lattice path from (0, 0) to (n, m); D ≥ d when
    the path touches a point with |i/n − j/m| ≥ d. The mass is carried along anti-diagonals
    (transition probabilities of drawing without replacement) and the mass that reaches the
    boundary is summed, so small p-values keep their precision. Vectorised over d: one pass
    for every column that shares (n, m). O((n + m) · min(n, m)) per pass.
    """
    d = np.atleast_1d(np.asarray(d, dtype=float))
    n, m = (int(n), int(m)) if n <= m else (int(m), int(n))  # i runs over the smaller side
    out = np.full(d.shape, np.nan)
    ok = np.isfinite(d)
    if not ok.any() or n <= 0:
        return out
    # |i/n − j/m| ≥ d  ⇔  |i·m − j·n| ≥ d·n·m; the statistic is a lattice value, so snap to the integer
    thr = d[ok] * n * m
    snapped = np.round(thr)
    thr = np.where(np.abs(thr - snapped) <= 1e-7 * np.maximum(1.0, thr), snapped, thr)[:, None]
    i = np.arange(n + 1, dtype=float)
    mass = np.zeros((thr.shape[0], n + 1))
    mass[:, 0] = np.where(thr[:, 0] <= 0, 0.0, 1.0)  # d ≤ 0: every path is "outside"
    outside = np.where(thr[:, 0] <= 0, 1.0, 0.0)
    for k in range(n + m):  # from diagonal k to k + 1
        left = n + m - k
        j = k - i
        step_i = np.clip((n - i) / left, 0.0, None)
        step_j = np.where((j >= 0) & (j < m), (m - j) / left, 0.0)
        nxt = mass * step_j
        nxt[:, 1:] += mass[:, :-1] * step_i[:-1]
        j_next = k + 1 - i
        inside = (j_next >= 0) & (j_next <= m)
        hit = (np.abs(i * m - j_next * n) >= thr) & inside
        outside += np.where(hit, nxt, 0.0).sum(axis=1)
        nxt[hit] = 0.0
        mass = nxt
    out[ok] = np.clip(outside, 0.0, 1.0)
    return out


def ks_pvalue(d, n_ref, n_cur) -> np.ndarray:
    """Two-sided p-value of the two-sample KS statistic.

    Small samples (n·m ≤ KS_EXACT_MAX_CELLS) get the exact permutation law (`ks_exact_sf`,
    scipy's method="exact"): the asymptotic law there is anti-conservative (size 8.6 % at
    α = 5 % with n = m = 8). Above that, an effective size round(NM/(N+M)) ≤ 10,000 uses the
    exact one-sample law with that size, as scipy's ks_2samp does in its asymptotic mode;
    larger ones the limiting Kolmogorov law, ~10⁴× cheaper and within 1e-3 of it there.
    """
    from scipy import special, stats  # scipy: ~0.8 s

    d = np.atleast_1d(np.asarray(d, dtype=float))
    n_ref = np.broadcast_to(np.asarray(n_ref, dtype=float), d.shape)
    n_cur = np.broadcast_to(np.asarray(n_cur, dtype=float), d.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        en = n_ref * n_cur / (n_ref + n_cur)
        p = special.kolmogorov(np.sqrt(en) * d)
    usable = np.isfinite(d) & (en > 0)
    exact = usable & (n_ref * n_cur <= KS_EXACT_MAX_CELLS)
    small = usable & ~exact & (np.round(en) <= 10_000)
    if small.any():
        p[small] = stats.kstwo.sf(d[small], np.maximum(np.round(en[small]), 1))
    if exact.any():  # one lattice pass per distinct pair of sizes (a table's columns mostly share one)
        pairs = np.stack([n_ref[exact], n_cur[exact]], axis=1)
        where = np.flatnonzero(exact)
        for n, m in np.unique(pairs, axis=0):
            same = (pairs[:, 0] == n) & (pairs[:, 1] == m)
            p[where[same]] = ks_exact_sf(d[where[same]], int(n), int(m))
    p[~usable] = np.nan
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
    from scipy import special  # scipy: ~0.8 s

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
