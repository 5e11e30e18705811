"""Regression metrics and paired tests, in plain numpy (each metric as scikit-learn defines it).

Pure: arrays in, numbers and GateChecks out. tests/unit/evaluate compares every metric here
with scikit-learn's on the same arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from console.domain import GateCheck
from console.evaluate.stats import _normal_quantile

MAPE_EPS = np.finfo(np.float64).eps  # scikit-learn's floor of |y| in MAPE's denominator


def regression_metrics(y_true, y_pred, prefix: str = "") -> dict[str, float]:
    """rmse, mse, mae, r2, mape (a fraction, as scikit-learn's), max_residual (max |error|),
    mean_residual (prediction − truth: the bias), median_absolute_error."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    n = y.size
    if n == 0:
        nan = float("nan")
        return {f"{prefix}{k}": nan for k in ("rmse", "mse", "mae", "r2", "mape", "max_residual", "mean_residual",
                                              "median_absolute_error")}
    err = p - y
    abs_err = np.abs(err)
    mse = float(np.sum(err * err) / n)  # not np.dot: BLAS threads stall on a busy machine
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = mse * n
    if ss_tot == 0.0:  # scikit-learn's force_finite: a constant truth scores 1 when matched, else 0
        r2 = 1.0 if ss_res == 0.0 else 0.0
    else:
        r2 = 1.0 - ss_res / ss_tot
    return {
        f"{prefix}rmse": math.sqrt(mse),
        f"{prefix}mse": mse,
        f"{prefix}mae": float(abs_err.mean()),
        f"{prefix}r2": r2,
        f"{prefix}mape": float(np.mean(abs_err / np.maximum(np.abs(y), MAPE_EPS))),
        f"{prefix}max_residual": float(abs_err.max()),
        f"{prefix}mean_residual": float(err.mean()),
        f"{prefix}median_absolute_error": float(np.median(abs_err)),
    }


def _t_quantile(q: float, df: int) -> float:
    if df > 1000:  # the normal quantile is within 0.1 % there, and scipy is not loaded for it

        return _normal_quantile(q)
    from scipy import stats as sps  # ~0.3 s: only for small samples

    return float(sps.t.ppf(q, df))


def paired_error_test(metric: str, y_true, candidate, baseline, *, alpha: float = 0.05) -> dict[str, float]:
    """Paired t-interval of the per-row improvement in loss (baseline's loss − candidate's).

    `mae` compares absolute errors, so the mean improvement *is* MAE(baseline) − MAE(candidate);
    `rmse` compares squared errors: the improvement in MSE (RMSE orders models the same way).
    Pairing the rows removes the between-row variance that two separate CIs would carry. The
    t-interval on the mean of n differences rests on the central limit theorem (fine from a
    few dozen rows; squared errors with heavy tails need more).
    """
    y = np.asarray(y_true, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64) - y
    b = np.asarray(baseline, dtype=np.float64) - y
    if metric == "mae":
        loss_c, loss_b = np.abs(c), np.abs(b)
    elif metric in ("rmse", "mse"):
        loss_c, loss_b = c * c, b * b
    else:
        raise ValueError(f"no paired error test for {metric!r}")
    d = loss_b - loss_c
    n = d.size
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        return {"improvement": mean, "ci_low": float("nan"), "ci_high": float("nan"), "n": n,
                "baseline_loss": float(loss_b.mean()) if n else float("nan"), "p_value": float("nan")}
    se = float(d.std(ddof=1)) / math.sqrt(n)
    t = _t_quantile(1 - alpha / 2, n - 1)
    if se == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
    else:
        p = math.erfc(abs(mean / se) / math.sqrt(2.0))  # two-sided, normal approximation
    return {"improvement": mean, "ci_low": mean - t * se, "ci_high": mean + t * se, "n": n,
            "baseline_loss": float(loss_b.mean()), "p_value": p}


def significance_checks(cfg: dict[str, Any], y_true, candidate, baseline) -> list[GateCheck]:
    """The policy's significance section on a regression: a paired test per error metric.

    `margin` is a fraction of the baseline's loss (MAE, or MSE for rmse): errors carry the
    target's units, so an absolute margin of 0.01 means nothing for prices in dollars.
    """
    out = []
    alpha, margin, require = cfg["alpha"], cfg["margin"], cfg["require"]
    for metric in cfg["metrics"]:
        test = paired_error_test(metric, y_true, candidate, baseline, alpha=alpha)
        scale = test["baseline_loss"]
        allowed = margin * scale
        lo, hi, gain = test["ci_low"], test["ci_high"], test["improvement"]
        loss = "absolute" if metric == "mae" else "squared"
        extra = {"improvement_ci": [lo, hi], "alpha": alpha, "margin": margin, "margin_abs": allowed,
                 "require": require, "n": test["n"], "method": f"paired-t on {loss} errors", "p_value": test["p_value"]}
        if not math.isfinite(lo):
            out.append(GateCheck(f"significance_{metric}", "significance", True, None, -allowed, scale,
                                 f"{metric}: fewer than 2 paired rows: not tested", {**extra, "skipped": True}))
            continue
        if require == "superior":
            passed, why = lo > 0, "needs the CI above 0"
        elif require == "non_inferior":
            passed, why = lo > -allowed, f"non-inferiority needs the CI's lower end above −{margin:g}×baseline"
        else:
            passed, why = hi >= -allowed, f"fails only if the CI lies wholly below −{margin:g}×baseline"
        if not passed:
            why = {"superior": "no significant improvement",
                   "non_inferior": f"non-inferiority within −{margin:g}×baseline not shown",
                   "not_worse": f"significantly worse: the CI lies wholly below −{margin:g}×baseline"}[require]
        what = "MAE" if metric == "mae" else "MSE"
        out.append(GateCheck(f"significance_{metric}", "significance", bool(passed), gain, -allowed, scale,
                             f"{what} {'gain' if gain >= 0 else 'loss'} {gain:+.4g} on {test['n']} paired rows "
                             f"({loss} errors), {(1 - alpha) * 100:.0f}% CI [{lo:+.4g}, {hi:+.4g}]: {why}", extra))
    return out


def sanity_check(limit: float, candidate, baseline, y_true, reference_name: str) -> list[GateCheck]:
    """Mean |Δ prediction| against production, as a fraction of the truth's spread (std of y):
    a fixed 0.1 means nothing in the target's own units."""
    c, b = np.asarray(candidate, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    diff = np.abs(c - b)
    spread = float(np.std(np.asarray(y_true, dtype=np.float64))) if diff.size else 0.0
    mean = float(diff.mean()) if diff.size else 0.0
    value = mean / spread if spread > 0 else (0.0 if mean == 0 else float("inf"))
    passed = bool(value <= limit) if math.isfinite(value) else False
    return [GateCheck("sanity_prediction_shift", "sanity", passed, value, limit, 0.0,
                      f"mean |Δ prediction| vs production on the {reference_name} set ({diff.size} rows) is "
                      f"{mean:.4g} = {value:.4g} × std(y) ({'within' if passed else 'over'} {limit:g})",
                      {"mean_abs_diff": mean, "y_std": spread, "max_abs_diff": float(diff.max()) if diff.size else 0.0,
                       "rows": int(diff.size)})]


def residuals_by_group(y_true, y_pred, codes: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """Per group: rows, MAE, RMSE and mean residual (the review's residuals-by-slice plot)."""
    err = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    k = len(names)
    rows = np.bincount(codes, minlength=k).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = np.bincount(codes, weights=np.abs(err), minlength=k) / rows
        rmse = np.sqrt(np.bincount(codes, weights=err * err, minlength=k) / rows)
        bias = np.bincount(codes, weights=err, minlength=k) / rows
    return {name: {"rows": int(rows[g]), "mae": float(mae[g]), "rmse": float(rmse[g]), "mean_residual": float(bias[g])}
            for g, name in enumerate(names)}
