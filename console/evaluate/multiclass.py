"""Multi-class metrics and paired tests, in plain numpy (each metric as scikit-learn defines it).

Classes are the union of the labels seen in the truth and the predictions, sorted (what
scikit-learn's `unique_labels` does), so macro averages agree with `f1_score(average="macro")`.
Labels may be numbers or text; numbers that are whole print as integers ("2", not "2.0").
Pure: arrays in, numbers and GateChecks out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends.base import BadInputError
from console.domain import GateCheck
from console.evaluate.stats import _normal_quantile, mcnemar


def label_kind(values: np.ndarray) -> str:
    """"number" or "text": how a label column's values compare."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iufb":
        return "number"
    if arr.dtype.kind in "US":
        return "text"
    kinds = {isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in arr.tolist()}
    return "number" if kinds == {True} else "text"


def _canonical(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "number":
        return np.asarray(values, dtype=np.float64)
    return np.asarray(values).astype(str)


def label_name(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Encoded:
    classes: list[Any]  # sorted union of labels, as compared
    names: list[str]  # how each class prints (and is named in metric keys)
    y: np.ndarray  # codes 0..k-1 of the truth
    predictions: list[np.ndarray]  # codes of each prediction array


def encode(y_true, *predictions, source: str = "predictions", columns: tuple[str, ...] = ()) -> Encoded:
    """Codes of the truth and of every prediction over their union of classes.

    Labels of different kinds (numbers against text) are one line naming the column: "1" and
    1 are not silently the same class.
    """
    kind = label_kind(y_true)
    for i, pred in enumerate(predictions):
        if label_kind(pred) != kind:
            name = columns[i + 1] if len(columns) > i + 1 else f"prediction {i + 1}"
            raise BadInputError(f"{source}: {name}: predicted classes are {label_kind(pred)}s but "
                                f"{columns[0] if columns else 'y_true'} holds {kind}s")
    arrays = [_canonical(y_true, kind)] + [_canonical(p, kind) for p in predictions]
    classes, inverse = np.unique(np.concatenate(arrays), return_inverse=True)
    codes, start = [], 0
    for arr in arrays:
        codes.append(inverse[start:start + arr.size].astype(np.int64))
        start += arr.size
    names = [label_name(c) for c in classes.tolist()]
    return Encoded(classes.tolist(), names, codes[0], codes[1:])


def confusion_matrix(y_codes: np.ndarray, pred_codes: np.ndarray, k: int) -> np.ndarray:
    """Rows: true class, columns: predicted class (scikit-learn's layout)."""
    return np.bincount(y_codes * k + pred_codes, minlength=k * k).reshape(k, k)


def multiclass_metrics(y_codes: np.ndarray, pred_codes: np.ndarray, names: list[str], *,
                       proba: np.ndarray | None = None, prefix: str = "") -> dict[str, float]:
    """accuracy, macro/weighted precision, recall and F1, balanced accuracy, per-class
    precision/recall/F1 (`recall_class_<name>` …), min_class_recall, and log_loss when the
    class probabilities (columns in `names` order) are given."""
    k = len(names)
    n = y_codes.size
    cm = confusion_matrix(y_codes, pred_codes, k).astype(np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # scikit-learn's zero_division: an undefined ratio is 0
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    total = support.sum()
    out = {
        f"{prefix}accuracy": float(tp.sum() / n) if n else float("nan"),
        f"{prefix}macro_f1": float(f1.mean()) if k else float("nan"),
        f"{prefix}weighted_f1": float(f1 @ support / total) if total else float("nan"),
        f"{prefix}macro_precision": float(precision.mean()) if k else float("nan"),
        f"{prefix}weighted_precision": float(precision @ support / total) if total else float("nan"),
        f"{prefix}macro_recall": float(recall.mean()) if k else float("nan"),
        f"{prefix}weighted_recall": float(recall @ support / total) if total else float("nan"),
        f"{prefix}balanced_accuracy": float(recall[support > 0].mean()) if (support > 0).any() else float("nan"),
        f"{prefix}min_class_recall": float(recall[support > 0].min()) if (support > 0).any() else float("nan"),
    }
    for i, name in enumerate(names):
        out[f"{prefix}recall_class_{name}"] = float(recall[i])
        out[f"{prefix}precision_class_{name}"] = float(precision[i])
        out[f"{prefix}f1_class_{name}"] = float(f1[i])
    if proba is not None:
        out[f"{prefix}log_loss"] = log_loss(y_codes, proba)
    return out


def log_loss(y_codes: np.ndarray, proba: np.ndarray) -> float:
    """Mean −log P(true class), probabilities clipped to [eps, 1 − eps] (scikit-learn's clip)."""
    p = np.asarray(proba, dtype=np.float64)
    if y_codes.size == 0:
        return float("nan")
    eps = np.finfo(p.dtype).eps
    picked = np.clip(p[np.arange(y_codes.size), y_codes], eps, 1 - eps)
    return float(-np.mean(np.log(picked)))


def mcnemar_checks(cfg: dict[str, Any], y_codes: np.ndarray, cand_codes: np.ndarray,
                   base_codes: np.ndarray) -> list[GateCheck]:
    """Accuracy, candidate vs production on the same rows: McNemar on correct/incorrect plus the
    paired (Wald) CI of the accuracy difference, (b − c)/n ± z·√(b + c − (b − c)²/n)/n, where b
    and c count the rows only one model gets right: the pairing is in b and c, so no bootstrap
    is needed (50,000 rows: milliseconds, where 2,000 resamples took seconds)."""
    alpha, margin, require = cfg["alpha"], cfg["margin"], cfg["require"]
    right_c, right_b = cand_codes == y_codes, base_codes == y_codes
    test = mcnemar(right_c, right_b)
    n = int(y_codes.size)
    b, c = test["b"], test["c"]
    nan = float("nan")
    delta = (b - c) / n if n else nan
    half = _normal_quantile(1 - alpha / 2) * math.sqrt(max(0.0, b + c - (b - c) ** 2 / n)) / n if n else nan
    boot = {"ci_low": delta - half, "ci_high": delta + half, "delta": delta, "n_boot": 0,
            "candidate": float(right_c.mean()) if n else nan, "baseline": float(right_b.mean()) if n else nan}
    lo, hi, delta, p = boot["ci_low"], boot["ci_high"], boot["delta"], test["p_value"]
    if require == "superior":
        passed, why = lo > 0 and p < alpha, "needs the CI above 0 and McNemar p < alpha"
    elif require == "non_inferior":
        passed, why = lo > -margin, f"non-inferiority needs the CI's lower end above −{margin:g}"
    else:
        passed, why = hi >= -margin, f"fails only if the CI lies wholly below −{margin:g}"
    if not passed:
        why = {"superior": "no significant improvement",
               "non_inferior": f"non-inferiority within −{margin:g} not shown",
               "not_worse": f"significantly worse: the CI lies wholly below −{margin:g}"}[require]
    extra = {"ci": [lo, hi], "improvement_ci": [lo, hi], "alpha": alpha, "margin": margin, "require": require,
             "n": n, "method": "mcnemar+paired-wald", "p_value": p, "b": test["b"], "c": test["c"],
             "mcnemar": test["method"], "candidate_value": boot["candidate"]}
    if not math.isfinite(delta):
        return [GateCheck("significance_accuracy", "significance", True, None, -margin, boot["baseline"],
                          "accuracy: no rows: not tested", {**extra, "skipped": True})]
    return [GateCheck("significance_accuracy", "significance", bool(passed), delta, -margin, boot["baseline"],
                      f"accuracy {'gain' if delta >= 0 else 'loss'} {delta:+.4f} on {y_codes.size} paired rows, "
                      f"{(1 - alpha) * 100:.0f}% CI [{lo:+.4f}, {hi:+.4f}], McNemar p={p:.3g} "
                      f"(b={test['b']}, c={test['c']}): {why}", extra)]


def sanity_check(limit: float, candidate, baseline, reference_name: str) -> list[GateCheck]:
    """Mean total-variation distance between the two models' class probabilities (½ Σ |Δp|),
    or the share of rows whose predicted class differs when only classes are known."""
    c, b = np.asarray(candidate), np.asarray(baseline)
    if c.ndim == 2:
        diff = 0.5 * np.abs(c.astype(float) - b.astype(float)).sum(axis=1)
        what = "mean total-variation distance of the class probabilities"
    else:
        diff = (c != b).astype(float)
        what = "share of rows with another predicted class"
    value = float(diff.mean()) if diff.size else 0.0
    passed = bool(value <= limit)
    return [GateCheck("sanity_prediction_shift", "sanity", passed, value, limit, 0.0,
                      f"{what} vs production on the {reference_name} set ({diff.size} rows) is {value:.4g} "
                      f"({'within' if passed else 'over'} {limit:g})", {"rows": int(diff.size)})]
