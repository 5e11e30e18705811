"""Evaluation gates: one engine behind `mrc gate`, `mrc approve` and the console.

Policy format. The seed's gate_config.json is accepted exactly as written, with its semantics:

- ``metric_directions``: metric -> "higher" | "lower" (every gated metric needs one);
- ``hard_gates``: metric -> threshold; higher passes when value >= threshold, lower when <=;
- ``relative_gates``: metric -> tolerance; regression = (baseline − candidate)/baseline for
  higher (candidate − baseline)/baseline for lower; passes when regression < tolerance
  (strictly). Where the baseline is ≤ 0 (or ~0) the regression is the absolute difference and
  the tolerance an absolute amount (the seed divided anyway, or returned 0 for a 0 baseline);
  the check's detail and ``extra.mode`` say which;
- ``max_p99_latency_ms`` / ``max_model_size_mb``: pass when candidate value <= max; checked
  only when the candidate has ``p99_latency_ms`` / ``model_size_mb`` (as the seed does);
- the verdict is the AND of all checks.

Extensions (all optional; see assets/gate_policy_full.json):

- ``threshold``: the score cut-off for class predictions (0.5);
- ``slices``: {column, metrics, tolerance, k, bins, min_rows, alpha, n_boot, seed}: a slice
  fails when it drops, in the metric's direction, more than k × tolerance (absolute) from the
  baseline's value on the same rows (004) *and* the drop is significant (paired-bootstrap CI
  at alpha / number of slice checks); metrics files carry no rows, so there the tolerance
  alone decides;
- ``fairness``: {sensitive_column, bins, max_demographic_parity_diff,
  max_equal_opportunity_diff, min_group_size}: differences between the best and worst group
  among groups of at least min_group_size (30) rows (positives, for the true-positive rate);
  smaller groups are reported too small, not judged; missing values are a group "missing";
- ``significance``: {alpha, margin, n_boot, seed, metrics, require}: paired tests of candidate
  vs baseline on the same rows; accuracy by McNemar plus a paired-bootstrap CI, other metrics
  by a paired-bootstrap CI of the difference. ``require``:
  "non_inferior" passes when the CI's lower end > −margin (002), "superior" when it is > 0
  (and McNemar p < alpha for accuracy), "not_worse" fails only when the candidate is
  significantly worse by more than the margin (CI's upper end < −margin);
- ``robustness``: {extreme_value, nan_policy, require_all_classes}: runs the model (003);
- ``sanity``: {max_mean_abs_score_diff, reference}: mean |Δ score| against the previous model
  on a fixed reference set (002).

When a registry version is evaluated and the policy leaves out significance, robustness or
sanity, the defaults in DEFAULT_VERSION_CHECKS apply (they need predictions, which only that
mode has); metrics files are judged by exactly what the policy says.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from backends.base import PRODUCTION, BadInputError, check_name
from backends.native.metrics import classification_metrics
from console import plugins
from console.assets import asset_path
from console.domain import GateCheck, GateReport
from console.evaluate.stats import BOOTSTRAP_METRICS, mcnemar, metric_value, paired_bootstrap
from console.evaluate.tasks import with_seed_names

SEED_KEYS = ("metric_directions", "hard_gates", "relative_gates", "max_p99_latency_ms", "max_model_size_mb")
EXTENSION_KEYS = ("threshold", "slices", "fairness", "significance", "robustness", "sanity", "description")
DIRECTIONS = ("higher", "lower")

DEFAULT_VERSION_CHECKS: dict[str, dict[str, Any]] = {
    # "not_worse": training is noisy and test sets are small; fail only on a significant loss
    "significance": {"alpha": 0.05, "margin": 0.01, "n_boot": 2000, "seed": 0,
                     "metrics": ["accuracy", "auc_roc", "f1"], "require": "not_worse"},
    "robustness": {"extreme_value": 1e6, "nan_policy": "isolate", "require_all_classes": True},
    "sanity": {"max_mean_abs_score_diff": 0.1, "reference": "golden"},
}


@dataclass
class GatePolicy:
    source: str
    metric_directions: dict[str, str]
    hard_gates: dict[str, float]
    relative_gates: dict[str, float]
    max_p99_latency_ms: float | None = None
    max_model_size_mb: float | None = None
    threshold: float = 0.5
    slices: dict[str, Any] | None = None
    fairness: dict[str, Any] | None = None
    significance: dict[str, Any] | None = None
    robustness: dict[str, Any] | None = None
    sanity: dict[str, Any] | None = None
    sha256: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def with_version_defaults(self) -> "GatePolicy":
        out = GatePolicy(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        for key, default in DEFAULT_VERSION_CHECKS.items():
            if key not in self.raw:
                setattr(out, key, _validate_section(key, dict(default), "built-in defaults"))
        return out


# -- loading and validating ---------------------------------------------------------------------


def _number(value: Any, where: str, *, minimum: float | None = None, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"{where}: must be a number, not {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise BadInputError(f"{where}: must be a finite number, not {value!r}")
    if minimum is not None and v < minimum:
        raise BadInputError(f"{where}: must be >= {minimum}, not {value!r}")
    if positive and v <= 0:
        raise BadInputError(f"{where}: must be > 0, not {value!r}")
    return v


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInputError(f"{where}: must be a JSON object, not {type(value).__name__}")
    return value


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise BadInputError(f"{p}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{p}: cannot read {what} ({getattr(exc, 'strerror', None) or exc})") from None
    if not text.strip():
        raise BadInputError(f"{p}: empty file")
    try:
        data = json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
        where = _first_non_finite(data)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except _JsonNumberError as exc:
        raise BadInputError(f"{p}: {exc}") from None
    except RecursionError:
        raise BadInputError(f"{p}: {what} nested too deeply") from None
    if where is not None:  # NaN / Infinity: JSON has none; name the field that holds one
        field_name, value = where
        raise BadInputError(f"{p}: {field_name or '(top level)'}: {value} is not a number JSON allows "
                            "(give a finite number)")
    return data


class _NonFinite(float):
    """NaN or ±Infinity as written in the file, kept until the field holding it is known."""

    def __new__(cls, name: str):
        value = super().__new__(cls, name)
        value.name = name
        return value


def _first_non_finite(obj: Any, path: str = "") -> tuple[str, str] | None:
    if isinstance(obj, _NonFinite):
        return path, obj.name
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = ((f"[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for key, value in items:
        name = key if str(key).startswith("[") else (f"{path}.{key}" if path else str(key))
        found = _first_non_finite(value, f"{path}{key}" if str(key).startswith("[") else name)
        if found is not None:
            return found
    return None


class _JsonNumberError(ValueError):
    pass


def _json_int(text: str) -> int:
    # a float holds at most ~309 digits; longer integers only overflow later, as a traceback
    if len(text.lstrip("-")) > 300:
        raise _JsonNumberError(f"an integer of {len(text)} digits is out of range")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JsonNumberError(f"number {text[:40]} is out of range")
    return value


def _json_constant(name: str) -> float:
    return _NonFinite(name)


def default_policy_path() -> Path:
    return asset_path("gate_policy.json")


def load_policy(path: str | os.PathLike | None = None) -> GatePolicy:
    p = Path(path) if path else default_policy_path()
    data = read_json(p, "gate policy")
    policy = parse_policy(data, str(p))
    policy.sha256 = hashlib.sha256(p.read_bytes()).hexdigest()
    return policy


def parse_policy(data: Any, source: str = "policy") -> GatePolicy:
    data = _table(data, source)
    unknown = sorted(set(data) - set(SEED_KEYS) - set(EXTENSION_KEYS))
    if unknown:
        raise BadInputError(f"{source}: {unknown[0]}: unknown key (known: {', '.join(SEED_KEYS + EXTENSION_KEYS)})")
    directions = _table(data.get("metric_directions", {}), f"{source}: metric_directions")
    for metric, direction in directions.items():
        if direction not in DIRECTIONS:
            raise BadInputError(f"{source}: metric_directions.{metric}: unknown direction {direction!r} (higher or lower)")
    hard = {m: _number(v, f"{source}: hard_gates.{m}")
            for m, v in _table(data.get("hard_gates", {}), f"{source}: hard_gates").items()}
    relative = {m: _number(v, f"{source}: relative_gates.{m}", minimum=0.0)
                for m, v in _table(data.get("relative_gates", {}), f"{source}: relative_gates").items()}
    for section, gates in (("hard_gates", hard), ("relative_gates", relative)):
        for metric in gates:
            if metric not in directions:
                raise BadInputError(f"{source}: {section}.{metric}: no direction in metric_directions")
    policy = GatePolicy(source, dict(directions), hard, relative)
    for key in ("max_p99_latency_ms", "max_model_size_mb"):
        if key in data:
            setattr(policy, key, _number(data[key], f"{source}: {key}", minimum=0.0))
    if "threshold" in data:
        policy.threshold = _number(data["threshold"], f"{source}: threshold", minimum=0.0)
        if policy.threshold > 1:
            raise BadInputError(f"{source}: threshold: must be within [0, 1], not {data['threshold']!r}")
    for key in ("slices", "fairness", "significance", "robustness", "sanity"):
        if key in data and data[key] is not False and data[key] is not None:
            setattr(policy, key, _validate_section(key, _table(data[key], f"{source}: {key}"), source))
    policy.raw = data
    policy.sha256 = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return policy


def _validate_section(key: str, section: dict[str, Any], source: str) -> dict[str, Any]:
    where = f"{source}: {key}"
    out = dict(section)

    def num(name, default, **kw):
        if name in section:
            out[name] = _number(section[name], f"{where}.{name}", **kw)
        else:
            out[name] = default

    def metrics_list(default):
        value = section.get("metrics", default)
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            raise BadInputError(f"{where}.metrics: must be a list of metric names")
        out["metrics"] = value

    def column(name, required=True):
        value = section.get(name)
        if value is None and not required:
            return
        if not isinstance(value, str) or not value:
            raise BadInputError(f"{where}.{name}: must name a column")

    if key == "slices":
        column("column")
        metrics_list(["accuracy"])
        num("tolerance", 0.02, minimum=0.0)
        num("k", 2.0, minimum=0.0)
        num("min_rows", 20, minimum=1)
        num("bins", 4, minimum=2)
        num("alpha", 0.05, positive=True)  # family-wise over the slice checks
        num("n_boot", 1000, minimum=100)
        num("seed", 0, minimum=0)
        if out["alpha"] >= 1:
            raise BadInputError(f"{where}.alpha: must be within (0, 1)")
    elif key == "fairness":
        column("sensitive_column")
        num("bins", 2, minimum=2)
        num("max_demographic_parity_diff", 0.2, minimum=0.0)
        num("max_equal_opportunity_diff", 0.2, minimum=0.0)
        num("min_group_size", 30, minimum=1)
        num("alpha", 0.05, positive=True)  # the gap's interval, simultaneous over group pairs
        num("power", 0.8, positive=True)  # what the stated minimum group size is derived for
        if out["alpha"] >= 1 or out["power"] >= 1:
            raise BadInputError(f"{where}: alpha and power must be within (0, 1)")
    elif key == "significance":
        num("alpha", 0.05, positive=True)
        num("margin", 0.01, minimum=0.0)
        num("n_boot", 2000, minimum=100)
        num("seed", 0, minimum=0)
        metrics_list(["accuracy", "auc_roc", "f1"])

        for m in out["metrics"]:
            if m not in BOOTSTRAP_METRICS:
                raise BadInputError(f"{where}.metrics: no paired test for {m!r} (known: {', '.join(BOOTSTRAP_METRICS)})")
        require = section.get("require", "non_inferior")
        if require not in ("non_inferior", "superior", "not_worse"):
            raise BadInputError(f"{where}.require: {require!r} is not one of non_inferior, superior, not_worse")
        out["require"] = require
        if out["alpha"] >= 1:
            raise BadInputError(f"{where}.alpha: must be within (0, 1)")
    elif key == "robustness":
        num("extreme_value", 1e6, positive=True)
        policy = section.get("nan_policy", "isolate")
        if policy not in ("isolate", "finite"):
            raise BadInputError(f"{where}.nan_policy: {policy!r} is not one of isolate, finite")
        out["nan_policy"] = policy
        out["require_all_classes"] = bool(section.get("require_all_classes", True))
    elif key == "sanity":
        num("max_mean_abs_score_diff", 0.1, minimum=0.0)
        ref = section.get("reference", "golden")
        if ref not in ("golden", "test"):
            raise BadInputError(f"{where}.reference: {ref!r} is not one of golden, test")
        out["reference"] = ref
    return out


# -- the seed's checks on metrics --------------------------------------------------------------


def _metric(metrics: Mapping[str, Any], metric: str, source: str, needed_by: str) -> float:
    if metric not in metrics:
        raise BadInputError(f"{source}: {metric}: missing (needed by {needed_by})")
    value = metrics[metric]
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"{source}: {metric}: must be a number, not {type(value).__name__} {value!r}")
    return float(value)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    return f"{x:.4g}"


RELATIVE_FLOOR = 1e-9  # a baseline at or below this has no scale to be relative to


def relative_regression(value: float, base: float, direction: str) -> tuple[float, str]:
    """How much worse the candidate is, positive = worse: (regression, "relative" | "absolute").

    Relative to the baseline when it is positive (the seed's formula); a baseline ≤ 0 or ~0
    (R², a log-likelihood, a zero error rate) has no scale, and dividing by it flips the sign
    or blows up (R² −0.1 → −0.9 read as a 800 % *gain*; the seed returned 0 for a 0 baseline
    and passed anything), so the regression is then the absolute difference.
    """
    worse = base - value if direction == "higher" else value - base
    if math.isfinite(base) and base > RELATIVE_FLOOR:
        return worse / base, "relative"
    return worse, "absolute"


def seed_checks(policy: GatePolicy, candidate: Mapping[str, Any], baseline: Mapping[str, Any] | None, *,
                candidate_source: str = "candidate metrics", baseline_source: str = "baseline metrics") -> list[GateCheck]:
    """Hard, relative, latency and size gates: the seed's algorithm, each check explained."""
    checks: list[GateCheck] = []
    for metric, threshold in policy.hard_gates.items():
        direction = policy.metric_directions[metric]
        value = _metric(candidate, metric, candidate_source, f"hard_gates.{metric} in {policy.source}")
        passed = value >= threshold if direction == "higher" else value <= threshold
        op = ">=" if direction == "higher" else "<="
        checks.append(GateCheck(
            f"hard_gate_{metric}", "hard", bool(passed), value, threshold, None,
            f"{metric} {_fmt(value)} {'meets' if passed else 'misses'} the hard gate {op} {_fmt(threshold)}",
            {"direction": direction}))
    for metric, tolerance in policy.relative_gates.items():
        direction = policy.metric_directions[metric]
        value = _metric(candidate, metric, candidate_source, f"relative_gates.{metric} in {policy.source}")
        if baseline is None:
            checks.append(GateCheck(f"relative_gate_{metric}", "relative", True, value, tolerance, None,
                                    f"{metric}: no production baseline to compare with: skipped",
                                    {"skipped": True, "direction": direction}))
            continue
        base = _metric(baseline, metric, baseline_source, f"relative_gates.{metric} in {policy.source}")
        regression, mode = relative_regression(value, base, direction)
        passed = regression < tolerance  # NaN fails
        if mode == "relative":
            change = (f"{'regression' if regression > 0 else 'change'} {regression * 100:+.2f}% "
                      f"{'within' if passed else 'beyond'} tolerance {tolerance * 100:.2f}%")
        else:
            change = (f"{'regression' if regression > 0 else 'change'} {regression:+.4g} (absolute: a baseline ≤ 0 "
                      f"has no relative scale) {'within' if passed else 'beyond'} tolerance {tolerance:g}")
        checks.append(GateCheck(
            f"relative_gate_{metric}", "relative", bool(passed), value, tolerance, base,
            f"{metric} {_fmt(value)} vs production {_fmt(base)}: {change}",
            {"direction": direction, "regression": regression, "mode": mode,
             "regression_pct": round(regression * 100, 2) if math.isfinite(regression) else None,
             "tolerance_pct": round(tolerance * 100, 2)}))
    for key, metric, kind, unit in (("max_p99_latency_ms", "p99_latency_ms", "latency", "ms"),
                                    ("max_model_size_mb", "model_size_mb", "size", "MB")):
        limit = getattr(policy, key)
        if limit is None:
            continue
        name = "latency_gate" if kind == "latency" else "size_gate"
        if metric not in candidate:
            checks.append(GateCheck(name, kind, True, None, limit, None,
                                    f"candidate has no {metric}: not checked (as in the seed policy)", {"skipped": True}))
            continue
        value = _metric(candidate, metric, candidate_source, f"{key} in {policy.source}")
        base = None
        if baseline is not None and metric in baseline:
            base = _metric(baseline, metric, baseline_source, key)
        passed = value <= limit
        checks.append(GateCheck(name, kind, bool(passed), value, limit, base,
                                f"{metric} {_fmt(value)} {unit} {'within' if passed else 'over'} the limit {_fmt(limit)} {unit}"))
    return checks


# -- checks on paired predictions ----------------------------------------------------------------


@dataclass
class PairedPredictions:
    """Labels and both models' scores on the same rows, plus any slice/sensitive columns."""

    y_true: np.ndarray
    candidate: np.ndarray
    baseline: np.ndarray | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "predictions"


MISSING_GROUP = "missing"


def _missing_mask(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "fc":
        return np.isnan(arr)
    if arr.dtype.kind in "iub" or arr.size == 0:
        return np.zeros(arr.shape, dtype=bool)
    # object columns (a CSV's text): None and NaN are missing; v != v only for NaN
    return np.frompyfunc(lambda v: v is None or v != v, 1, 1)(arr).astype(bool)


def _groups(values: np.ndarray, bins: int) -> tuple[np.ndarray, list[str]]:
    """Group labels of a slice column: categories as they are, numbers in quantile bins.

    Missing values (NaN, None) form one explicit group named "missing", last: they were a
    quantile bin's worth of NaN edges, or a category called "nan".
    """
    arr = np.asarray(values)
    missing = _missing_mask(arr)
    present = arr[~missing]
    codes = np.zeros(arr.shape, dtype=np.int64)
    names: list[str] | None = None
    if arr.dtype.kind in "fiu":
        x = present.astype(float)
        if np.unique(x).size > bins:
            edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
            codes[~missing] = np.searchsorted(edges, x, side="right")
            lows = np.concatenate([[-np.inf], edges])
            highs = np.concatenate([edges, [np.inf]])
            names = [f"[{_fmt(lo)}, {_fmt(hi)})" for lo, hi in zip(lows, highs)]
    if names is None:
        labels, inverse = np.unique(present.astype(str), return_inverse=True)
        codes[~missing] = inverse.reshape(-1)
        names = [str(x) for x in labels]
    if missing.any():
        codes[missing] = len(names)
        names.append(MISSING_GROUP)
    return codes, names


LOWER_IS_BETTER = ("rmse", "mae", "mse", "log_loss", "brier")


def _direction(policy: GatePolicy, metric: str) -> str:
    """The policy's direction for a metric, else the metric's nature (errors and losses: lower)."""
    return policy.metric_directions.get(metric) or ("lower" if metric in LOWER_IS_BETTER else "higher")


def slice_checks(policy: GatePolicy, data: PairedPredictions) -> list[GateCheck]:
    """Each slice's metric against the baseline's on the same rows, judged with its uncertainty.

    A slice fails when its drop is both practically large (beyond k × tolerance, in the
    metric's direction) and significant: the paired-bootstrap CI of the improvement lies wholly
    below 0 at level alpha / (number of slice checks) (Bonferroni, so equal models fail at most
    ~alpha of the time over all slices together). The fixed drop alone failed two equally good
    models 64 % of the time on 200 rows: a 50-row slice's accuracy moves by ±0.08 by chance.
    """
    cfg = policy.slices
    if not cfg:
        return []

    column = cfg["column"]
    if column not in data.columns:
        raise BadInputError(f"{data.source}: {column}: no such column (named by slices.column in {policy.source})")
    codes, names = _groups(data.columns[column], int(cfg["bins"]))
    max_drop = cfg["k"] * cfg["tolerance"]
    judged = [(metric, g, name, codes == g) for metric in cfg["metrics"] for g, name in enumerate(names)]
    judged = [j for j in judged if int(j[3].sum()) >= cfg["min_rows"]]
    paired = data.baseline is not None
    level = cfg["alpha"] / max(1, len(judged)) if paired else cfg["alpha"]
    checks = []
    for metric, g, name, rows in judged:
        n = int(rows.sum())
        direction = _direction(policy, metric)
        sign = 1.0 if direction == "higher" else -1.0
        value = metric_value(metric, data.y_true[rows], data.candidate[rows], policy.threshold)
        base = None if not paired else metric_value(metric, data.y_true[rows], data.baseline[rows], policy.threshold)
        extra: dict[str, Any] = {"slice": name, "column": column, "rows": n, "metric": metric, "max_drop": max_drop,
                                 "direction": direction}
        if base is None or not math.isfinite(base):
            passed = True
            detail = f"slice {column}={name} ({n} rows): {metric} {_fmt(value)}, no baseline on this slice"
            threshold = None
        else:
            boot = paired_bootstrap(metric, data.y_true[rows], data.candidate[rows], data.baseline[rows],
                                    n_boot=int(cfg["n_boot"]), alpha=level, seed=int(cfg["seed"]),
                                    threshold=policy.threshold)
            drop = sign * (base - value)  # positive = the candidate is worse on this slice
            lo, hi = sorted((-sign * boot["ci_low"], -sign * boot["ci_high"]))  # CI of the drop
            significant = bool(math.isfinite(lo) and lo > 0)
            beyond = bool(drop > max_drop) if math.isfinite(drop) else True
            passed = not (significant and beyond) and math.isfinite(value)
            threshold = base - sign * max_drop
            # The smallest drop this slice could show with 80 % power: the interval's standard error
            # times (z of the test + z of the power). Above the allowed drop, a pass means nothing.
            z_test = _z(1 - level / 2)
            se = (hi - lo) / (2 * z_test) if math.isfinite(hi - lo) else math.inf
            detectable = max(max_drop, (z_test + _z(SLICE_POWER)) * se)
            # Decided: a significant drop beyond the allowance fails; a drop whose interval stays
            # within the allowance, or a slice large enough to have seen one, passes; else undecided.
            blind = bool(passed and not (math.isfinite(hi) and hi <= max_drop) and detectable > max_drop)
            if not math.isfinite(value):
                why = "the candidate's value is undefined"
            elif blind:
                why = (f"insufficient data: {n} rows can only show a drop of {_fmt(detectable)} or more "
                       f"({SLICE_POWER:.0%} power), the allowed drop is {_fmt(max_drop)}")
                passed = None
            elif significant and beyond:
                why = f"a significant drop beyond {cfg['k']:g}×{cfg['tolerance']:g}"
            elif beyond:
                why = f"beyond {cfg['k']:g}×{cfg['tolerance']:g} but within noise (the CI reaches 0)"
            elif significant:
                why = f"significant but within {cfg['k']:g}×{cfg['tolerance']:g}"
            else:
                why = f"within {cfg['k']:g}×{cfg['tolerance']:g}"
            detail = (f"slice {column}={name} ({n} rows): {metric} {_fmt(value)} vs production {_fmt(base)}; "
                      f"drop {_fmt(drop)}, {(1 - level) * 100:.4g}% CI [{_fmt(lo)}, {_fmt(hi)}]: {why}")
            extra.update({"drop": drop, "drop_ci": [lo, hi], "ci_level": 1 - level, "significant": significant,
                          "beyond_tolerance": beyond, "n_boot": boot["n_boot"],
                          "min_detectable_drop": detectable if math.isfinite(detectable) else None,
                          "insufficient_data": passed is None})
        checks.append(GateCheck(f"slice_{column}={name}_{metric}", "slice", None if passed is None else bool(passed),
                                value, threshold, base, detail, extra))
    return checks


SLICE_POWER = 0.8  # the power the smallest detectable drop of a slice is stated for


def _z(p: float) -> float:
    from statistics import NormalDist  # stdlib

    return NormalDist().inv_cdf(min(max(p, 1e-12), 1 - 1e-12))


def gap_interval(successes: np.ndarray, counts: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """(gap, lower, upper) of the best-minus-worst rate over groups, with Wald intervals of every
    pair's difference, Bonferroni over the pairs (so the bounds hold for the gap simultaneously);
    rates smoothed by half a count in the variance, so 0/10 is not certainty."""
    rates = successes / counts
    smooth = (successes + 0.5) / (counts + 1.0)
    m = len(counts)
    pairs = max(1, m * (m - 1) // 2)
    z = _z(1 - alpha / pairs / 2)
    lower, upper = 0.0, 0.0
    for i in range(m):
        for j in range(i + 1, m):
            diff = abs(rates[i] - rates[j])
            se = math.sqrt(smooth[i] * (1 - smooth[i]) / counts[i] + smooth[j] * (1 - smooth[j]) / counts[j])
            lower, upper = max(lower, diff - z * se), max(upper, diff + z * se)
    return float(rates.max() - rates.min()), lower, upper


def power_group_size(rate: float, limit: float, alpha: float, power: float, groups: int) -> int:
    """Rows per group at which an interval on a gap of `limit` clears it with `power`."""
    p = min(0.95, max(0.05, rate))
    pairs = max(1, groups * (groups - 1) // 2)
    z = _z(1 - alpha / pairs / 2) + _z(power)
    return int(math.ceil(2 * p * (1 - p) * z * z / max(limit, 1e-6) ** 2))


def group_rates(y: np.ndarray, pred: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Positive-prediction rate and true-positive rate per group (NaN where undefined)."""
    size = np.bincount(codes, minlength=n_groups).astype(float)
    positive = np.bincount(codes, weights=pred.astype(float), minlength=n_groups)
    actual = np.bincount(codes, weights=y.astype(float), minlength=n_groups)
    hits = np.bincount(codes, weights=(pred & y).astype(float), minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(size > 0, positive / size, np.nan), np.where(actual > 0, hits / actual, np.nan)


def fairness_checks(policy: GatePolicy, data: PairedPredictions) -> list[GateCheck]:
    """Best-minus-worst group gaps in positive-prediction and true-positive rates.

    Only groups large enough to estimate a rate are judged: min_group_size rows for the
    positive-prediction rate, min_group_size positives for the true-positive rate (its
    denominator). Smaller groups are listed as too small, not compared: a 5-row group's rate
    moves by ±0.2 by chance alone. Missing values of the column are a group of their own.
    """
    cfg = policy.fairness
    if not cfg:
        return []
    column = cfg["sensitive_column"]
    if column not in data.columns:
        raise BadInputError(f"{data.source}: {column}: no such column (named by fairness.sensitive_column in {policy.source})")
    codes, names = _groups(data.columns[column], int(cfg["bins"]))
    y = data.y_true.astype(bool)
    min_size = int(cfg["min_group_size"])
    rows = np.bincount(codes, minlength=len(names))
    positives = np.bincount(codes, weights=y.astype(float), minlength=len(names)).astype(np.int64)

    def gap(rates: np.ndarray, eligible: np.ndarray) -> float:
        judged = rates[eligible & np.isfinite(rates)]
        return float(judged.max() - judged.min()) if judged.size >= 2 else float("nan")

    def rates_of(scores):
        return group_rates(y, scores >= policy.threshold, codes, len(names))

    sel, tpr = rates_of(data.candidate)
    base = rates_of(data.baseline) if data.baseline is not None else None
    out = []
    for name, limit, idx, counts, unit in (
            ("demographic_parity_diff", cfg["max_demographic_parity_diff"], 0, rows, "rows"),
            ("equal_opportunity_diff", cfg["max_equal_opportunity_diff"], 1, positives, "positives")):
        rates = (sel, tpr)[idx]
        eligible = counts >= min_size
        value = gap(rates, eligible)
        b = gap(base[idx], eligible) if base is not None else None
        what = "positive-prediction rate" if idx == 0 else "true-positive rate"
        small = [f"{names[g]} ({int(counts[g])} {unit})" for g in range(len(names)) if not eligible[g]]
        small_text = f"; too small to judge (< {min_size} {unit}): {', '.join(small)}" if small else ""
        extra = {"groups": dict(zip(names, [None if not math.isfinite(r) else float(r) for r in rates])),
                 "group_sizes": dict(zip(names, [int(c) for c in counts])), "size_of": unit,
                 "min_group_size": min_size, "too_small": [names[g] for g in range(len(names)) if not eligible[g]]}
        if not math.isfinite(value):
            out.append(GateCheck(f"fairness_{name}", "fairness", True, None, limit, b,
                                 f"{what} across {column} groups: fewer than two groups with ≥ {min_size} {unit}, "
                                 f"not judged{small_text}", {**extra, "skipped": True}))
            continue
        # The gap with its interval: over the limit only when the interval is wholly above it,
        # within it only when wholly below; in between the data cannot decide (equal groups of 30
        # rows failed a fixed 0.1 gap 10.2 % of the time: a rate of 30 moves by ±0.18).
        judged = [g for g in range(len(names)) if eligible[g] and math.isfinite(rates[g])]
        counts_j = np.array([float(counts[g]) for g in judged])
        successes = np.array([rates[g] * counts[g] for g in judged])
        _, lower, upper = gap_interval(successes, counts_j, float(cfg.get("alpha", 0.05)))
        pooled = float(successes.sum() / counts_j.sum())
        needed = power_group_size(pooled, limit, float(cfg.get("alpha", 0.05)), float(cfg.get("power", 0.8)), len(judged))
        extra.update({"gap_ci": [lower, upper], "ci_level": 1 - float(cfg.get("alpha", 0.05)),
                      "power_min_group_size": needed})
        if lower > limit:
            passed, verdict = False, f"over {_fmt(limit)}"
        elif upper <= limit:
            passed, verdict = True, f"within {_fmt(limit)}"
        else:
            passed, verdict = None, (f"insufficient data: the interval reaches both sides of {_fmt(limit)}; groups of "
                                     f"~{needed} {unit} decide a gap of the limit's size with "
                                     f"{float(cfg.get('power', 0.8)):.0%} power")
        extra["insufficient_data"] = passed is None
        out.append(GateCheck(f"fairness_{name}", "fairness", passed, value, limit, b,
                             f"{what} differs by {_fmt(value)} across {column} groups, "
                             f"{(1 - float(cfg.get('alpha', 0.05))) * 100:g}% CI [{_fmt(lower)}, {_fmt(upper)}] "
                             f"({verdict}){small_text}", extra))
    return out


def fairness_from_metrics(policy: GatePolicy, candidate: Mapping[str, Any], source: str) -> list[GateCheck]:
    """Fairness figures already in a metrics file (004's demographic_parity_diff)."""
    cfg = policy.fairness
    if not cfg:
        return []
    out = []
    for name, limit in (("demographic_parity_diff", cfg["max_demographic_parity_diff"]),
                        ("equal_opportunity_diff", cfg["max_equal_opportunity_diff"])):
        if name not in candidate:
            continue
        value = abs(_metric(candidate, name, source, f"fairness in {policy.source}"))
        passed = bool(value <= limit)
        out.append(GateCheck(f"fairness_{name}", "fairness", passed, value, limit, None,
                             f"{name} {_fmt(value)} {'within' if passed else 'over'} {_fmt(limit)}"))
    return out


def slices_from_metrics(policy: GatePolicy, candidate: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> list[GateCheck]:
    """Slice figures already in metrics files: "slices": {name: value or {metric: value}} (004)."""
    cfg = policy.slices
    if not cfg or not isinstance(candidate.get("slices"), dict):
        return []
    max_drop = cfg["k"] * cfg["tolerance"]
    base_slices = (baseline or {}).get("slices") or {}
    out = []
    for metric in cfg["metrics"]:
        for name, entry in candidate["slices"].items():
            value = entry.get(metric) if isinstance(entry, dict) else entry
            if value is None:
                continue
            b_entry = base_slices.get(name)
            base = b_entry.get(metric) if isinstance(b_entry, dict) else b_entry
            if base is None and baseline is not None:
                base = baseline.get(metric)  # 004: a slice new to the baseline compares with its overall value
            value = float(value)
            sign = 1.0 if _direction(policy, metric) == "higher" else -1.0
            # a metrics file has no rows, so no interval: judged by the tolerance alone
            passed = True if base is None else bool(sign * (float(base) - value) <= max_drop)
            out.append(GateCheck(f"slice_{name}_{metric}", "slice", passed, value,
                                 None if base is None else float(base) - sign * max_drop,
                                 None if base is None else float(base),
                                 f"slice {name}: {metric} {_fmt(value)} vs production {_fmt(base)} "
                                 f"(max drop {_fmt(max_drop)}; no rows in a metrics file, so no interval)",
                                 {"slice": name, "metric": metric, "direction": _direction(policy, metric)}))
    return out


def significance_checks(policy: GatePolicy, data: PairedPredictions) -> list[GateCheck]:
    cfg = policy.significance
    if not cfg or data.baseline is None:
        return []

    y, cand, base = data.y_true, data.candidate, data.baseline
    alpha, margin, require = cfg["alpha"], cfg["margin"], cfg["require"]
    out = []
    for metric in cfg["metrics"]:
        lower_is_better = _direction(policy, metric) == "lower"
        boot = paired_bootstrap(metric, y, cand, base, n_boot=int(cfg["n_boot"]), alpha=alpha,
                                seed=int(cfg["seed"]), threshold=policy.threshold)
        # work with the improvement: positive = candidate better, whatever the metric's direction
        sign = -1.0 if lower_is_better else 1.0
        delta = sign * boot["delta"]
        lo, hi = sorted((sign * boot["ci_low"], sign * boot["ci_high"]))
        extra: dict[str, Any] = {"ci": [boot["ci_low"], boot["ci_high"]], "improvement_ci": [lo, hi], "alpha": alpha,
                                 "margin": margin, "require": require, "n": int(y.size), "method": "paired-bootstrap",
                                 "n_boot": boot["n_boot"]}
        p_value = None
        if metric == "accuracy":
            pred_c, pred_b, truth = cand >= policy.threshold, base >= policy.threshold, y.astype(bool)
            test = mcnemar(pred_c == truth, pred_b == truth)
            p_value = test["p_value"]
            extra.update({"method": "mcnemar+paired-bootstrap", "p_value": p_value, "b": test["b"], "c": test["c"],
                          "mcnemar": test["method"]})
        if not math.isfinite(delta):
            out.append(GateCheck(f"significance_{metric}", "significance", True, None, -margin, boot["baseline"],
                                 f"{metric}: undefined on these rows (one class only): not tested", {**extra, "skipped": True}))
            continue
        if require == "superior":
            passed = lo > 0 and (p_value is None or p_value < alpha)
            why = f"needs the CI above 0{' and McNemar p < alpha' if p_value is not None else ''}"
        elif require == "non_inferior":
            passed = lo > -margin
            why = f"non-inferiority needs the CI's lower end above −{margin:g}"
        else:
            passed = hi >= -margin
            why = f"fails only if the CI lies wholly below −{margin:g}"
        ci_text = f"{(1 - alpha) * 100:.0f}% CI [{lo:+.4f}, {hi:+.4f}]"
        p_text = f", McNemar p={p_value:.3g} (b={extra['b']}, c={extra['c']})" if p_value is not None else ""
        if not passed:
            why = {"superior": "no significant improvement",
                   "non_inferior": f"non-inferiority within −{margin:g} not shown",
                   "not_worse": f"significantly worse: the CI lies wholly below −{margin:g}"}[require]
        extra["candidate_value"] = boot["candidate"]
        out.append(GateCheck(f"significance_{metric}", "significance", bool(passed), delta, -margin,
                             boot["baseline"],
                             f"{metric} {'gain' if delta >= 0 else 'loss'} {delta:+.4f} on {y.size} paired rows, "
                             f"{ci_text}{p_text}: {why}", extra))
    return out


def sanity_check(policy: GatePolicy, candidate_scores: np.ndarray, baseline_scores: np.ndarray | None,
                 reference_name: str) -> list[GateCheck]:
    cfg = policy.sanity
    if not cfg or baseline_scores is None:
        return []
    diff = np.abs(np.asarray(candidate_scores, float) - np.asarray(baseline_scores, float))
    mean = float(np.mean(diff)) if diff.size else 0.0
    limit = cfg["max_mean_abs_score_diff"]
    passed = bool(mean <= limit) if math.isfinite(mean) else False
    return [GateCheck("sanity_prediction_shift", "sanity", passed, mean, limit, 0.0,
                      f"mean |Δ score| vs production on the {reference_name} set ({diff.size} rows) is {_fmt(mean)} "
                      f"({'within' if passed else 'over'} {_fmt(limit)})",
                      {"max_abs_diff": float(diff.max()) if diff.size else 0.0, "rows": int(diff.size)})]


def robustness_checks(policy: GatePolicy, predict: Callable[[np.ndarray], np.ndarray], reference_rows: np.ndarray,
                      y_true: np.ndarray | None = None) -> list[GateCheck]:
    """Run the model on NaN, empty, zero and extreme inputs, twice on the same rows, and look for collapse."""
    cfg = policy.robustness
    if not cfg:
        return []
    rows = np.asarray(reference_rows, dtype=float)
    n_features = rows.shape[1]
    sample = rows[: min(len(rows), 64)]
    out: list[GateCheck] = []

    def attempt(fn):
        try:
            return np.asarray(fn(), dtype=float), None
        except Exception as exc:  # the check reports the model's failure, it does not crash the gate
            return None, f"{type(exc).__name__}: {exc}"

    def add(name, passed, detail, value=None, extra=None):
        out.append(GateCheck(f"robustness_{name}", "robustness", bool(passed), value, None, None, detail, extra or {}))

    clean, err = attempt(lambda: predict(sample))
    if clean is None:
        add("inference", False, f"the model fails on {len(sample)} reference rows: {err}")
        return out
    # NaN: one row with a missing feature must not change the others' scores
    poisoned = sample.copy()
    poisoned[0, 0] = np.nan
    scores, err = attempt(lambda: predict(poisoned))
    if scores is None:
        add("nan_input", cfg["nan_policy"] == "isolate", f"a NaN feature raises {err}")
    else:
        others_same = bool(np.array_equal(scores[1:], clean[1:]))
        nan_row_finite = bool(np.isfinite(scores[0]))
        passed = others_same and (nan_row_finite or cfg["nan_policy"] == "isolate")
        add("nan_input", passed,
            ("other rows unchanged" if others_same else "a NaN in one row changed other rows' scores")
            + ("; the NaN row scores finite" if nan_row_finite else "; the NaN row scores NaN (the server must reject missing features)")
            + f" [nan_policy={cfg['nan_policy']}]", extra={"nan_row_finite": nan_row_finite, "others_unchanged": others_same})
    empty, err = attempt(lambda: predict(np.empty((0, n_features))))
    add("empty_batch", empty is not None and empty.size == 0,
        "an empty batch returns no scores" if empty is not None and empty.size == 0
        else f"an empty batch {'returns ' + str(empty.size) + ' scores' if empty is not None else 'raises ' + str(err)}")
    zeros, err = attempt(lambda: predict(np.zeros((1, n_features))))
    ok = zeros is not None and bool(np.all(np.isfinite(zeros)))
    add("zero_input", ok, "an all-zero row scores finite" if ok else f"an all-zero row gives {err or zeros}")
    big = cfg["extreme_value"]
    extreme, err = attempt(lambda: predict(np.vstack([np.full(n_features, big), np.full(n_features, -big)])))
    ok = extreme is not None and bool(np.all(np.isfinite(extreme)) and np.all((extreme >= 0) & (extreme <= 1)))
    add("extreme_input", ok, f"rows of ±{big:g} score finite, within [0, 1]" if ok else f"rows of ±{big:g} give {err or extreme}")
    again, err = attempt(lambda: predict(sample))
    same = again is not None and bool(np.array_equal(again, clean))
    add("deterministic", same, "the same rows twice give identical scores" if same
        else f"the same rows twice differ (max |Δ| {float(np.max(np.abs(again - clean))) if again is not None else err})")
    if cfg["require_all_classes"] and y_true is not None:
        full, err = attempt(lambda: predict(rows))
        if full is not None:
            predicted = set(np.unique(full >= policy.threshold).tolist())
            expected = set(np.unique(np.asarray(y_true).astype(bool)).tolist())
            missing = expected - predicted
            share = float(np.mean(full >= policy.threshold))
            add("class_collapse", not missing,
                f"predicts every class on {len(rows)} rows ({share:.1%} positive)" if not missing
                else f"never predicts class {sorted(int(m) for m in missing)} on {len(rows)} rows ({share:.1%} positive)",
                value=share)
    return out


# -- the three ways in ------------------------------------------------------------------------


def classification_summary(y: np.ndarray, scores: np.ndarray, threshold: float, prefix: str = "") -> dict[str, float]:
    metrics = classification_metrics(y, scores, threshold=threshold, prefix=prefix)
    err = scores - y.astype(float)
    metrics[f"{prefix}rmse"] = float(np.sqrt(np.mean(err * err))) if err.size else float("nan")
    metrics[f"{prefix}mae"] = float(np.mean(np.abs(err))) if err.size else float("nan")
    return metrics


def evaluate_metrics(policy: GatePolicy, candidate: Mapping[str, Any], baseline: Mapping[str, Any] | None, *,
                     model: str = "", candidate_name: str = "candidate", baseline_name: str | None = "baseline",
                     candidate_source: str = "candidate metrics", baseline_source: str = "baseline metrics") -> GateReport:
    """Metrics files in the seed's format: the seed's gates, plus slices/fairness figures they carry."""
    report = GateReport(model, candidate_name, baseline_name if baseline is not None else None, policy.sha256)
    report.checks = seed_checks(policy, candidate, baseline, candidate_source=candidate_source, baseline_source=baseline_source)
    report.checks += slices_from_metrics(policy, candidate, baseline)
    report.checks += fairness_from_metrics(policy, candidate, candidate_source)
    return report


def evaluate_predictions(policy: GatePolicy, data: PairedPredictions, *, model: str = "", candidate_name: str = "candidate",
                         baseline_name: str | None = "baseline", extra_candidate: Mapping[str, Any] | None = None,
                         extra_baseline: Mapping[str, Any] | None = None) -> GateReport:
    """A prediction file: metrics computed from the scores, then every gate that predictions allow."""
    cand_metrics = {**(extra_candidate or {}), **classification_summary(data.y_true, data.candidate, policy.threshold)}
    base_metrics = None
    if data.baseline is not None:
        base_metrics = {**(extra_baseline or {}), **classification_summary(data.y_true, data.baseline, policy.threshold)}
    report = GateReport(model, candidate_name, baseline_name if data.baseline is not None else None, policy.sha256)
    report.checks = seed_checks(policy, cand_metrics, base_metrics, candidate_source=f"{data.source} (candidate)",
                                baseline_source=f"{data.source} (baseline)")
    report.checks += slice_checks(policy, data)
    report.checks += fairness_checks(policy, data)
    report.checks += significance_checks(policy, data)
    return report


def load_metrics_file(path: str | os.PathLike) -> dict[str, Any]:
    data = read_json(path, "metrics file")
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: must be a JSON object of metric -> value")
    for key in ("p99_latency_ms", "model_size_mb"):  # a negative latency or size would pass any ceiling
        if key in data:
            _number(data[key], f"{path}: {key}", minimum=0.0)
    return data


def evaluate_files(candidate_path: str, baseline_path: str | None, policy_path: str | None,
                   task: str = "binary") -> GateReport:
    # deferred: task_gates builds on this module (GatePolicy, seed_checks); a cycle to untie
    from console.evaluate.task_gates import load_task_policy

    policy = load_task_policy(policy_path, task)
    # MLflow evaluate's names (r2_score, f1_score …) read as the seed's (r2, f1 …)
    candidate = with_seed_names(load_metrics_file(candidate_path), task)
    baseline = with_seed_names(load_metrics_file(baseline_path), task) if baseline_path else None
    return evaluate_metrics(policy, candidate, baseline, candidate_name=str(candidate_path),
                            baseline_name=str(baseline_path) if baseline_path else None,
                            candidate_source=str(candidate_path), baseline_source=str(baseline_path))


# -- a registry version against production ---------------------------------------------------


@dataclass
class VersionEvaluation:
    """Everything evaluate_version computed, for the report. Without a test set only the
    recorded metrics were gated: the data fields are None and `data_source` is empty."""

    report: GateReport
    features: list[str] = field(default_factory=list)
    test_rows: np.ndarray | None = None
    test_y: np.ndarray | None = None
    candidate_scores: np.ndarray | None = None
    baseline_scores: np.ndarray | None = None
    golden_candidate: np.ndarray | None = None
    golden_baseline: np.ndarray | None = None
    candidate_metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] | None = None
    data_source: str = ""  # the test set read, as its reference
    task: str = "binary"  # regression / multiclass: evaluated by task_gates, scores in task_details
    task_details: dict[str, Any] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        return self.candidate_scores is not None or bool(self.task_details)


def policy_for(ws, model: str, policy_path: str | None) -> GatePolicy:
    if policy_path:
        return load_policy(policy_path)
    configured = ws.model_config(model).get("gate_policy")
    if configured:
        path = Path(configured)
        return load_policy(path if path.is_absolute() else ws.root / path)
    return load_policy(None)


def evaluate_version_full(ws, model: str, version: str, policy_path: str | None = None) -> VersionEvaluation:
    """The version against production: the seed's gates on the recorded metrics (MLflow run
    metrics, S3 metrics.json …) always; with `[models.X] test_data` every other check too, on
    both models' predictions through the model-format seam. Without a test set the checks that
    need data are listed as not run, which is not a failure (the report is just not complete)."""
    from console.evaluate import task_gates  # deferred: task_gates imports gates (a cycle)

    check_name(model, "model")
    check_name(version, "version")
    cfg = ws.model_config(model)
    registry = ws.registry()
    candidate_mv = registry.get_version(model, version)
    production = registry.get_pointers(model).get(PRODUCTION)
    baseline_version = production if production and production != version else None
    baseline_mv = registry.get_version(model, baseline_version) if baseline_version else None
    # the task: mrc.toml's, else the recorded metrics' names, else (with a test set) the model's own
    task = task_gates.known_task(ws, model, cfg, candidate_mv)
    if not cfg.get("test_data"):
        task = task or "binary"
        policy = task_gates.task_policy_for(ws, model, policy_path, task).with_version_defaults()
        return _evaluate_recorded(policy, model, candidate_mv, baseline_mv,
                                  f"no test set (models.{model}.test_data in {ws.config_path})", task=task)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mrc-gate-") as tmp:
        # every prediction happens in here: a loaded model may read its folder lazily
        cand_model = _load_version_model(ws, registry, model, candidate_mv, cfg, Path(tmp) / "candidate")
        test = None
        if task is None:
            test = task_gates.load_split(ws, cfg["test_data"], cfg.get("label") or "label", model, version)
            head = task_gates.frame_of(test, _features_of(cand_model, test, cfg.get("label") or "label", model,
                                                          version))
            task = task_gates.task_of_model(cand_model, head.iloc[:64], model, version, str(ws.config_path))
        policy = task_gates.task_policy_for(ws, model, policy_path, task).with_version_defaults()
        if task != "binary":
            return task_gates.evaluate_version_on_data(ws, policy, cfg, model, task, candidate_mv, baseline_mv,
                                                       registry, Path(tmp), cand_model, test)
        return _evaluate_on_data(ws, policy, cfg, model, candidate_mv, baseline_mv, registry, Path(tmp), cand_model)


def evaluate_version(ws, model: str, version: str, policy_path: str | None = None) -> GateReport:
    """The candidate version against the current production version (see evaluate_version_full)."""
    return evaluate_version_full(ws, model, version, policy_path).report


# Checks that need predictions on data, by policy section, as they are named when not run.
DATA_CHECKS = (("slices", "slice"), ("fairness", "fairness"), ("significance", "significance"),
               ("robustness", "robustness"), ("sanity", "sanity"))


def not_run_checks(policy: GatePolicy, why: str) -> list[GateCheck]:
    """One "not run" check per data check the policy asks for."""
    return [GateCheck(key, kind, None, detail=f"not run: {why}", status="not_run")
            for key, kind in DATA_CHECKS if getattr(policy, key)]


def _evaluate_recorded(policy: GatePolicy, model: str, candidate_mv, baseline_mv, why: str,
                       task: str = "binary") -> VersionEvaluation:
    """The seed's evaluate_promotion: the candidate's recorded metrics vs production's."""
    from console.evaluate.tasks import with_seed_names

    # MLflow evaluate's names (root_mean_squared_error, f1_score …) read as the seed's
    cand_metrics = with_seed_names(candidate_mv.metrics, task)
    base_metrics = with_seed_names(baseline_mv.metrics, task) if baseline_mv is not None else None
    report = GateReport(model, candidate_mv.version, baseline_mv.version if baseline_mv else None, policy.sha256)
    report.checks = seed_checks(
        policy, cand_metrics, base_metrics,
        candidate_source=f"{model} version {candidate_mv.version} recorded metrics",
        baseline_source=f"{model} version {baseline_mv.version if baseline_mv else '-'} (production) recorded metrics")
    report.checks += not_run_checks(policy, why)
    return VersionEvaluation(report, candidate_metrics=cand_metrics, baseline_metrics=base_metrics, task=task)


def _load_version_model(ws, registry, model: str, mv, cfg: dict[str, Any], dest: Path):
    """A version's artifact, loaded through the model-format seam (console/plugins)."""
    dest.mkdir(parents=True, exist_ok=True)
    path = registry.fetch_artifact(model, mv.version, str(dest))
    # mrc.toml's `format` first, then the format the registry declared, then the file's bytes
    fmt = plugins.resolve_format(mv.artifact.format, path, cfg, model=model)
    return fmt.load(path, cfg)


def _numeric(table, column: str, what: str) -> np.ndarray:
    values = table.data[column]
    if getattr(values, "dtype", None) is None or values.dtype.kind not in "fiub":
        raise BadInputError(f"{table.source}: {column}: {what} is not numeric")
    return np.asarray(values, dtype=float)


def _load_split(ws, ref: str, label: str, model: str, version: str, what: str):
    """A test/golden set through the data-source seam: (table, labels) with the label checked."""
    table = ws.load_table(ref, model=model, version=version)
    if table.rows == 0:
        raise BadInputError(f"{table.source}: no rows in the {what} set")
    if label not in table.columns:
        raise BadInputError(f"{table.source}: {label}: no label column in the {what} set "
                            f"(models.{model}.label in {ws.config_path})")
    y = _numeric(table, label, "the label")
    if np.isnan(y).any():
        raise BadInputError(f"{table.source}: {label}: missing label (row {int(np.argmax(np.isnan(y))) + 1})")
    return table, y


def _features_of(loaded, table, label: str, model: str, version: str) -> list[str]:
    """The model's own input columns when it names them, else every non-label column in file order."""
    named = getattr(loaded, "features", None)
    features = list(named) if named else [c for c in table.columns if c != label]
    for f in features:
        if f not in table.columns:
            raise BadInputError(f"{model} version {version}: feature {f!r} is missing from {table.source}")
    return features


def _predictor(loaded, features: list[str], model: str, version: str):
    def predict(rows: np.ndarray) -> np.ndarray:
        scores = np.asarray(loaded.predict(np.asarray(rows, dtype=float), list(features)), dtype=float).reshape(-1)
        if scores.size != len(rows):
            raise BadInputError(f"{model} version {version}: {scores.size} predictions for {len(rows)} rows")
        return scores
    return predict


def _scores(predict, table, features: list[str], model: str, version: str) -> np.ndarray:
    rows = np.column_stack([_numeric(table, f, "a feature") for f in features]) if features else np.empty((table.rows, 0))
    try:
        return predict(rows)
    except BadInputError:
        raise
    except Exception as exc:  # the model's own failure, named, as bad input (exit 2)
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise BadInputError(f"{model} version {version}: prediction on {table.source} failed "
                            f"({type(exc).__name__}: {text[:200]})") from None


def _evaluate_on_data(ws, policy: GatePolicy, cfg: dict[str, Any], model: str, candidate_mv, baseline_mv,
                      registry, tmp: Path, cand_model=None) -> VersionEvaluation:
    version = candidate_mv.version
    baseline_version = baseline_mv.version if baseline_mv is not None else None
    label = cfg.get("label") or "label"
    test_ref = cfg["test_data"]
    test, y = _load_split(ws, test_ref, label, model, version, "test")
    if cand_model is None:
        cand_model = _load_version_model(ws, registry, model, candidate_mv, cfg, tmp / "candidate")
    features = _features_of(cand_model, test, label, model, version)
    cand_predict = _predictor(cand_model, features, model, version)
    base_predict = base_features = None
    if baseline_mv is not None:
        base_model = _load_version_model(ws, registry, model, baseline_mv, cfg, tmp / "baseline")
        base_features = _features_of(base_model, test, label, model, baseline_version)
        base_predict = _predictor(base_model, base_features, model, baseline_version)
    X = np.column_stack([_numeric(test, f, "a feature") for f in features])
    cand_scores = _scores(cand_predict, test, features, model, version)
    base_scores = _scores(base_predict, test, base_features, model, baseline_version) if base_predict else None
    cand_metrics = {**candidate_mv.metrics, **classification_summary(y, cand_scores, policy.threshold)}
    base_metrics = None
    if base_scores is not None:
        base_metrics = {**baseline_mv.metrics, **classification_summary(y, base_scores, policy.threshold)}
    golden_c = golden_b = None
    golden_ref = cfg.get("golden_data")
    if golden_ref:
        golden, golden_y = _load_split(ws, golden_ref, label, model, version, "golden")
        _features_of(cand_model, golden, label, model, version)
        golden_c = _scores(cand_predict, golden, features, model, version)
        cand_metrics.update(classification_summary(golden_y, golden_c, policy.threshold, prefix="golden_"))
        if base_predict is not None:
            _features_of(base_model, golden, label, model, baseline_version)
            golden_b = _scores(base_predict, golden, base_features, model, baseline_version)
            base_metrics.update(classification_summary(golden_y, golden_b, policy.threshold, prefix="golden_"))
    data = PairedPredictions(y, cand_scores, base_scores, dict(test.data), source=test.source)
    report = GateReport(model, version, baseline_version, policy.sha256)
    report.checks = seed_checks(policy, cand_metrics, base_metrics, candidate_source=f"{model} version {version} metrics",
                                baseline_source=f"{model} version {baseline_version} metrics")
    report.checks += slice_checks(policy, data)
    report.checks += fairness_checks(policy, data)
    report.checks += significance_checks(policy, data)
    if golden_c is not None and policy.sanity and policy.sanity["reference"] == "golden":
        report.checks += sanity_check(policy, golden_c, golden_b, f"golden ({golden_ref})")
    else:
        report.checks += sanity_check(policy, cand_scores, base_scores, f"test ({test_ref})")
    report.checks += robustness_checks(policy, cand_predict, X, y)
    return VersionEvaluation(report, features, X, y, cand_scores, base_scores, golden_c, golden_b, cand_metrics,
                             base_metrics, test.source)
