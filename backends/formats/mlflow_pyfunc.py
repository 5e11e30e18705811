"""Any MLflow model folder (one holding an `MLmodel` file), through mlflow.pyfunc.

sklearn classifiers are loaded through their own flavor so that the score is predict_proba's
P(y=1), not pyfunc's predicted label. Served by MLflow's scoring server (`/invocations`), except
an sklearn classifier whose pyfunc would answer something else than predict_proba (a plain
`mlflow.sklearn.log_model` answers predict()'s 0/1 labels): mrc's own model server serves that
one through load(), so the served score is the gated one (see serve_argv).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from backends.base import BadInputError
from backends.formats._inspect import option_features
from backends.formats._scores import ordered, task_of, to_scores, torch_output_kind
from backends.formats.torch_mlp import _first_line


def model_folder(path: str) -> str:
    return os.path.dirname(path) if os.path.basename(path) == "MLmodel" else path


class MlflowModel:
    def __init__(self, model, proba: bool, features: list[str] | None, dtypes: dict[str, Any],
                 options: dict[str, Any], where: str, flavors: tuple[str, ...] = ()):
        self.model = model
        self.proba = proba  # an sklearn estimator's predict_proba, else pyfunc predict
        self.features = features
        self.dtypes = dtypes
        self.tensor_dtype = dtypes.get("")  # "" -> the numpy dtype of a tensor-based signature
        self.options = options
        self.where = where
        self.output = None  # logits or probabilities, when the flavor lets us look (pytorch)
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
        return to_scores(out, self.options, self.where, self.output)


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
        try:
            if "sklearn" in (meta.flavors or {}) and task_of(options) == "binary":
                import mlflow.sklearn  # mlflow: ~1.5 s

                estimator = mlflow.sklearn.load_model(folder)
                if hasattr(estimator, "predict_proba"):
                    fitted_on = [str(n) for n in getattr(estimator, "feature_names_in_", [])]
                    return MlflowModel(estimator, True, features or fitted_on or None, dtypes, options, folder)
            import mlflow.pyfunc  # mlflow: ~1.5 s

            model = mlflow.pyfunc.load_model(folder)
        except BadInputError:
            raise
        except Exception as exc:  # a missing flavor library, unpickling errors …
            raise BadInputError(f"{folder}: the MLflow model does not load ({_first_line(exc)})") from None
        return MlflowModel(model, False, features, dtypes, options, folder, tuple(meta.flavors or ()))

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


def gated_with_predict_proba(folder: str, options: dict[str, Any]) -> bool:
    """True when load() scores with the sklearn flavor's predict_proba (a binary task, an sklearn
    flavor) but the pyfunc flavor MLflow serves with has another predict_fn ("predict" when the
    team logged none). Read from the MLmodel alone: the estimator is not unpickled here, so an
    estimator without predict_proba (LinearSVC) is served by mrc too, with the labels it is gated on."""
    if task_of(options) != "binary":
        return False
    try:
        import yaml

        with open(os.path.join(folder, "MLmodel")) as fh:
            flavors = (yaml.safe_load(fh) or {}).get("flavors") or {}
    except Exception:  # no readable MLmodel (or no PyYAML): MLflow's server will say why
        return False
    if not isinstance(flavors, dict) or "sklearn" not in flavors:
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
