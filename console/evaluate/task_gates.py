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
from backends.capabilities import PredictsTask
from console.assets import asset_path
from console.domain import GateCheck, GateReport
from console.evaluate import gates, multiclass, regression
from console.evaluate.tasks import (BINARY_ONLY, SIGNIFICANCE_DEFAULTS, SIGNIFICANCE_KNOWN, SLICE_KNOWN, ask_for_task,
                                    resolve_task, task_from_output, with_seed_names)


def default_policy_path(task: str) -> Path:
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


# Built-in sanity limits per task, where the policy sets none: a regression's mean |Δ prediction|
# in standard deviations of the truth (half of one is a different model, not a retrained one);
# a classifier's mean total-variation distance between class probabilities.
SANITY_DEFAULTS = {"regression": 0.5, "multiclass": 0.25}


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


# -- a registry version, per task ----------------------------------------------------------------


def task_policy_for(ws, model: str, policy_path: str | None, task: str) -> gates.GatePolicy:
    """--policy, else the model's gate_policy in mrc.toml, else the task's built-in policy."""
    if policy_path or ws.model_config(model).get("gate_policy"):
        policy = gates.policy_for(ws, model, policy_path)
    else:
        policy = gates.load_policy(default_policy_path(task))
    check_policy_fits(policy, task)
    return policy


def known_task(ws, model: str, cfg: Mapping[str, Any], candidate_mv) -> str | None:
    """The task before any model is loaded: mrc.toml's, else the recorded metrics' names."""
    return resolve_task(model, str(ws.config_path), cfg, metric_names=list(candidate_mv.metrics))


def task_of_model(loaded, frame_head, model: str, version: str, config_path: str) -> str:
    """What a loaded model says its task is, else what its output on a few rows shows: class
    columns (3+) are a multi-class model; whole numbers with more than two values could be
    classes or counts, so mrc asks; anything else keeps the binary reading (scores, logits)."""
    if not isinstance(loaded, PredictsTask):
        return "binary"
    if loaded.task:
        return loaded.task
    try:
        out = np.asarray(loaded.predict_task(frame_head))
    except BadInputError:
        return "binary"  # the binary path scores it its own way, and names its failure there
    shaped = task_from_output(out.shape)
    if shaped:
        return shaped
    if out.dtype.kind in "iu" or (out.dtype.kind == "f" and np.all(np.isfinite(out)) and np.all(np.mod(out, 1) == 0)
                                  and np.unique(out).size > 2):
        raise ask_for_task(model, config_path, f"version {version} answers whole numbers, classes or counts")
    return "binary"


def frame_of(table, features: list[str]):
    """The features as a DataFrame, each column with the type it holds: numbers as floats, text
    and categories as objects (missing = None/NaN), booleans as bool when none is missing."""
    import pandas as pd  # ~0.3 s; loaded by the data source already

    cols = {}
    for name in features:
        values = np.asarray(table.data[name])
        if values.dtype == object:
            present = [v for v in values.tolist() if v is not None and v == v]
            if present and len(present) == values.size and all(isinstance(v, (bool, np.bool_)) for v in present):
                values = values.astype(bool)
        cols[name] = values
    return pd.DataFrame(cols, columns=list(features))


def _predict_task(loaded, frame, task: str, model: str, version: str, source: str):
    """(output, classes): the task's answer through PredictsTask, else through predict()."""
    try:
        if isinstance(loaded, PredictsTask):
            out = np.asarray(loaded.predict_task(frame))
            classes = loaded.classes
        elif task == "regression":
            numeric = frame.apply(lambda s: s.dtype.kind in "fiub")
            if not numeric.all():
                bad = [c for c, ok in numeric.items() if not ok][0]
                raise BadInputError(f"{source}: {bad}: text feature; this model format takes numbers only")
            out = np.asarray(loaded.predict(frame.to_numpy(dtype=float), list(frame.columns)), dtype=float).reshape(-1)
            classes = None
        else:
            raise BadInputError(f"{model} version {version}: this model format answers one score per row; a "
                                f"multi-class gate needs class probabilities (an MLflow model gives them)")
    except BadInputError:
        raise
    except Exception as exc:  # the model's own failure, named, as bad input (exit 2)
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise BadInputError(f"{model} version {version}: prediction on {source} failed "
                            f"({type(exc).__name__}: {text[:200]})") from None
    if out.shape[0] != len(frame):
        raise BadInputError(f"{model} version {version}: {out.shape[0]} predictions for {len(frame)} rows")
    if task == "regression":
        if out.ndim != 1:
            raise BadInputError(f"{model} version {version}: a regression answered shape {tuple(out.shape)}, "
                                "not one value per row")
        out = out.astype(float)
    return out, classes


def _labels(table, label: str, task: str) -> np.ndarray:
    values = np.asarray(table.data[label])
    missing = gates._missing_mask(values)
    if missing.any():
        raise BadInputError(f"{table.source}: {label}: missing label (row {int(np.argmax(missing)) + 1})")
    if task == "regression":
        if values.dtype.kind not in "fiu":
            raise BadInputError(f"{table.source}: {label}: not numeric; a regression's label is a number")
        return values.astype(float)
    return values


def evaluate_version_on_data(ws, policy: gates.GatePolicy, cfg: Mapping[str, Any], model: str, task: str,
                             candidate_mv, baseline_mv, registry, tmp: Path, cand_model, test=None):
    """A regression or multi-class version against production on the test set."""
    version = candidate_mv.version
    baseline_version = baseline_mv.version if baseline_mv is not None else None
    label = cfg.get("label") or "label"
    test_ref = cfg["test_data"]
    if test is None:
        test = load_split(ws, test_ref, label, model, version)
    y = _labels(test, label, task)
    features = gates._features_of(cand_model, test, label, model, version)
    frame = frame_of(test, features)
    cand_out, cand_classes = _predict_task(cand_model, frame, task, model, version, test.source)
    base_out = base_classes = base_model = base_frame = None
    if baseline_mv is not None:
        base_model = gates._load_version_model(ws, registry, model, baseline_mv, cfg, tmp / "baseline")
        base_features = gates._features_of(base_model, test, label, model, baseline_version)
        base_frame = frame_of(test, base_features)
        base_out, base_classes = _predict_task(base_model, base_frame, task, model, baseline_version, test.source)
    data = TaskPredictions(task, y, cand_out, base_out, dict(test.data), test.source, cand_classes, base_classes,
                           names=(label, f"{model} version {version}", f"{model} version {baseline_version}"))
    evaluation = evaluate_task_predictions(
        policy, data, model=model, candidate_name=version, baseline_name=baseline_version,
        extra_candidate=candidate_mv.metrics, extra_baseline=baseline_mv.metrics if baseline_mv is not None else None)
    report = evaluation.report
    if policy.sanity and base_out is not None:
        ref_c, ref_b, ref_y, where = cand_out, base_out, y, f"test ({test_ref})"
        golden_ref = cfg.get("golden_data")
        if golden_ref and policy.sanity["reference"] == "golden":
            golden = load_split(ws, golden_ref, label, model, version, "golden")
            ref_y = _labels(golden, label, task)
            ref_c, _ = _predict_task(cand_model, frame_of(golden, features), task, model, version, golden.source)
            ref_b, _ = _predict_task(base_model, frame_of(golden, list(base_frame.columns)), task, model,
                                     baseline_version, golden.source)
            where = f"golden ({golden_ref})"
        # the built-in limit (0.1) is a score's; a task's own default applies unless the policy set one
        limit = (policy.sanity["max_mean_abs_score_diff"] if "sanity" in policy.raw
                 else SANITY_DEFAULTS[task])
        if task == "regression":
            report.checks += regression.sanity_check(limit, ref_c, ref_b, ref_y, where)
        elif ref_c.ndim == 2 and ref_b.ndim == 2 and list(cand_classes or []) == list(base_classes or []):
            report.checks += multiclass.sanity_check(limit, ref_c, ref_b, where)
        else:
            report.checks += multiclass.sanity_check(limit, _labels_of(ref_c, cand_classes).astype(str),
                                                     _labels_of(ref_b, base_classes).astype(str), where)
    report.checks += robustness_checks(policy, lambda f: _predict_task(cand_model, f, task, model, version,
                                                                       test.source)[0], frame, task, y)
    out = gates.VersionEvaluation(report, features, candidate_metrics=evaluation.candidate_metrics,
                                  baseline_metrics=evaluation.baseline_metrics, data_source=test.source)
    out.task = task
    out.task_details = {**evaluation.details, "y_true": y, "candidate": cand_out, "baseline": base_out,
                        "candidate_classes": cand_classes, "baseline_classes": base_classes}
    return out


def load_split(ws, ref: str, label: str, model: str, version: str, what: str = "test"):
    table = ws.load_table(ref, model=model, version=version)
    if table.rows == 0:
        raise BadInputError(f"{table.source}: no rows in the {what} set")
    if label not in table.columns:
        raise BadInputError(f"{table.source}: {label}: no label column in the {what} set "
                            f"(models.{model}.label in {ws.config_path})")
    return table


def robustness_checks(policy: gates.GatePolicy, predict, frame, task: str, y_true) -> list[GateCheck]:
    """The model on a missing value, an empty batch, extreme numbers and the same rows twice,
    on a DataFrame of mixed types; class collapse for a classifier."""
    cfg = policy.robustness
    if not cfg:
        return []
    out: list[GateCheck] = []
    sample = frame.iloc[: min(len(frame), 64)].reset_index(drop=True)

    def add(name, passed, detail, value=None, extra=None):
        out.append(GateCheck(f"robustness_{name}", "robustness", bool(passed), value, None, None, detail, extra or {}))

    def attempt(fn):
        try:
            return np.asarray(fn()), None
        except Exception as exc:  # the check reports the model's failure, it does not crash the gate
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"

    def finite(a) -> bool:
        return a is not None and a.dtype.kind in "fiub" and bool(np.all(np.isfinite(a.astype(float))))

    clean, err = attempt(lambda: predict(sample))
    if clean is None:
        add("inference", False, f"the model fails on {len(sample)} reference rows: {err}")
        return out
    poisoned = sample.copy()
    first = poisoned.columns[0]
    poisoned[first] = poisoned[first].astype(object) if poisoned[first].dtype.kind in "bO" else poisoned[first]
    poisoned.loc[0, first] = None if poisoned[first].dtype == object else np.nan
    scores, err = attempt(lambda: predict(poisoned))
    if scores is None:
        add("nan_input", cfg["nan_policy"] == "isolate", f"a missing {first} raises {err}")
    else:
        others_same = bool(np.array_equal(scores[1:], clean[1:]))
        row_ok = finite(scores[:1]) if scores.dtype.kind in "fiub" else True
        passed = others_same and (row_ok or cfg["nan_policy"] == "isolate")
        add("nan_input", passed, ("other rows unchanged" if others_same else "a missing value in one row changed "
                                  "other rows' predictions") + ("; the row with it predicts a finite answer" if row_ok
                                                                else "; the row with it predicts NaN"),
            extra={"nan_row_finite": row_ok, "others_unchanged": others_same})
    empty, err = attempt(lambda: predict(sample.iloc[:0]))
    add("empty_batch", empty is not None and empty.shape[0] == 0, "an empty batch returns no predictions"
        if empty is not None and empty.shape[0] == 0 else f"an empty batch gives {err or empty.shape}")
    numeric = [c for c in sample.columns if sample[c].dtype.kind in "fiu"]
    if numeric:
        big = cfg["extreme_value"]
        extreme = sample.iloc[:2].copy()
        for c in numeric:
            extreme[c] = np.array([big, -big], dtype=float)[: len(extreme)]
        got, err = attempt(lambda: predict(extreme))
        ok = got is not None and (finite(got) if got.dtype.kind in "fiub" else True)
        add("extreme_input", ok, f"rows of ±{big:g} in the numeric features answer finite values" if ok
            else f"rows of ±{big:g} give {err or got}")
    again, err = attempt(lambda: predict(sample))
    same = again is not None and bool(np.array_equal(again, clean))
    add("deterministic", same, "the same rows twice give identical predictions" if same
        else f"the same rows twice differ ({err or 'different values'})")
    if task == "multiclass" and cfg["require_all_classes"]:
        full, err = attempt(lambda: predict(frame))
        if full is not None:
            predicted = full.argmax(axis=1) if full.ndim == 2 else full
            n_pred = np.unique(predicted.astype(str) if predicted.dtype == object else predicted).size
            n_true = np.unique(np.asarray(y_true).astype(str)).size
            add("class_collapse", n_pred >= n_true, f"predicts {n_pred} distinct classes on {len(frame)} rows "
                f"({n_true} in the truth)", value=float(n_pred))
    return out
