"""Optional abilities of a backend or a loaded model, each a small Protocol: callers test
`isinstance(x, Protocol)` (runtime-checkable) instead of probing attributes one by one."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PredictsTask(Protocol):
    """A loaded model that answers in its task's own shape, on a table of mixed-type columns.

    `task`: "binary" | "regression" | "multiclass" as the artifact says it (an sklearn,
    XGBoost or LightGBM estimator knows), or None when it does not say (a PythonModel).
    `classes`: the class labels of predict_task's columns for a classifier, else None.
    """

    task: str | None
    classes: list[Any] | None

    def predict_task(self, frame: Any) -> Any:
        """frame: a pandas DataFrame with the model's feature columns, of any type (text,
        categories, booleans, missing values). Returns a numpy array: (n,) values for a
        regression, (n, k) class probabilities (columns in `classes` order) or (n,) predicted
        labels for a classifier."""
        ...
