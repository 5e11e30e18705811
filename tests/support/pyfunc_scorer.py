"""An MLflow 3 "model from code": a plain PythonModel a team might write around a pickled
scikit-learn pipeline. Logged by tests/support/build_mlflow.py with `python_model=<this file>`;
MLflow copies this file into the model and runs it on load. Nothing here knows mrc."""

import pickle

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class BreastCancerScorer(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["pipeline"], "rb") as fh:
            self.pipeline = pickle.load(fh)

    def predict(self, context, model_input, params=None):
        # P(y=1) as one column, the way such wrappers usually answer
        return np.asarray(self.pipeline.predict_proba(model_input)[:, 1], dtype=float)


mlflow.models.set_model(BreastCancerScorer())
