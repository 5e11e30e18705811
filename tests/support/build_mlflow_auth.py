"""Register sklearn models in an MLflow server as the logged-in user, with the plain MLflow API only.

    MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD=… \
        python tests/support/build_mlflow_auth.py TRACKING_URI NAME:COUNT [NAME:COUNT …]  -> JSON on stdout

Each NAME gets COUNT versions (LogisticRegression with C=0.5, 2.0, …, mlflow.sklearn.log_model with
registered_model_name). Its own process, so MLflow's fluent state never leaks into the tests.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def main() -> int:
    tracking_uri, names = sys.argv[1], sys.argv[2:]
    os.chdir(tempfile.mkdtemp(prefix="mrc-mlauth-build-"))
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # stdout carries the JSON
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    rng = np.random.RandomState(11)
    X = rng.rand(300, 4)
    y = (X[:, 0] + 0.2 * rng.rand(300) > 0.6).astype(int)
    out: dict = {}
    for spec in names:
        name, count = spec.rsplit(":", 1)
        mlflow.set_experiment(f"{name}-training")
        versions = []
        for c in (0.5, 2.0, 8.0)[:int(count)]:
            with mlflow.start_run() as run:
                model = LogisticRegression(C=c).fit(X, y)
                mlflow.log_param("C", c)
                mlflow.log_metric("auc_roc", 0.9)
                info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                                pip_requirements=["scikit-learn"])  # no slow inference
            versions.append({"version": str(info.registered_model_version), "run_id": run.info.run_id,
                             "run_user": mlflow.get_run(run.info.run_id).info.user_id})
        out[name] = versions
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
