"""`mrc canary start` on models mrc did not make (a seed bucket: TorchScript in production, an
ONNX candidate): the controller starts what it needs through the same serving path as
`mrc serve-models`; a drilled candidate is rolled back, a healthy one promoted in the bucket."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.cli import REPO, mrc_env, run_mrc
from tests.support.remote import BUCKET, remote_env
from tests.support.serving import kill_group, seed_bucket

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAN = ["--plan", "50,100", "--hold", "1", "--interval", "0.4", "--min-requests", "10", "--max-seconds", "240",
        "--min-detectable", "off"]  # a few dozen requests: no power-aware wait (tests/unit/rollout/test_sequential_*)


def mrc(*args, root):
    return run_mrc(*args, "--workspace", str(root), env=remote_env(), timeout=600)


def background_load(root, model):
    """`mrc load` for as long as the test needs it (killed at the end)."""
    return subprocess.Popen([sys.executable, "-m", "console.cli", "load", model, "--rate", "40", "--duration", "600",
                             "--label-delay", "0.1", "--workspace", str(root)], cwd=str(REPO),
                            env=mrc_env(remote_env()), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def test_canary_on_a_seed_bucket_rolls_back_a_drilled_candidate_then_promotes_it(s3_server, s3_workspace, cancer,
                                                                                tmp_path, cleanup_serving):
    root, registry = s3_workspace
    cleanup_serving(root)
    model, _, _ = seed_bucket(s3_server, registry, root, tmp_path, cancer)
    assert mrc("serve-models", model, root=root).returncode == 0  # the load needs a router to start with
    load = background_load(root, model)
    try:
        assert mrc("drill", model, "v2-onnx", "--error-rate", "0.5", root=root).returncode == 0
        result = mrc("canary", "start", model, "v2-onnx", "--override", "--reason", "seed bucket canary", *PLAN,
                     "--json", root=root)
        assert result.returncode == 1, result.stderr  # rolled back
        state = result.json()
        assert state["status"] == "rolled_back" and "error_rate" in state["reason"]
        split = json.loads((root / "serving" / model / "split.json").read_text())
        assert split["weights"] == [["v1-ts", 100]]

        assert mrc("drill", model, "v2-onnx", "--off", root=root).returncode == 0
        result = mrc("canary", "start", model, "v2-onnx", "--override", "--reason", "seed bucket canary", *PLAN,
                     "--json", root=root)
        assert result.returncode == 0, result.stderr
        assert result.json()["status"] == "promoted"
    finally:
        kill_group(load.pid)
    body = s3_server.client().get_object(Bucket=BUCKET, Key=f"{registry.prefix}models/{model}/production/version.txt")
    assert body["Body"].read().decode().strip() == "v2-onnx"
    assert mrc("serve-models", model, "--stop", root=root).returncode == 0


def test_canary_on_mlflow_models_rolls_back_a_candidate_drilled_at_the_router(mlflow_server, mlflow_workspace, cancer,
                                                                             tmp_path, cleanup_serving):
    """Two sklearn versions logged with the plain MLflow client, both served by MLflow's own
    scoring server; the drill on the candidate happens at mrc's router and the judge sees it."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tests.support.remote import unique
    from tests.support.serving import add_model_table, write_csv

    root, _ = mlflow_workspace
    cleanup_serving(root)
    names, X, y = cancer
    frame = pd.DataFrame(X, columns=names)
    name = unique("canary-sk")
    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        mlflow.set_experiment(unique("canary"))
        for c in (1.0, 0.1):
            pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500)).fit(frame, y)
            with mlflow.start_run():
                mlflow.sklearn.log_model(pipe, name="model", registered_model_name=name,
                                         signature=infer_signature(frame, pipe.predict_proba(frame)),
                                         pyfunc_predict_fn="predict_proba")
    finally:
        mlflow.set_tracking_uri("")
    client = MlflowClient(mlflow_server.url)
    client.set_registered_model_alias(name, "champion", "1")  # production, as mrc reads MLflow
    client.set_registered_model_alias(name, "challenger", "2")  # the candidate
    add_model_table(root, name, test_data=str(write_csv(tmp_path / "test.csv", names, X[:150], y[:150])),
                    label="label")

    result = mrc("serve-models", name, "--json", root=root)
    assert result.returncode == 0, result.stderr
    assert {v: f["protocol"] for v, f in result.json()["formats"].items()} == {"1": "mlflow-invocations",
                                                                               "2": "mlflow-invocations"}
    load = background_load(root, name)
    try:
        drill = mrc("drill", name, "2", "--error-rate", "0.5", "--json", root=root)
        assert drill.returncode == 0 and drill.json()["at"] == "router", drill.stderr
        result = mrc("canary", "start", name, "2", "--override", "--reason", "mlflow canary", *PLAN, "--json",
                     root=root)
        assert result.returncode == 1, result.stderr  # rolled back
        state = result.json()
        assert state["status"] == "rolled_back" and "error_rate" in state["reason"]
    finally:
        kill_group(load.pid)
    split = json.loads((root / "serving" / name / "split.json").read_text())
    assert split["weights"] == [["1", 100]]
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert mrc("serve-models", name, "--stop", root=root).returncode == 0
