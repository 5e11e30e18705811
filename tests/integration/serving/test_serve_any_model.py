"""`mrc serve-models`, `mrc load` and `mrc drill` on models the project did not make, built here
with the plain libraries only:

- an sklearn pipeline logged with the plain MLflow client into the real MLflow server, served by
  MLflow's own scoring server (`mlflow models serve`) behind mrc's router;
- a TorchScript `model.pt` and an ONNX `model.onnx` written with plain boto3 in the seed's bucket
  layout on SeaweedFS, served by mrc's model server.

Predictions through the router must equal the plain library's own; faults, 503s and `--stop`
must behave as on mrc's own models.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from backends.support.procs import group_alive
from tests.support.cli import run_mrc
from tests.support.remote import remote_env, unique
from tests.support.serving import add_model_table, http_json, running, seed_bucket, served_pids, write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def mrc(*args, root: Path):
    return run_mrc(*args, "--workspace", str(root), env=remote_env(), timeout=600)


def stop_and_check(root: Path, model: str) -> None:
    pids = served_pids(root)
    assert pids
    result = mrc("serve-models", model, "--stop", root=root)
    assert result.returncode == 0, result.stderr
    assert not [p for p in pids if running(p) or group_alive(p)]  # nothing left, children included


def predict(port: int, rows, columns, key: str = "k") -> dict:
    status, body = http_json(port, "POST", "/predict", {"rows": rows, "columns": columns, "key": key}, timeout=60)
    assert status == 200, body
    return body


def test_mlflow_sklearn_model_served_by_mlflow_behind_the_router(mlflow_server, mlflow_workspace, cancer, tmp_path,
                                                                 cleanup_serving):
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root, _ = mlflow_workspace
    cleanup_serving(root)
    names, X, y = cancer
    frame = pd.DataFrame(X, columns=names)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame, y)
    name = unique("cancer-sk")
    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        mlflow.set_experiment(unique("serving"))
        with mlflow.start_run():
            mlflow.sklearn.log_model(pipe, name="model", registered_model_name=name,
                                     signature=infer_signature(frame, pipe.predict_proba(frame)),
                                     pyfunc_predict_fn="predict_proba")
    finally:
        mlflow.set_tracking_uri("")
    test_csv = write_csv(tmp_path / "test.csv", names, X[:120], y[:120])
    add_model_table(root, name, test_data=str(test_csv), label="label")

    result = mrc("serve-models", name, "--versions", "1", "--json", root=root)
    assert result.returncode == 0, result.stderr
    served = result.json()
    assert served["formats"]["1"] == {"format": "mlflow-pyfunc", "protocol": "mlflow-invocations"}
    port = int(served["router"].rsplit(":", 1)[1])
    assert served["split"]["weights"] == {"1": 100}

    rows = X[200:230]
    body = predict(port, rows.tolist(), names)
    assert body["version"] == "1"
    np.testing.assert_allclose(body["predictions"], pipe.predict_proba(pd.DataFrame(rows, columns=names))[:, 1],
                               rtol=1e-6, atol=1e-9)

    # `mrc load`: rows of the CSV test set through the router, labels after
    result = mrc("load", name, "--rate", "20", "--duration", "2", "--label-delay", "0.1", "--json", root=root)
    assert result.returncode == 0, result.stderr
    counts = result.json()
    assert counts["sent"] >= 10 and counts["ok"] == counts["sent"] and counts["errors"] == 0

    from console.workspace import Workspace

    ws = Workspace.open(root)
    window = ws.metrics().health(name, "1", 0, time.time() + 60)
    assert window.requests == counts["sent"] + 1 and window.errors == 0
    assert window.labelled == counts["sent"] and window.online_accuracy > 0.8

    # a drill on a server that is not ours: applied at the router, counted as errors
    result = mrc("drill", name, "1", "--error-rate", "1", "--json", root=root)
    assert result.returncode == 0, result.stderr
    assert result.json()["at"] == "router"
    result = mrc("load", name, "--rate", "20", "--duration", "1", "--json", root=root)
    assert result.returncode == 0, result.stderr
    failed = result.json()
    assert failed["errors"] == failed["sent"] > 0
    window = ws.metrics().health(name, "1", 0, time.time() + 60)
    assert window.errors == failed["sent"]
    assert mrc("drill", name, "1", "--off", root=root).returncode == 0
    predict(port, rows[:2].tolist(), names)

    # traffic sent to a version nobody serves: a logged 503, an error in health()
    ws.traffic().rollback(name, "7")
    status, body = http_json(port, "POST", "/predict", {"rows": rows[:1].tolist(), "columns": names})
    assert (status, body["error"]) == (503, "no backend for 7")
    window = ws.metrics().health(name, "7", 0, time.time() + 60)
    assert (window.requests, window.errors) == (1, 1)

    stop_and_check(root, name)


def test_seed_bucket_torchscript_and_onnx_served_by_mrc(s3_server, s3_workspace, cancer, tmp_path, cleanup_serving):
    import onnxruntime
    import torch

    root, registry = s3_workspace
    cleanup_serving(root)
    names, X, y = cancer
    model, scripted, onnx_path = seed_bucket(s3_server, registry, root, tmp_path, cancer)

    result = mrc("serve-models", model, "--json", root=root)  # production and candidate
    assert result.returncode == 0, result.stderr
    served = result.json()
    assert served["formats"] == {"v1-ts": {"format": "torchscript", "protocol": "mrc"},
                                 "v2-onnx": {"format": "onnx", "protocol": "mrc"}}
    assert served["split"]["weights"] == {"v1-ts": 100}
    port = int(served["router"].rsplit(":", 1)[1])

    rows = X[300:340]
    body = predict(port, rows.tolist(), names)
    with torch.no_grad():
        expected_ts = scripted(torch.tensor(rows, dtype=torch.float32)).numpy()
    assert body["version"] == "v1-ts"
    np.testing.assert_allclose(body["predictions"], expected_ts, rtol=1e-5, atol=1e-6)

    from console.workspace import Workspace

    traffic = Workspace.open(root).traffic()
    split = traffic.get_split(model)
    traffic.set_split(model, {"v2-onnx": 100}, expected_revision=split.revision)
    body = predict(port, rows.tolist(), names)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {session.get_inputs()[0].name: rows.astype(np.float32)})))
    assert body["version"] == "v2-onnx"
    np.testing.assert_allclose(body["predictions"], outputs["probabilities"][:, 1], rtol=1e-5, atol=1e-6)

    # a drill on our own server: the server takes it
    result = mrc("drill", model, "v2-onnx", "--error-rate", "1", "--json", root=root)
    assert result.returncode == 0, result.stderr
    assert "at" not in result.json()
    result = mrc("load", model, "--rate", "20", "--duration", "1", "--json", root=root)
    assert result.returncode == 0, result.stderr
    counts = result.json()
    assert counts["errors"] == counts["sent"] > 0
    assert mrc("drill", model, "v2-onnx", "--off", root=root).returncode == 0
    result = mrc("load", model, "--rate", "20", "--duration", "1", "--json", root=root)
    counts = result.json()
    assert counts["ok"] == counts["sent"] > 0

    stop_and_check(root, model)
