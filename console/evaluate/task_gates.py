"""Gates for regression and multi-class models, in the seed's policy format.

The binary engine (gates.py) stays as it is; gates.py dispatches here when the task is
regression or multiclass. The seed's checks (hard, relative, latency, size) run unchanged on
the task's metrics; slices reuse gates.slice_checks on the task's own measure (errors for a
regression, correctness for classes); the paired tests are the task's own (a paired t on
absolute/squared errors; McNemar on correct/incorrect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from backends.base import BadInputError
from console.domain import GateCheck, GateReport
from console.evaluate import gates, multiclass, regression
from console.evaluate.tasks import (BINARY_ONLY, SIGNIFICANCE_DEFAULTS, SIGNIFICANCE_KNOWN, SLICE_KNOWN,
                                    with_seed_names)


def default_policy_path(task: str) -> Path:
    from console.assets import asset_path

    return asset_path("gate_policy.json" if task == "binary" else f"gate_policy_{task}.json")


def load_task_policy(path: str | None, task: str) -> gates.GatePolicy:
    policy = gates.load_policy(path or default_policy_path(task))
    check_policy_fits(policy, task)
    return policy


def check_policy_fits(policy: gates.GatePolicy, task: str) -> None:
    """A binary metric gated on a regression (auc_roc on prices) is one line naming the field."""
    if task == "binary":
        return
    for section in ("hard_gates", "relative_gates"):
        for metric in getattr(policy, section):
            if task == "regression" and (metric in BINARY_ONLY or metric in ("accuracy", "log_loss", "macro_f1")):
                raise BadInputError(f"{policy.source}: {section}.{metric}: a classification metric; a regression "
                                    f"has rmse, mae, mse, r2, mape, max_residual")
            if task == "multiclass" and metric in BINARY_ONLY | {"rmse", "mae", "mse", "r2", "mape", "max_residual"}:
                raise BadInputError(f"{policy.source}: {section}.{metric}: not a multi-class metric (accuracy, "
                                    f"macro_f1, weighted_f1, balanced_accuracy, log_loss, recall_class_<c> …)")


def _section_metrics(policy: gates.GatePolicy, key: str, task: str, known: tuple[str, ...], default: list[str]) -> list[str]:
    section = policy.raw.get(key) if isinstance(policy.raw.get(key), dict) else {}
    if "metrics" not in section:
        return list(default)
    for metric in section["metrics"]:
        if metric not in known:
            raise BadInputError(f"{policy.source}: {key}.metrics: {metric!r} has no {key} check for a {task} model "
                                f"(known: {', '.join(known)})")
    return list(section["metrics"])


@dataclass
class TaskPredictions:
    """Truth and both models' predictions on the same rows.

    regression: 1-D values. multiclass: 1-D predicted labels, or (n, k) class probabilities
    whose columns are `candidate_classes` / `baseline_classes`.
    """

    task: str
    y_true: np.ndarray
    candidate: np.ndarray
    baseline: np.ndarray | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "predictions"
    candidate_classes: list[Any] | None = None
    baseline_classes: list[Any] | None = None
    names: tuple[str, str, str] = ("y_true", "candidate", "baseline")  # columns, for error lines


@dataclass
class TaskEvaluation:
    """The report plus what the review plots: metrics, the confusion matrices or residuals."""

    report: GateReport
    candidate_metrics: dict[str, float]
    baseline_metrics: dict[str, float] | None
    details: dict[str, Any] = field(default_factory=dict)


def _labels_of(pred: np.ndarray, classes: list[Any] | None) -> np.ndarray:
    if pred.ndim == 2:
        if classes is None or len(classes) != pred.shape[1]:
            raise BadInputError(f"{pred.shape[1]} class columns without their class names")
        return np.asarray(classes, dtype=object)[np.argmax(pred, axis=1)]
    return pred


def _aligned_proba(pred: np.ndarray, classes: list[Any] | None, enc: multiclass.Encoded, kind: str) -> np.ndarray | None:
    """The (n, k) probabilities re-ordered onto the union's classes (0 for a class the model never
    outputs), or None for label predictions."""
    if pred.ndim != 2:
        return None
    out = np.zeros((pred.shape[0], len(enc.classes)))
    index = {c: i for i, c in enumerate(enc.classes)}
    for j, c in enumerate(classes or []):
        key = float(c) if kind == "number" else str(c)
        out[:, index[key]] = pred[:, j]
    return out


def task_metrics(data: TaskPredictions) -> tuple[dict[str, float], dict[str, float] | None, dict[str, Any]]:
    """(candidate metrics, baseline metrics or None, details for the review)."""
    if data.task == "regression":
        cand = regression.regression_metrics(data.y_true, data.candidate)
        base = regression.regression_metrics(data.y_true, data.baseline) if data.baseline is not None else None
        residuals = (np.asarray(data.candidate, float) - np.asarray(data.y_true, float))
        return cand, base, {"residual_quantiles": np.quantile(residuals, [0, .05, .25, .5, .75, .95, 1]).tolist()
                            if residuals.size else []}
    labels_c = _labels_of(data.candidate, data.candidate_classes)
    labels_b = _labels_of(data.baseline, data.baseline_classes) if data.baseline is not None else None
    preds = [labels_c] + ([labels_b] if labels_b is not None else [])
    enc = multiclass.encode(data.y_true, *preds, source=data.source, columns=data.names)
    kind = multiclass.label_kind(data.y_true)
    k = len(enc.classes)
    cand = multiclass.multiclass_metrics(enc.y, enc.predictions[0], enc.names,
                                         proba=_aligned_proba(data.candidate, data.candidate_classes, enc, kind))
    details: dict[str, Any] = {"classes": enc.names,
                               "confusion_candidate": multiclass.confusion_matrix(enc.y, enc.predictions[0], k).tolist(),
                               "_encoded": enc}
    base = None
    if labels_b is not None:
        base = multiclass.multiclass_metrics(enc.y, enc.predictions[1], enc.names,
                                             proba=_aligned_proba(data.baseline, data.baseline_classes, enc, kind))
        details["confusion_baseline"] = multiclass.confusion_matrix(enc.y, enc.predictions[1], k).tolist()
    return cand, base, details


def evaluate_task_predictions(policy: gates.GatePolicy, data: TaskPredictions, *, model: str = "",
                              candidate_name: str = "candidate", baseline_name: str | None = "baseline",
                              extra_candidate: Mapping[str, Any] | None = None,
                              extra_baseline: Mapping[str, Any] | None = None) -> TaskEvaluation:
    """Every gate that predictions allow, for a regression or a multi-class model."""
    check_policy_fits(policy, data.task)
    cand_m, base_m, details = task_metrics(data)
    cand_metrics = {**with_seed_names(extra_candidate or {}, data.task), **cand_m}
    base_metrics = None if base_m is None else {**with_seed_names(extra_baseline or {}, data.task), **base_m}
    report = GateReport(model, candidate_name, baseline_name if data.baseline is not None else None, policy.sha256)
    report.checks = gates.seed_checks(policy, cand_metrics, base_metrics, candidate_source=f"{data.source} (candidate)",
                                      baseline_source=f"{data.source} (baseline)")
    report.checks += task_data_checks(policy, data, details)
    details.pop("_encoded", None)
    return TaskEvaluation(report, cand_metrics, base_metrics, details)


def task_data_checks(policy: gates.GatePolicy, data: TaskPredictions, details: dict[str, Any]) -> list[GateCheck]:
    """Slices, fairness and significance on the rows, the task's way."""
    checks: list[GateCheck] = []
    task = data.task
    if task == "regression":
        y, cand, base = (np.asarray(data.y_true, float), np.asarray(data.candidate, float),
                         None if data.baseline is None else np.asarray(data.baseline, float))
    else:
        enc: multiclass.Encoded = details["_encoded"]
        # correctness as a score against an all-ones truth: accuracy per slice is then the binary
        # engine's accuracy, with its paired bootstrap
        y = np.ones(enc.y.size, dtype=np.int64)
        cand = (enc.predictions[0] == enc.y).astype(float)
        base = (enc.predictions[1] == enc.y).astype(float) if data.baseline is not None else None
    if policy.slices:
        metrics = _section_metrics(policy, "slices", task, SLICE_KNOWN[task], [SLICE_KNOWN[task][-1]])
        sliced = gates.GatePolicy(**{k: getattr(policy, k) for k in policy.__dataclass_fields__})
        sliced.slices = {**policy.slices, "metrics": metrics}
        sliced.threshold = 0.5
        checks += gates.slice_checks(sliced, gates.PairedPredictions(y, cand, base, data.columns, data.source))
        column = policy.slices["column"]
        codes, names = gates._groups(data.columns[column], int(policy.slices["bins"]))
        if task == "regression":
            details["residuals_by_slice"] = {"column": column,
                                             "candidate": regression.residuals_by_group(y, cand, codes, names)}
            if base is not None:
                details["residuals_by_slice"]["baseline"] = regression.residuals_by_group(y, base, codes, names)
    if policy.fairness:
        checks.append(GateCheck("fairness", "fairness", True, None, None, None,
                                f"fairness gaps (positive-prediction and true-positive rates) are defined for binary "
                                f"models; a {task} model's groups are judged by slices", {"skipped": True}))
    if policy.significance and base is not None:
        cfg = dict(policy.significance)
        cfg["metrics"] = _section_metrics(policy, "significance", task, SIGNIFICANCE_KNOWN[task],
                                          SIGNIFICANCE_DEFAULTS[task])
        if task == "regression":
            checks += regression.significance_checks(cfg, y, cand, base)
        else:
            enc = details["_encoded"]
            checks += multiclass.mcnemar_checks(cfg, enc.y, enc.predictions[0], enc.predictions[1])
    return checks


def metric_is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
