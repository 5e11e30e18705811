"""Which task a model does (binary, regression, multiclass), and the gates that follow from it.

The task is decided once per model, in this order: `task = "…"` under [models.X] in mrc.toml;
else what the model says of itself (a format that knows: MLflow's flavour and estimator, the
output's shape); else the names of the metrics the registry recorded (MLflow evaluate's
`r2_score` is a regression's); else one line asking for `task`. The gates, the served path and
the canary all read it from here, so a regression is never scored through a sigmoid in one
place and served raw in another.

Pure logic: no I/O here; the per-task metrics live in regression.py and multiclass.py.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from backends.base import BadInputError

TASKS = ("binary", "regression", "multiclass")
TASK_ALIASES = {"classification": "binary", "binary-classification": "binary", "classifier": "binary",
                "regressor": "regression", "multi-class": "multiclass", "multi_class": "multiclass",
                "multiclass-classification": "multiclass"}


def check_task(value: Any, where: str) -> str:
    """A task name as written by a person, canonical; one line naming `where` when unknown."""
    if not isinstance(value, str) or not value:
        raise BadInputError(f"{where}: must be one of {', '.join(TASKS)}, not {value!r}")
    name = TASK_ALIASES.get(value.strip().lower(), value.strip().lower())
    if name not in TASKS:
        raise BadInputError(f"{where}: unknown task {value!r} (one of {', '.join(TASKS)})")
    return name


# MLflow's `mlflow.evaluate` / `mlflow.models.evaluate` default metric names -> the seed's names.
# Only evaluation names: autolog's `training_*` metrics are scores on the training data, and a
# gate on them would pass an overfitted model, so they are left as they are.
MLFLOW_METRIC_NAMES = {
    "root_mean_squared_error": "rmse",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "r2_score": "r2",
    "max_error": "max_residual",
    "mean_absolute_percentage_error": "mape",
    "accuracy_score": "accuracy",
    "precision_score": "precision",
    "recall_score": "recall",
    "roc_auc": "auc_roc",
    "log_loss": "log_loss",
}
REGRESSION_NAMES = frozenset({"root_mean_squared_error", "mean_squared_error", "mean_absolute_error", "r2_score",
                              "max_error", "mean_absolute_percentage_error", "rmse", "mae", "mse", "r2", "mape"})
CLASSIFICATION_NAMES = frozenset({"accuracy_score", "precision_score", "recall_score", "f1_score", "roc_auc",
                                  "accuracy", "auc_roc", "f1", "precision", "recall", "macro_f1", "weighted_f1"})


def with_seed_names(metrics: Mapping[str, Any], task: str) -> dict[str, Any]:
    """The recorded metrics plus their seed names (a name already there is never overwritten).

    MLflow's `f1_score` is the binary F1 for a binary model and the weighted average over
    classes for a multiclass one (evaluate's default `average="weighted"`), so it maps onto
    `f1` or `weighted_f1` by task; likewise precision and recall.
    """
    out = dict(metrics)
    names = dict(MLFLOW_METRIC_NAMES)
    if task == "multiclass":
        names.update({"f1_score": "weighted_f1", "precision_score": "weighted_precision",
                      "recall_score": "weighted_recall"})
    else:
        names["f1_score"] = "f1"
    for mlflow_name, seed_name in names.items():
        if mlflow_name in metrics and seed_name not in out:
            out[seed_name] = metrics[mlflow_name]
    if "mse" in out and "rmse" not in out and _finite_number(out["mse"]) and out["mse"] >= 0:
        out["rmse"] = math.sqrt(float(out["mse"]))
    return out


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def task_from_metric_names(names: Iterable[str]) -> str | None:
    """regression when the recorded metrics are only error measures, a classification when
    they hold class measures; None when they say nothing (or both)."""
    names = set(names)
    regression, classification = bool(names & REGRESSION_NAMES - {"rmse", "mae"}), bool(names & CLASSIFICATION_NAMES)
    if regression and not classification:
        return "regression"
    return None  # binary or multiclass is told by the model's output, not by metric names


def task_from_output(shape: tuple[int, ...], integral: bool | None = None) -> str | None:
    """What a model's raw output shape says: (n, k≥3) class columns → multiclass; (n, 2) →
    binary; (n,) or (n, 1) of non-integers → regression (integers could be class labels)."""
    if len(shape) == 2 and shape[1] >= 3:
        return "multiclass"
    if len(shape) == 2 and shape[1] == 2:
        return "binary"
    if integral is False and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        return "regression"
    return None


def resolve_task(model: str, config_path: str, cfg: Mapping[str, Any], *, from_model: str | None = None,
                 metric_names: Iterable[str] = ()) -> str | None:
    """The model's task: declared, else from the model, else from metric names; None when
    nothing says (the caller asks for it with ask_for_task, or keeps a binary reading)."""
    if cfg.get("task") is not None:
        return check_task(cfg["task"], f"{config_path}: models.{model}.task")
    if from_model:
        return check_task(from_model, f"{model}: the model's own task")
    guessed = task_from_metric_names(metric_names)
    return guessed


def ask_for_task(model: str, config_path: str, why: str) -> BadInputError:
    return BadInputError(f"{config_path}: models.{model}.task: cannot tell the task ({why}); "
                         f"set task = \"binary\", \"regression\" or \"multiclass\"")


# Per task: the significance metrics the built-in defaults test, and the metric names that are
# meaningful (a policy gating `auc_roc` on a regression names the field and stops).
SIGNIFICANCE_DEFAULTS = {"binary": ["accuracy", "auc_roc", "f1"], "regression": ["mae", "rmse"],
                         "multiclass": ["accuracy"]}
SIGNIFICANCE_KNOWN = {"regression": ("mae", "rmse"), "multiclass": ("accuracy",)}
SLICE_KNOWN = {"regression": ("rmse", "mae"), "multiclass": ("accuracy",)}
BINARY_ONLY = frozenset({"auc_roc", "precision", "recall", "f1", "brier"})

# Directions of the task's own metrics, used when a policy leaves one out of metric_directions.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "mape", "max_residual", "log_loss", "brier"})
