"""Data drift: every column at once, the reference side cached, severity that means something.

Method by column kind and sample size (the DriftFeature's ``method`` says which decided):

- numeric, both sides ≥ 1,000 valid rows -> ``psi``: PSI on reference-quantile bins (10 bins,
  fewer for a small reference: one per 20 rows, at least 2; bins are right-closed) plus one
  bin for missing values. Its p-value is its own null law: with no drift
  PSI / (1/N + 1/M) ≈ χ²(B − 1). KS and the Wasserstein distance (divided by the reference's
  standard deviation) are reported beside it.
- numeric, smaller samples -> ``ks``: the two-sample Kolmogorov–Smirnov test (the statistic is
  exactly scipy's ks_2samp on the non-missing values), PSI still the effect size.
- categorical (text, booleans, or numbers with ≤ 10 distinct reference values) -> ``chi2``:
  the two-sample contingency χ² of reference vs current counts (scipy's chi2_contingency,
  missing values a category of their own, categories unseen in the reference a column of
  their own), PSI over the categories as the effect size, Jensen–Shannon distance reported.
  Not a goodness-of-fit χ² against the reference's proportions: that treats the reference as
  exact and flags undrifted columns on large samples.
- ±inf is missing, like NaN (a broken value, not a very large one), in every kind of column.
- a change in the missing-value rate is drift in itself: the missing bin is part of PSI, and
  when either side has missing values a two-proportion test joins the column's test
  (Bonferroni over the two).

Severity needs an effect and evidence: the tier comes from PSI (warning ≥ 0.1, critical ≥ 0.25,
the usual cuts), and a tier counts only when the column's p-value, adjusted across all columns
by Benjamini–Hochberg, is below alpha (0.05). At 200,000 rows the null PSI is ≈ 9·1e-5, so the
cut is then a pure effect-size cut; at 200 rows the null PSI is ≈ 0.09 and noise alone would
otherwise read as "warning". The dataset drifts when the share of drifted columns reaches
``share_threshold`` (0.5); the report's severity is critical when a column is critical or the
dataset drifts, warning when any column warns.

`drift_report(reference, current)` takes mappings of column -> 1-D array (or DataFrames), or a
`ReferenceProfile` built once by `profile(reference)` for repeated comparisons against the same
reference (sorted values, runs of ties, bin edges and counts cached). Numeric columns are
split in blocks run on `threads` threads (numpy releases the GIL in sort and searchsorted);
inside a block each column costs a fixed handful of whole-sample numpy calls (sort the
current values, search the cached reference in them, two passes for Wasserstein), never
Python work per row. That is deliberate: the fully batched form (a stable argsort merging
the (k, n + m) concatenation, gathers and cumulative sums over it) reads and writes far more
memory and measured 2× slower warm at 200,000 rows × 40 columns. The KS statistic searches
only near its peak (see `_ks_against_reference`) and is still exactly scipy's; its p-value
is exact (the permutation law) for small samples and uses the limiting Kolmogorov law above an
effective size of 10,000 (`stats.ks_pvalue`).
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from backends.base import PRODUCTION, BadInputError, check_name
from backends.support.timeutil import now_iso
from console.domain import DriftFeature, DriftReport
from console.evaluate import stats
from console.evaluate.drift_record import _reports_dir, _status_path, recorded_status  # noqa: F401  (stdlib only: home reads it)
from console.plugins import scheme_of

PSI_WARNING, PSI_CRITICAL = 0.1, 0.25
MAX_BINS = 10
ROWS_PER_BIN = 20
LARGE_SAMPLE = 1000
MAX_DISCRETE = 10
BLOCK_COLUMNS = int(os.environ.get("MRC_DRIFT_BLOCK", 8))  # columns per thread task (4–20 measured alike)
MISSING = "<missing>"


# -- the reference profile --------------------------------------------------------------------


@dataclass
class ReferenceProfile:
    rows: int
    numeric: list[str]
    sorted_values: np.ndarray  # (k, n) each row sorted, missing values (NaN) last
    valid: np.ndarray  # (k,) non-missing count
    edges: np.ndarray  # (k, B-1) reference-quantile bin edges
    bin_counts: np.ndarray  # (k, B) reference rows per bin
    std: np.ndarray  # (k,)
    categorical: list[str]
    categories: list[list[Any]]  # per categorical column: its labels (MISSING for missing)
    category_counts: list[np.ndarray]
    kinds: dict[str, str] = field(default_factory=dict)
    runs: list = field(default_factory=list)  # per numeric column: last index of each run of ties, None if none


def _as_columns(data: Any, source: str) -> dict[str, np.ndarray]:
    if isinstance(data, Mapping):
        cols = {str(k): np.asarray(v) for k, v in data.items()}
    elif hasattr(data, "columns") and hasattr(data, "__getitem__"):  # a DataFrame
        cols = {str(c): data[c].to_numpy() for c in data.columns}
    else:
        raise BadInputError(f"{source}: expected columns (a mapping or a DataFrame), not {type(data).__name__}")
    lengths = {v.shape[0] if v.ndim else 0 for v in cols.values()}
    if len(lengths) > 1:
        raise BadInputError(f"{source}: columns have different lengths {sorted(lengths)}")
    return cols


def _to_float(values: np.ndarray, name: str, source: str) -> np.ndarray:
    if values.dtype.kind in "fiu":
        return values.astype(np.float64, copy=False)
    if values.dtype.kind == "b":
        return values.astype(np.float64)
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        sample = next((v for v in values if isinstance(v, str)), values[0] if len(values) else "")
        raise BadInputError(f"{source}: column {name!r}: declared numeric but holds text ({sample!r})") from None


def _is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "fiu"


def _run(fn, items, threads: int, also=None):
    """fn over items on `threads` threads; `also` (a side task) runs beside them."""
    if threads <= 1 or len(items) + (also is not None) <= 1:
        if also is not None:
            also()
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        side = pool.submit(also) if also is not None else None
        results = list(pool.map(fn, items))
        if side is not None:
            side.result()
        return results


def _bin_counts(sorted_row: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per right-closed bin (−inf, e1], (e1, e2], …, (e_{B−1}, +inf) of a sorted row of valid values."""
    if np.isnan(edges).any():  # no reference values: no edges, everything in the last bin
        counts = np.zeros(edges.size + 1, dtype=np.int64)
        counts[-1] = sorted_row.size
        return counts
    return np.diff(np.concatenate(([0], np.searchsorted(sorted_row, edges, side="right"), [sorted_row.size])))


def _blocks(k: int) -> list[slice]:
    return [slice(i, i + BLOCK_COLUMNS) for i in range(0, k, BLOCK_COLUMNS)]


def profile(reference: Any, *, kinds: Mapping[str, str] | None = None, threads: int = 2,
            source: str = "reference") -> ReferenceProfile:
    """Everything about the reference that does not depend on the current data."""
    cols = _as_columns(reference, source)
    kinds = dict(kinds or {})
    for name, kind in kinds.items():
        if kind not in ("numeric", "categorical"):
            raise BadInputError(f"{source}: column {name!r}: kind must be numeric or categorical, not {kind!r}")
    rows = next(iter(cols.values())).shape[0] if cols else 0
    numeric = [c for c in cols if kinds.get(c) == "numeric" or (c not in kinds and _is_numeric(cols[c]))]
    categorical = [c for c in cols if c not in numeric]
    columns = [_to_float(cols[c], c, source) for c in numeric]
    sorted_values = np.empty((len(numeric), rows))
    valid = np.zeros(len(numeric), dtype=np.int64)
    runs: list = [None] * len(numeric)
    counted: dict[str, Any] = {}

    def sort_block(block: slice) -> None:  # per column: sort in place in the cache, find the runs of ties
        for j in range(block.start, min(block.stop, len(numeric))):
            row = sorted_values[j]
            row[:] = columns[j]
            row[np.isinf(row)] = np.nan  # ±inf is a broken value, not a very large one: missing
            row.sort()  # NaN last
            valid[j] = np.searchsorted(row, np.nan, side="left") if rows and np.isnan(row[-1]) else rows
            runs[j] = _ref_runs(row[:valid[j]]) if valid[j] else None

    def counting() -> None:  # hashing holds the GIL: it runs beside the sorting, which releases it
        counted["labels"], counted["counts"] = _category_counts([cols[c] for c in categorical])

    _run(sort_block, _blocks(len(numeric)), threads, also=counting)
    labels, cat_counts = counted.get("labels", []), counted.get("counts", [])
    # numbers with few distinct values are categories (a label, a count of children …)
    if numeric:
        distinct = np.array([0 if v == 0 else v if r is None else r.size for v, r in zip(valid, runs)])
        discrete = (distinct <= MAX_DISCRETE) & np.array([kinds.get(c) != "numeric" for c in numeric])
        if discrete.any():
            moved = [c for c, d in zip(numeric, discrete) if d]
            moved_labels, moved_counts = _category_counts([cols[c] for c in moved])
            categorical, labels, cat_counts = moved + categorical, moved_labels + labels, moved_counts + cat_counts
            keep = ~discrete
            numeric = [c for c, k in zip(numeric, keep) if k]
            runs = [r for r, k in zip(runs, keep) if k]
            sorted_values, valid = sorted_values[keep], valid[keep]
    bins = int(min(MAX_BINS, max(2, rows // ROWS_PER_BIN)))
    k = len(numeric)
    if k:
        b = np.arange(1, bins)[None, :]
        idx = np.clip((b * valid[:, None]) // bins, 0, np.maximum(valid[:, None] - 1, 0))
        edges = np.take_along_axis(sorted_values, idx, axis=1)
        edges[valid == 0] = np.nan
        counts = np.stack([_bin_counts(sorted_values[j, :valid[j]], edges[j]) for j in range(k)])
        with np.errstate(invalid="ignore"):  # an infinite value has no spread
            std = np.array([sorted_values[j, :valid[j]].std() if valid[j] else np.nan for j in range(k)])
    else:
        edges, counts, std = np.empty((0, bins - 1)), np.empty((0, bins), dtype=np.int64), np.empty(0)
    out_kinds = {**{c: "numeric" for c in numeric}, **{c: "categorical" for c in categorical}}
    return ReferenceProfile(rows, numeric, sorted_values, valid, edges, counts, std, categorical, labels, cat_counts, out_kinds, runs)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """codes (−1 = missing) and labels of one 1-D array, by hashing when pandas is present."""
    if values.dtype.kind in "fiub":
        vals = values.astype(float) if values.dtype.kind != "b" else values.astype(np.int8)
        missing = ~np.isfinite(vals) if vals.dtype.kind == "f" else np.zeros(vals.shape, bool)  # ±inf too
        labels, codes = np.unique(np.where(missing, 0, vals), return_inverse=True)
        codes = np.where(missing, -1, codes)
        if missing.any():  # the 0 placeholder may not be a real label
            used = np.unique(codes[codes >= 0])
            remap = np.full(labels.size, -1)
            remap[used] = np.arange(used.size)
            labels, codes = labels[used], np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
        return codes, labels
    try:
        import pandas as pd  # pandas: ~0.4 s
    except ImportError:  # slower, but still one call for all columns
        text = values.astype(str)
        missing = np.isin(text, ["None", "nan", "NaN", ""])
        labels, codes = np.unique(np.where(missing, "", text), return_inverse=True)
        return np.where(missing, -1, codes), labels
    codes, labels = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes), np.asarray(labels, dtype=object)


def _category_counts(columns: list[np.ndarray]) -> tuple[list[list[Any]], list[np.ndarray]]:
    """Labels and counts of every categorical column, from one factorisation of them all."""
    if not columns:
        return [], []
    lengths = [len(c) for c in columns]
    all_values = np.concatenate([np.asarray(c, dtype=object) if c.dtype.kind not in "fiub" else _inf_as_nan(c).astype(object)
                                 for c in columns]) if any(c.dtype.kind not in "fiub" for c in columns) \
        else np.concatenate([c.astype(float) for c in columns])
    codes, labels = _factorize(all_values)
    n_labels = len(labels) + 1  # the last slot is "missing"
    codes = np.where(codes < 0, n_labels - 1, codes)
    column_of = np.repeat(np.arange(len(columns)), lengths)
    counts = np.bincount(column_of * n_labels + codes, minlength=len(columns) * n_labels).reshape(len(columns), n_labels)
    names = [_plain(v) for v in labels] + [MISSING]
    out_labels, out_counts = [], []
    for row in counts:  # keep only the labels each column has (small: categories, not rows)
        present = np.nonzero(row)[0]
        out_labels.append([names[i] for i in present])
        out_counts.append(row[present])
    return out_labels, out_counts


def _inf_as_nan(values: np.ndarray) -> np.ndarray:
    """±inf as missing before numbers meet text in one object array (hashing would keep inf a label)."""
    return np.where(np.isinf(values), np.nan, values) if values.dtype.kind == "f" else values


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


# -- the numeric engine ------------------------------------------------------------------------


def _ref_runs(sorted_row: np.ndarray) -> np.ndarray | None:
    """Indices of the last element of each run of equal values, or None when all values differ."""
    run_end = np.flatnonzero(sorted_row[1:] != sorted_row[:-1])
    if run_end.size == sorted_row.size - 1:
        return None
    return np.append(run_end, sorted_row.size - 1)


KS_STRIDE = 64  # coarse pass over every 64th distinct reference value, then only where the max can hide


def _ks_counts(values: np.ndarray, runs: np.ndarray | None, k: np.ndarray, cur: np.ndarray):
    """Reference and current counts ≤ (right) and < (left) the distinct reference values values[k]."""
    right_ref = k + 1 if runs is None else runs[k] + 1
    left_ref = k if runs is None else np.where(k > 0, runs[np.maximum(k - 1, 0)] + 1, 0)
    return (right_ref, left_ref, np.searchsorted(cur, values[k], side="right"),
            np.searchsorted(cur, values[k], side="left"))


def _ks_max(counts, n: int, m: int) -> float:
    right_ref, left_ref, right_cur, left_cur = counts
    return max(np.max(np.abs(right_ref / n - right_cur / m)), np.max(np.abs(left_ref / n - left_cur / m)))


def _ks_against_reference(ref: np.ndarray, runs: np.ndarray | None, cur: np.ndarray) -> float:
    """Two-sample KS statistic of sorted valid reference values against sorted valid current ones.

    Both ECDFs are right-continuous steps. Between two neighbouring distinct reference values
    u_k < u_{k+1} the reference ECDF is flat while the current one rises, so |F_ref − F_cur|
    peaks at an end: at u_k (right limits) or just before u_{k+1} (left limits, reached at the
    last current value below u_{k+1}). So only the distinct reference values are searched in
    the current sample, and the differences are the same floats scipy's ks_2samp takes the
    maximum of (count / size on each side).

    Most of those searches are skipped, exactly: a coarse pass on every KS_STRIDE-th distinct
    value gives a lower bound of the maximum, and between two coarse points every difference
    is bounded by the counts at the ends (both ECDFs are monotone, and so are the rounded
    divisions and subtractions), so only stretches whose bound beats the lower bound are
    searched in full — near the peak, a few thousand values instead of all of them.
    """
    n, m = ref.size, cur.size
    values = ref if runs is None else ref[runs]
    distinct = values.size
    if distinct <= 4 * KS_STRIDE:
        return float(_ks_max(_ks_counts(values, runs, np.arange(distinct), cur), n, m))
    coarse = np.arange(0, distinct, KS_STRIDE)
    if coarse[-1] != distinct - 1:
        coarse = np.append(coarse, distinct - 1)
    counts = _ks_counts(values, runs, coarse, cur)
    lower_bound = _ks_max(counts, n, m)
    right_ref, left_ref, right_cur, left_cur = counts
    # inside (coarse[i], coarse[i+1]) the counts lie between those at the two ends
    above = right_ref[1:] / n - left_cur[:-1] / m
    below = right_cur[1:] / m - left_ref[:-1] / n
    open_stretch = np.flatnonzero((np.maximum(above, below) > lower_bound) & (np.diff(coarse) > 1))
    if open_stretch.size == 0:
        return float(lower_bound)
    starts, stops = coarse[open_stretch] + 1, coarse[open_stretch + 1]
    lengths = stops - starts
    inside = np.repeat(starts - np.cumsum(np.concatenate(([0], lengths[:-1]))), lengths) + np.arange(lengths.sum())
    return float(max(lower_bound, _ks_max(_ks_counts(values, runs, inside, cur), n, m)))


def _wasserstein_sorted(ref: np.ndarray, cur: np.ndarray) -> float:
    """W1 between two sorted samples as the area between their quantile functions.

    Equal sizes: the mean absolute difference of order statistics. Otherwise the quantile
    functions step at i/n and j/m; on integers T = t·n·m the union of the two grids is merged
    by position (both are arithmetic), with no sort and no search.
    """
    n, m = ref.size, cur.size
    if n == m:
        with np.errstate(invalid="ignore"):
            return float(np.mean(np.abs(ref - cur)))
    grid_ref = np.arange(1, n + 1, dtype=np.int64) * m
    grid_cur = np.arange(1, m + 1, dtype=np.int64) * n
    merged = np.empty(n + m, dtype=np.int64)
    # reference step i goes after the current steps strictly below it; ties sit side by side
    merged[np.arange(n) + (grid_ref - 1) // n] = grid_ref
    merged[np.arange(m) + grid_cur // m] = grid_cur
    widths = np.diff(merged, prepend=0)
    with np.errstate(invalid="ignore"):  # ±inf on both sides: NaN, as scipy gives
        gap = np.abs(ref[(merged - 1) // m] - cur[(merged - 1) // n])
        area = np.dot(np.where(widths > 0, gap, 0.0), widths.astype(np.float64))
    return float(area / (n * m))


def _numeric_block(prof: ReferenceProfile, columns: np.ndarray, current: list[np.ndarray]) -> dict[str, np.ndarray]:
    """KS, Wasserstein and PSI bin counts for a block of columns.

    Per column only whole-sample numpy kernels run (one sort of the current values, one search
    of the cached distinct reference values in them); the reference side comes sorted from
    the profile. np.sort and np.searchsorted release the GIL, so blocks run on threads.
    """
    k = len(current)
    edges = prof.edges[columns]
    ks, wasserstein = np.full(k, np.nan), np.full(k, np.nan)
    cur_valid = np.zeros(k, dtype=np.int64)
    cur_bins = np.zeros((k, edges.shape[1] + 1), dtype=np.int64)
    m_rows = np.zeros(k, dtype=np.int64)
    for j in range(k):
        cur = np.sort(current[j])  # −inf first, then +inf, NaN last
        m_rows[j] = cur.size
        # ±inf counts as missing, as in the reference profile
        lo, m = int(np.searchsorted(cur, -np.inf, side="right")), int(np.searchsorted(cur, np.inf, side="left"))
        cur = cur[lo:m]
        m = cur.size
        ref = prof.sorted_values[columns[j], :prof.valid[columns[j]]]  # a view: the cache is not copied
        cur_valid[j] = m
        cur_bins[j] = _bin_counts(cur, edges[j])
        if m and ref.size:
            ks[j] = _ks_against_reference(ref, prof.runs[columns[j]], cur)
            wasserstein[j] = _wasserstein_sorted(ref, cur)
    return {"ks": ks, "wasserstein": wasserstein, "cur_valid": cur_valid, "cur_bins": cur_bins,
            "cur_missing": m_rows - cur_valid}


# -- the report ----------------------------------------------------------------------------------


def drift_report(reference: Any, current: Any, *, kinds: Mapping[str, str] | None = None, alpha: float = 0.05,
                 share_threshold: float = 0.5, threads: int = 2, source_reference: str = "reference",
                 source_current: str = "current") -> DriftReport:
    """Drift of `current` against `reference`, every column at once.

    reference: a mapping column -> 1-D array, a DataFrame, or a ReferenceProfile from
        `profile(reference)` (build it once to compare many current batches with one reference).
    current: a mapping column -> 1-D array or a DataFrame; columns missing here are critical,
        extra ones are listed in `new_columns`.
    kinds: column -> "numeric" | "categorical" to override the inference (numbers are numeric
        unless they have ≤ 10 distinct reference values; everything else is categorical).
        A column declared numeric that holds text raises BadInputError naming it.
    alpha: false-discovery rate across columns (Benjamini–Hochberg).
    share_threshold: the share of drifted columns at which the dataset drifts.
    threads: numpy work is split in blocks of columns over this many threads.
    """
    prof = reference if isinstance(reference, ReferenceProfile) else profile(reference, kinds=kinds, threads=threads,
                                                                               source=source_reference)
    cur = _as_columns(current, source_current)
    m_rows = next(iter(cur.values())).shape[0] if cur else 0
    missing_cols = [c for c in prof.numeric + prof.categorical if c not in cur]
    features: list[DriftFeature] = []
    p_values: list[float] = []
    effects: list[float] = []

    # the categorical counting (hashing, holds the GIL) overlaps the numeric blocks (sorting, releases it)
    cat = [c for c in prof.categorical if c in cur]
    counted: dict[str, Any] = {}

    def counting():
        counted["labels"], counted["counts"] = _category_counts([np.asarray(cur[c]) for c in cat])

    # numeric columns, in blocks over threads
    num = [c for c in prof.numeric if c in cur]
    if num:
        idx = np.array([prof.numeric.index(c) for c in num])
        current_columns = [_to_float(cur[c], c, source_current) for c in num]
        blocks = _blocks(len(num))
        parts = _run(lambda b: _numeric_block(prof, idx[b], current_columns[b]), blocks, threads, also=counting)
        res = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        ref_valid = prof.valid[idx]
        ref_missing = prof.rows - ref_valid
        ref_counts = np.column_stack([prof.bin_counts[idx], ref_missing])
        cur_counts = np.column_stack([res["cur_bins"], res["cur_missing"]])
        psi = stats.psi_from_counts(ref_counts, cur_counts)
        used_bins = np.count_nonzero((ref_counts + cur_counts) > 0, axis=1)
        p_psi = stats.psi_null_pvalue(psi, prof.rows, m_rows, used_bins)
        p_ks = stats.ks_pvalue(res["ks"], ref_valid, res["cur_valid"])
        large = np.minimum(ref_valid, res["cur_valid"]) >= LARGE_SAMPLE
        p_test = np.where(large, p_psi, p_ks)
        any_missing = (ref_missing + res["cur_missing"]) > 0
        p_miss = stats.two_proportion_pvalue(ref_missing, prof.rows, res["cur_missing"], m_rows)
        p_col = np.where(any_missing, np.minimum(1.0, 2 * np.fmin(p_test, p_miss)), p_test)
        with np.errstate(invalid="ignore", divide="ignore"):
            w_norm = res["wasserstein"] / np.where(prof.std[idx] > 0, prof.std[idx], np.nan)
        for i, name in enumerate(num):
            method = "psi" if large[i] else "ks"
            statistic = float(psi[i]) if large[i] else float(res["ks"][i])
            features.append(DriftFeature(name, "numeric", method, _num(statistic), _num(p_col[i]), "none", {
                "psi": _num(psi[i]), "psi_p_value": _num(p_psi[i]), "ks": _num(res["ks"][i]), "ks_p_value": _num(p_ks[i]),
                "wasserstein": _num(res["wasserstein"][i]), "wasserstein_norm": _num(w_norm[i]), "bins": int(used_bins[i]),
                "missing_rate_reference": float(ref_missing[i] / prof.rows) if prof.rows else 0.0,
                "missing_rate_current": float(res["cur_missing"][i] / m_rows) if m_rows else 0.0,
                "missing_p_value": _num(p_miss[i]) if any_missing[i] else None,
                "edges": [_num(e) for e in prof.edges[idx[i]]],
                "reference_bins": [int(x) for x in ref_counts[i]], "current_bins": [int(x) for x in cur_counts[i]]}))
            p_values.append(p_col[i])
            effects.append(psi[i])

    # categorical columns: one factorisation of the current side, aligned to the reference labels
    if cat:
        ci = [prof.categorical.index(c) for c in cat]
        if "labels" not in counted:
            counting()
        cur_labels, cur_counts_list = counted["labels"], counted["counts"]
        ref_rows, cur_rows, label_rows = [], [], []
        for j, i in enumerate(ci):  # align label lists (categories, not rows)
            ref_map = {lab: cnt for lab, cnt in zip(prof.categories[i], prof.category_counts[i])}
            cur_map = {lab: cnt for lab, cnt in zip(cur_labels[j], cur_counts_list[j])}
            labels = list(prof.categories[i]) + [lab for lab in cur_labels[j] if lab not in ref_map]
            label_rows.append(labels)
            ref_rows.append([ref_map.get(lab, 0) for lab in labels])
            cur_rows.append([cur_map.get(lab, 0) for lab in labels])
        width = max(len(r) for r in ref_rows)
        ref_m = np.array([r + [0] * (width - len(r)) for r in ref_rows], dtype=float)
        cur_m = np.array([r + [0] * (width - len(r)) for r in cur_rows], dtype=float)
        chi2, p_chi2, dof = stats.chi2_two_sample(ref_m, cur_m)
        psi = stats.psi_from_counts(ref_m, cur_m)
        js = stats.jensen_shannon(ref_m, cur_m)
        for j, name in enumerate(cat):
            labels = label_rows[j]
            unseen = [lab for lab in labels[len(prof.categories[ci[j]]):]]
            n_ref_missing = int(ref_m[j][labels.index(MISSING)]) if MISSING in labels else 0
            n_cur_missing = int(cur_m[j][labels.index(MISSING)]) if MISSING in labels else 0
            features.append(DriftFeature(name, "categorical", "chi2", _num(chi2[j]), _num(p_chi2[j]), "none", {
                "psi": _num(psi[j]), "jensen_shannon": _num(js[j]), "dof": int(dof[j]),
                "categories": [_jsonable(x) for x in labels[:50]],
                "reference_counts": [int(x) for x in ref_m[j][:len(labels)][:50]],
                "current_counts": [int(x) for x in cur_m[j][:len(labels)][:50]],
                "unseen_categories": [_jsonable(x) for x in unseen[:20]],
                "unseen_share": float(cur_m[j][len(prof.categories[ci[j]]):len(labels)].sum() / max(m_rows, 1)),
                "missing_rate_reference": n_ref_missing / prof.rows if prof.rows else 0.0,
                "missing_rate_current": n_cur_missing / m_rows if m_rows else 0.0}))
            p_values.append(p_chi2[j])
            effects.append(psi[j])

    # severity: an effect tier that counts only when significant after BH across columns
    adjusted = stats.benjamini_hochberg(p_values) if p_values else np.empty(0)
    tiers = stats.severity_tier(np.nan_to_num(np.asarray(effects, float), nan=0.0), PSI_WARNING, PSI_CRITICAL)
    for f, tier, q in zip(features, tiers, adjusted):
        significant = bool(np.isfinite(q) and q < alpha)
        f.severity = ("none", "warning", "critical")[int(tier)] if significant else "none"
        f.extra["p_adjusted"] = _num(q)
        f.extra["significant"] = significant
    for name in missing_cols:
        features.append(DriftFeature(name, prof.kinds.get(name, "numeric"), "missing-column", float("nan"), None,
                                     "critical", {"reason": "column absent from the current data"}))
    order = {n: i for i, n in enumerate(list(prof.kinds))}
    features.sort(key=lambda f: order.get(f.name, 0))
    drifted = sum(f.severity != "none" for f in features)
    share = drifted / len(features) if features else 0.0
    report = DriftReport(features, share, share >= share_threshold and drifted > 0, prof.rows, m_rows,
                         alpha=alpha, share_threshold=share_threshold)
    report.severity = ("critical" if report.dataset_drift or any(f.severity == "critical" for f in features)
                       else "warning" if any(f.severity == "warning" for f in features) else "none")
    report.new_columns = [c for c in cur if c not in prof.kinds]
    return report


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # "inf": JSON has no infinities
    return x if isinstance(x, (str, int, float, bool)) or x is None else str(x)


# -- the workspace: a version's training data against production's -------------------------------


def _dataset_columns(ws, ref: str, model: str = "", version: str = "") -> dict[str, np.ndarray]:
    """A data set's columns through the data-source seam (path, s3://, name@version, mlflow:…)."""
    table = ws.load_table(ref, model=model or None, version=version or None)
    if table.rows == 0:
        raise BadInputError(f"{table.source}: no rows")
    return dict(table.data)


def training_data_ref(mv) -> str:
    """Where a version's training data can be read, from its lineage: data_uri, else a
    data_version that is mrc's name@version; "" when the lineage names nothing readable."""
    lineage = mv.lineage
    if lineage.data_uri:
        return lineage.data_uri
    if lineage.data_version and scheme_of(lineage.data_version) == "mrc":
        return lineage.data_version
    return ""


def version_drift(ws, model: str, version: str, *, record: bool = True) -> DriftReport:
    """Drift of the version's training data against production's (else models.X.reference_data).

    The report's `reference` and `current` name the data that was read."""
    check_name(model, "model")
    check_name(version, "version")
    registry = ws.registry()
    mv = registry.get_version(model, version)
    production = registry.get_pointers(model).get(PRODUCTION)
    base = registry.get_version(model, production) if production else None
    current = training_data_ref(mv)
    reference = training_data_ref(base) if base is not None else ""
    configured = ws.model_config(model).get("reference_data") or ""
    reference_from = production if reference else ""
    if not reference and configured:
        reference = configured
    if not current and not reference:
        raise BadInputError(
            f"{model}: no training data to compare: neither version {version} nor "
            f"{'production ' + production if production else 'a production version'} names readable data in its "
            f"lineage (data_uri, or data_version as name@version), and models.{model}.reference_data is not set")
    if not current:
        raise BadInputError(f"{model} version {version}: its lineage names no readable training data "
                            f"(data_uri, or data_version as name@version{', is ' + repr(mv.lineage.data_version) if mv.lineage.data_version else ''})")
    if not reference:
        raise BadInputError(f"{model}: no reference data for drift: production {production or '(none)'} names no "
                            f"readable training data and models.{model}.reference_data is not set")
    report = drift_report(_dataset_columns(ws, reference, model, reference_from or version),
                          _dataset_columns(ws, current, model, version),
                          source_reference=reference, source_current=current)
    report.reference = reference
    report.current = current
    report.model = model
    report.version = version
    report.baseline_version = reference_from
    if record:
        record_status(ws, model, report, version=version, baseline=reference_from)
    return report


def record_status(ws, model: str, report: DriftReport, *, version: str = "", baseline: str = "") -> Path:
    """Keep a version's last drift verdict under reports/<model>/drift-<version>.json (atomic
    replace): reviewing an old version never changes what the candidate shows."""
    version = version or report.version
    folder = _reports_dir(ws, model)
    folder.mkdir(parents=True, exist_ok=True)
    path = _status_path(ws, model, version)
    data = {"model": model, "version": version, "baseline_version": baseline, "severity": report.severity,
            "drift_share": report.drift_share, "at": now_iso(), "reference": report.reference,
            "current": report.current, "drifted": [f.name for f in report.features if f.severity != "none"]}
    tmp = folder / f".{path.name}.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
    return path
