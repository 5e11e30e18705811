"""Any MLflow model folder (one holding an `MLmodel` file), through mlflow.pyfunc.

sklearn classifiers are loaded through their own flavor so that the score is predict_proba's
P(y=1), not pyfunc's predicted label. Served by MLflow's scoring server (`/invocations`), except
an sklearn classifier whose pyfunc would answer something else than predict_proba (a plain
`mlflow.sklearn.log_model` answers predict()'s 0/1 labels): mrc's own model server serves that
one through load(), so the served score is the gated one (see serve_argv).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import numpy as np

from backends.base import BadInputError
from backends.formats._inspect import option_features
from backends.formats._scores import class_probabilities, ordered, task_of, to_scores, torch_output_kind
from backends.formats.torch_mlp import _first_line


def model_folder(path: str) -> str:
    return os.path.dirname(path) if os.path.basename(path) == "MLmodel" else path


class MlflowModel:
    def __init__(self, model, proba: bool, features: list[str] | None, dtypes: dict[str, Any],
                 options: dict[str, Any], where: str, flavors: tuple[str, ...] = (), *,
                 task: str | None = None, estimator: Any = None):
        self.model = model
        self.proba = proba  # an sklearn estimator's predict_proba, else pyfunc predict
        self.features = features
        self.dtypes = dtypes
        self.tensor_dtype = dtypes.get("")  # "" -> the numpy dtype of a tensor-based signature
        self.options = options
        self.where = where
        self.output = None  # logits or probabilities, when the flavor lets us look (pytorch)
        # PredictsTask (backends/capabilities.py): the task as declared or as the estimator says
        self.task = task
        self.estimator = estimator  # an sklearn-API estimator (sklearn, xgboost, lightgbm flavours)
        classes = getattr(estimator, "classes_", None) if estimator is not None else None
        self.classes = [_plain(c) for c in classes] if classes is not None else None
        if "pytorch" in flavors:
            try:
                self.output = torch_output_kind(model.get_raw_model())
            except Exception:  # no raw model to look at: the batch decides
                self.output = None

    def predict(self, rows, columns):
        import pandas as pd  # pandas: ~0.4 s

        data = ordered(rows, columns, self.features, self.where, dtype="float64")
        if len(data) == 0:  # sklearn refuses 0 rows; no rows means no scores, not a broken model
            return np.empty(0, dtype=np.float64)
        if self.tensor_dtype is not None:  # a tensor signature: the model takes an array, not a frame
            frame = data.astype(self.tensor_dtype)
        else:
            frame = pd.DataFrame(data, columns=self.features or list(columns))
            for name, dtype in self.dtypes.items():
                if name in frame:
                    frame[name] = frame[name].astype(dtype)
        if self.proba and not hasattr(self.model, "feature_names_in_") and hasattr(frame, "to_numpy"):
            frame = frame.to_numpy()  # an estimator fitted on an array: names would only warn
        try:
            out = self.model.predict_proba(frame) if self.proba else self.model.predict(frame)
        except Exception as exc:  # a schema mismatch, the model's own error
            raise BadInputError(f"{self.where}: the MLflow model refused the batch ({_first_line(exc)})") from None
        if hasattr(out, "to_numpy"):
            out = out.to_numpy()
        options = self.options if not self.task else {**self.options, "task": self.task}
        return to_scores(out, options, self.where, self.output)

    def predict_task(self, frame):
        """The task's own answer on a DataFrame of any column types (PredictsTask)."""
        if len(frame) == 0:
            k = len(self.classes) if self.task == "multiclass" and self.classes else 0
            return np.empty((0, k)) if k else np.empty(0)
        est = self.estimator
        try:
            if est is not None:
                data = frame if hasattr(est, "feature_names_in_") or not _all_numeric(frame) else frame.to_numpy()
                if self.task in ("binary", "multiclass") and hasattr(est, "predict_proba"):
                    return np.asarray(est.predict_proba(data), dtype=np.float64)
                out = est.predict(data)
            elif self.tensor_dtype is not None:  # a tensor signature (pytorch): an array, not a frame
                out = self.model.predict(frame.to_numpy().astype(self.tensor_dtype))
            else:
                out = self.model.predict(frame)
        except Exception as exc:  # a schema mismatch, the model's own error
            raise BadInputError(f"{self.where}: the MLflow model refused the batch ({_first_line(exc)})") from None
        if hasattr(out, "columns") and self.classes is None and getattr(out, "ndim", 1) == 2 and out.shape[1] > 1:
            self.classes = [_plain(c) for c in out.columns]
        out = np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim == 2 and self.task != "regression":
            if self.classes is None or len(self.classes) != out.shape[1]:
                self.classes = list(range(out.shape[1]))
            return class_probabilities(out, str(self.options.get("output") or self.output or ""))
        if self.task == "regression":
            return out.astype(np.float64)
        return out


class MlflowPyfuncFormat:
    name = "mlflow-pyfunc"
    serve_protocol = "mlflow-invocations"

    def sniff(self, path: str) -> bool:
        folder = model_folder(path)
        return os.path.isdir(folder) and os.path.isfile(os.path.join(folder, "MLmodel"))

    def load(self, path: str, options: dict[str, Any]) -> MlflowModel:
        folder = model_folder(path)
        if not self.sniff(folder):
            raise BadInputError(f"{path}: not an MLflow model folder (no MLmodel file)")
        _quiet_mlflow()
        try:
            from mlflow.models import Model  # mlflow: ~1.5 s

            meta = Model.load(os.path.join(folder, "MLmodel"))
        except Exception as exc:  # a broken YAML file
            raise BadInputError(f"{folder}/MLmodel: not a readable MLflow model ({_first_line(exc)})") from None
        features, dtypes = _signature_columns(meta)
        features = option_features(options) or features
        flavors = meta.flavors or {}
        declared = task_of(options) if options.get("task") else None
        try:
            # sklearn, XGBoost and LightGBM flavours load as their sklearn-API estimator: it says
            # its task (regressor, 2 or more classes) and answers predict_proba, where pyfunc
            # would answer predicted labels
            estimator = _native_estimator(folder, flavors)
            task = declared or estimator_task(estimator)
            if estimator is not None and (task in ("regression", "multiclass")
                                          or (task == "binary" and hasattr(estimator, "predict_proba"))):
                fitted_on = [str(n) for n in getattr(estimator, "feature_names_in_", [])]
                return MlflowModel(estimator, task == "binary", features or fitted_on or None, dtypes, options, folder,
                                   task=task, estimator=estimator)
            import mlflow.pyfunc  # mlflow: ~1.5 s

            model = mlflow.pyfunc.load_model(folder)
        except BadInputError:
            raise
        except Exception as exc:  # a missing flavor library, unpickling errors …
            raise BadInputError(f"{folder}: the MLflow model does not load ({_first_line(exc)})") from None
        return MlflowModel(model, False, features, dtypes, options, folder, tuple(flavors), task=task)

    def serve_argv(self, path: str, host: str, port: int, options: dict[str, Any]) -> list[str] | None:
        declared_logits = str(options.get("output") or "").lower().startswith("logit")
        if declared_logits or gated_with_predict_proba(model_folder(path), options):
            # MLflow's server would answer pyfunc's predict_fn (labels), not the P(y=1) the gates
            # judged: None = mrc's own server, which scores through load() like the gates do. The
            # registered artifact is served as it is (rewriting its MLmodel would change its digest).
            # Declared logits likewise: MLflow's server would answer them raw, the gates a sigmoid of them.
            return None
        # `mlflow models serve` execs `uvicorn` found on PATH: put this interpreter's bin first,
        # so a venv that is not activated still serves with its own uvicorn.
        bin_dir = os.path.dirname(sys.executable)
        search = os.pathsep.join([bin_dir, os.environ.get("PATH", os.defpath)])
        return ["env", f"PATH={search}", sys.executable, "-m", "mlflow", "models", "serve", "-m", model_folder(path),
                "--env-manager", "local", "-h", host, "-p", str(port)]


NATIVE_FLAVORS = ("sklearn", "xgboost", "lightgbm")


def _native_estimator(folder: str, flavors: dict[str, Any]):
    """The flavour's own model when it has the sklearn API (fit/predict), else None."""
    for flavor in NATIVE_FLAVORS:
        if flavor not in flavors:
            continue
        loader = importlib.import_module(f"mlflow.{flavor}")  # the flavour's library: sklearn ~1 s, xgboost ~0.5 s
        model = loader.load_model(folder)
        return model if hasattr(model, "predict") and hasattr(model, "fit") else None
    return None


def estimator_task(estimator) -> str | None:
    """regression / binary / multiclass as an sklearn-API estimator says, else None."""
    if estimator is None:
        return None
    from sklearn.base import is_classifier, is_regressor  # loaded with the flavour already

    if is_regressor(estimator):
        return "regression"
    classes = getattr(estimator, "classes_", None)
    if classes is not None and (is_classifier(estimator) or hasattr(estimator, "predict_proba")):
        return "multiclass" if len(classes) > 2 else "binary"
    return None


def _all_numeric(frame) -> bool:
    return all(dtype.kind in "fiub" for dtype in frame.dtypes)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def gated_with_predict_proba(folder: str, options: dict[str, Any]) -> bool:
    """True when load() scores with the estimator's predict_proba (a classifier of the sklearn,
    XGBoost or LightGBM flavour) but the pyfunc flavor MLflow serves with has another predict_fn ("predict" when the
    team logged none). Read from the MLmodel alone: the estimator is not unpickled here, so an
    estimator without predict_proba (LinearSVC) is served by mrc too, with the labels it is gated on."""
    if options.get("task") and task_of(options) == "regression":
        return False  # pyfunc's predict is the estimator's predict: the same value either way
    try:
        import yaml

        with open(os.path.join(folder, "MLmodel")) as fh:
            flavors = (yaml.safe_load(fh) or {}).get("flavors") or {}
    except Exception:  # no readable MLmodel (or no PyYAML): MLflow's server will say why
        return False
    if not isinstance(flavors, dict) or not any(f in flavors for f in NATIVE_FLAVORS):
        return False
    pyfunc = flavors.get("python_function")
    return not (isinstance(pyfunc, dict) and pyfunc.get("predict_fn") == "predict_proba")


def _signature_columns(meta) -> tuple[list[str] | None, dict[str, Any]]:
    """Column names and their numpy dtypes from a column-based signature; for a tensor-based one
    (None, {"": dtype}); (None, {}) when there is no signature."""
    signature = getattr(meta, "signature", None)
    inputs = getattr(signature, "inputs", None)
    if inputs is None:
        return None, {}
    if inputs.is_tensor_spec():
        types = inputs.numpy_types()
        return None, ({"": types[0]} if len(types) == 1 else {})
    if not inputs.has_input_names():
        return None, {}
    names, dtypes = [], {}
    for spec in inputs.inputs:
        names.append(spec.name)
        try:
            dtypes[spec.name] = spec.type.to_numpy()
        except (AttributeError, TypeError, ValueError):
            pass
    return names, dtypes


def _quiet_mlflow() -> None:
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
