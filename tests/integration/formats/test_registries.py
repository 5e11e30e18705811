"""Artifacts that plain tools put in a registry — the MLflow client (MLflow 3 logged models and
classic run artifacts) and boto3 in the seed's S3 layout — fetched by mrc's registry and loaded
through the format seam, against the real servers of tests/support/servers.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends.base import BadInputError, IntegrityError
from console.plugins import resolve_format
from tests.support.formats import torch_probabilities
from tests.support.remote import BUCKET, mlflow_toml, remote_env, s3_toml, unique, write_workspace

pytestmark = pytest.mark.integration  # starts real servers on 127.0.0.1

REPO = Path(__file__).resolve().parents[3]


def _load(mv, path, X, columns, options=None):
    fmt = resolve_format(mv.artifact.format, path, options or {}, model=mv.model)
    loaded = fmt.load(path, options or {})
    return fmt, loaded, loaded.predict(X, columns)


def _mlflow_registry(tmp_path, server):
    from console.workspace import Workspace

    root = write_workspace(tmp_path / "ws", mlflow_toml(server.url))
    return root, Workspace.open(root).registry()


def half_radius_model():
    """A team's custom pyfunc; defined in a function, so cloudpickle stores it by value (as it
    would a notebook's class) and mlflow is imported only when a test runs."""
    import mlflow.pyfunc

    class HalfRadius(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return 1.0 / (1.0 + np.exp(model_input["mean radius"].to_numpy() - 14.0))

    return HalfRadius()


# -- MLflow ---------------------------------------------------------------------------------------

def test_mlflow3_logged_models_sklearn_and_pytorch_fetch_and_score(mlflow_server, cancer, torch_net, tmp_path):
    import mlflow
    import mlflow.pytorch
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    X, y, columns, clf = cancer
    frame = pd.DataFrame(X, columns=columns)
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment(unique("formats-mlflow3"))
    sk_name, pt_name = unique("sk"), unique("pt")
    with mlflow.start_run():
        mlflow.sklearn.log_model(clf, name="model", registered_model_name=sk_name, pip_requirements=["scikit-learn"],
                                 signature=infer_signature(frame, clf.predict(X)))
        mlflow.log_input(mlflow.data.from_pandas(frame.assign(target=y), source="s3://data/cancer/train.parquet",
                                                 name="cancer-train"), context="training")
    with mlflow.start_run():
        mlflow.pytorch.log_model(torch_net, name="model", registered_model_name=pt_name, pip_requirements=["torch"],
                                 input_example=X[:2].astype(np.float32))
    client = MlflowClient(mlflow_server.url)
    assert client.get_model_version(sk_name, "1").source.startswith("models:/m-")  # an MLflow 3 logged model
    tags_before = dict(client.get_model_version(sk_name, "1").tags)

    _, registry = _mlflow_registry(tmp_path, mlflow_server)
    mv = registry.get_version(sk_name, "1")
    assert mv.artifact.format == "mlflow-pyfunc"
    assert (mv.lineage.data_version, mv.lineage.data_uri) == ("cancer-train", "s3://data/cancer/train.parquet")
    path = registry.fetch_artifact(sk_name, "1", str(tmp_path / "sk"))
    assert (Path(path) / "MLmodel").is_file()
    fmt, loaded, scores = _load(mv, path, X, columns)
    assert fmt.name == "mlflow-pyfunc" and loaded.features == columns
    np.testing.assert_allclose(scores, clf.predict_proba(X)[:, 1], rtol=1e-9)
    assert dict(client.get_model_version(sk_name, "1").tags) == tags_before  # a read wrote nothing

    mv = registry.get_version(pt_name, "1")
    path = registry.fetch_artifact(pt_name, "1", str(tmp_path / "pt"))
    _, _, scores = _load(mv, path, X, columns)
    np.testing.assert_allclose(scores, torch_probabilities(torch_net, X), rtol=1e-5, atol=1e-6)


def test_classic_run_artifacts_runs_uri_and_mlflow_artifacts_uri(mlflow_server, cancer, tmp_path):
    import mlflow
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    X, _, columns, _ = cancer
    mlflow.set_tracking_uri(mlflow_server.url)
    client = MlflowClient(mlflow_server.url)
    experiment = client.create_experiment(unique("formats-classic"))
    run = client.create_run(experiment, tags={"mlflow.source.git.commit": "ab" * 20})
    local = tmp_path / "saved"
    mlflow.pyfunc.save_model(str(local), python_model=half_radius_model(), pip_requirements=["mlflow"])
    client.log_artifacts(run.info.run_id, str(local), "model")
    client.set_terminated(run.info.run_id)
    name = unique("pyfunc")
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

    _, registry = _mlflow_registry(tmp_path, mlflow_server)
    expected = 1.0 / (1.0 + np.exp(X[:, 0] - 14.0))
    for version, prefix in (("1", "runs:/"), ("2", "mlflow-artifacts:/")):
        mv = registry.get_version(name, version)
        assert mv.artifact.uri.startswith(prefix) and mv.artifact.format == "mlflow-pyfunc"
        assert mv.lineage.code_commit == "ab" * 20
        path = registry.fetch_artifact(name, version, str(tmp_path / f"v{version}"))
        assert (Path(path) / "MLmodel").is_file()
        _, _, scores = _load(mv, path, X, columns)
        np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_mrc_single_file_artifacts_in_mlflow_still_fetch_and_verify(mlflow_server, cancer, tmp_path):
    import torch
    from torch import nn

    from backends.base import Lineage

    X, _, columns, _ = cancer
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(30, 4), nn.ReLU(), nn.Dropout(0.0), nn.Linear(4, 1))
    state = {"mean": torch.zeros(30), "std": torch.full((30,), 100.0), **{f"net.{k}": v for k, v in net.state_dict().items()}}
    artifact = tmp_path / "model.pt"
    torch.save({"format": "torch-mlp-v1", "arch": {"n_features": 30, "hidden": 4, "features": columns},
                "state_dict": state}, str(artifact))
    _, registry = _mlflow_registry(tmp_path, mlflow_server)
    model = unique("mrcmlp")
    mv = registry.register_version(model, str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage(code_commit="c" * 40))
    path = registry.fetch_artifact(model, mv.version, str(tmp_path / "fetched"))
    assert Path(path).read_bytes() == artifact.read_bytes()
    fmt, loaded, scores = _load(mv, path, X, columns)
    assert fmt.name == "torch-mlp-v1" and loaded.features == columns
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.tensor(X / 100.0, dtype=torch.float32))).squeeze(-1).numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


FETCH_SCRIPT = """
import sys
from console.workspace import Workspace
registry = Workspace.open(sys.argv[1]).registry()
path = registry.fetch_artifact(sys.argv[2], "1", sys.argv[3])
from console.plugins import resolve_format
mv = registry.get_version(sys.argv[2], "1")
resolve_format(mv.artifact.format, path, {}).load(path, {})
print(path)
"""


def test_an_mlflow_workspace_leaves_nothing_in_the_working_directory(mlflow_server, cancer, tmp_path):
    """Issue 10 item 7: no mlflow.db / mlruns/ where mrc was started (a fresh process, no
    MLFLOW_TRACKING_URI in its environment, so MLflow's defaults would point at the cwd)."""
    import mlflow
    import mlflow.sklearn

    X, _, _, clf = cancer
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment(unique("formats-cwd"))
    name = unique("cwd")
    with mlflow.start_run():
        mlflow.sklearn.log_model(clf, name="model", registered_model_name=name, pip_requirements=["scikit-learn"])
    root = write_workspace(tmp_path / "ws", mlflow_toml(mlflow_server.url))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(remote_env(), PYTHONPATH=str(REPO), MRC_ACTOR="tester")
    versions = subprocess.run([sys.executable, "-m", "console.cli", "versions", name, "--json", "--workspace", str(root)],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert versions.returncode == 0, versions.stderr
    assert json.loads(versions.stdout)["versions"][0]["artifact"]["format"] == "mlflow-pyfunc"
    fetched = subprocess.run([sys.executable, "-c", FETCH_SCRIPT, str(root), name, str(tmp_path / "dest")],
                             cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert fetched.returncode == 0, fetched.stderr
    assert (Path(fetched.stdout.strip()) / "MLmodel").is_file()
    assert sorted(os.listdir(cwd)) == []


# -- S3, the seed's layout, filled by boto3 ----------------------------------------------------------

def _put(client, key, body):
    client.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


def _s3_registry(tmp_path, server, prefix):
    from console.workspace import Workspace

    root = write_workspace(tmp_path / "ws", s3_toml(server.endpoint, prefix))
    return Workspace.open(root).registry()


def test_seed_bucket_with_torchscript_and_onnx_models(s3_server, cancer, torch_net, tmp_path):
    import torch
    from skl2onnx import to_onnx

    X, _, columns, clf = cancer
    client = s3_server.client()
    prefix = unique("seedfmt")
    base = f"{prefix}/models/cancer/versions/"
    script = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(torch_net), str(script))
    onnx_bytes = to_onnx(clf, X[:1].astype(np.float32), options={"zipmap": False}).SerializeToString()
    # 1: TorchScript with the seed's metadata.json (features, commit, where the data is)
    _put(client, base + "v20260301-1a2b3c4d/model.pt", script.read_bytes())
    _put(client, base + "v20260301-1a2b3c4d/metrics.json", json.dumps({"auc_roc": 0.95}))
    _put(client, base + "v20260301-1a2b3c4d/metadata.json", json.dumps({
        "trained_at": "2026-03-01T03:00:00Z", "features": columns, "framework": "pytorch",
        "training": {"commit_sha": "1a2b3c4d" * 5, "data_path": "s3://data/cancer/train.parquet"}}))
    # 2: ONNX, format and sha256 declared
    _put(client, base + "v20260302-5e6f7a8b/model.onnx", onnx_bytes)
    _put(client, base + "v20260302-5e6f7a8b/metrics.json", json.dumps({"auc_roc": 0.97}))
    _put(client, base + "v20260302-5e6f7a8b/metadata.json", json.dumps({
        "format": "onnx", "features": columns, "git_commit": "5e6f7a8b" * 5,
        "artifact": {"sha256": hashlib.sha256(onnx_bytes).hexdigest()}, "data_uri": "s3://data/cancer/v2.csv"}))
    # 3: what the seed's GitHub Actions job uploads: model.pt and metrics.json, nothing else
    _put(client, base + "v20260303-9c0d1e2f/model.pt", script.read_bytes())
    _put(client, base + "v20260303-9c0d1e2f/metrics.json", json.dumps({"auc_roc": 0.96}))

    registry = _s3_registry(tmp_path, s3_server, prefix)
    expected_torch = torch_probabilities(torch_net, X)

    mv = registry.get_version("cancer", "v20260301-1a2b3c4d")
    assert (mv.lineage.code_commit, mv.lineage.data_uri) == ("1a2b3c4d" * 5, "s3://data/cancer/train.parquet")
    path = registry.fetch_artifact("cancer", mv.version, str(tmp_path / "a"))
    fmt, loaded, _ = _load(mv, path, X[:1], columns)
    assert fmt.name == "torchscript" and loaded.features == columns  # from metadata.json beside the model
    np.testing.assert_allclose(loaded.predict(X[:, ::-1], columns[::-1]), expected_torch, rtol=1e-5, atol=1e-6)

    mv = registry.get_version("cancer", "v20260302-5e6f7a8b")
    assert (mv.artifact.format, mv.artifact.size_bytes) == ("onnx", len(onnx_bytes))
    assert (mv.lineage.code_commit, mv.lineage.data_uri) == ("5e6f7a8b" * 5, "s3://data/cancer/v2.csv")
    path = registry.fetch_artifact("cancer", mv.version, str(tmp_path / "b"))
    assert path.endswith("model.onnx") and registry.verify_artifact("cancer", mv.version).sha256 == mv.artifact.sha256
    fmt, _, scores = _load(mv, path, X, columns)
    assert fmt.name == "onnx"
    np.testing.assert_allclose(scores, clf.predict_proba(X)[:, 1], rtol=1e-4, atol=1e-5)

    mv = registry.get_version("cancer", "v20260303-9c0d1e2f")
    assert mv.lineage.code_commit == "9c0d1e2f"  # the seed names each version after its commit
    path = registry.fetch_artifact("cancer", mv.version, str(tmp_path / "c"))
    fmt, loaded, scores = _load(mv, path, X, columns)
    assert fmt.name == "torchscript" and loaded.features is None
    np.testing.assert_allclose(scores, expected_torch, rtol=1e-5, atol=1e-6)


def test_seed_bucket_with_an_mlflow_model_folder(s3_server, cancer, tmp_path):
    import mlflow.sklearn

    X, _, columns, clf = cancer
    local = tmp_path / "saved"
    mlflow.sklearn.save_model(clf, str(local), pip_requirements=["scikit-learn"])
    client = s3_server.client()
    prefix = unique("seedmlf")
    base = f"{prefix}/models/cancer/versions/v1/"
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        _put(client, base + "model/" + file.relative_to(local).as_posix(), file.read_bytes())
    _put(client, base + "metrics.json", json.dumps({"auc_roc": 0.99}))
    only_folder = f"{prefix}/models/cancer/versions/v2/mlflow_model/"  # no metrics.json, no metadata.json
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        _put(client, only_folder + file.relative_to(local).as_posix(), file.read_bytes())
    registry = _s3_registry(tmp_path, s3_server, prefix)
    assert sorted(v.version for v in registry.list_versions("cancer")) == ["v1", "v2"]
    move = registry.move_pointer("cancer", "candidate", expected=None, new="v2", actor="tester")
    assert move.to_version == "v2" and registry.get_version("cancer", "v2").artifact.format == "mlflow-pyfunc"
    mv = registry.get_version("cancer", "v1")
    assert mv.artifact.format == "mlflow-pyfunc"
    assert mv.artifact.size_bytes == sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
    path = registry.fetch_artifact("cancer", "v1", str(tmp_path / "dest"))
    assert sorted(os.listdir(path)) == sorted(os.listdir(local))
    _, _, scores = _load(mv, path, X, columns)
    np.testing.assert_allclose(scores, clf.predict_proba(X)[:, 1], rtol=1e-9)


def test_a_corrupted_model_pt_is_one_line_naming_the_file(s3_server, torch_net, tmp_path):
    import torch

    script = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(torch_net), str(script))
    good = script.read_bytes()
    bad = good[:300] + bytes(b ^ 0xFF for b in good[300:900]) + good[900:]
    client = s3_server.client()
    prefix = unique("corrupt")
    base = f"{prefix}/models/cancer/versions/"
    _put(client, base + "v1/model.pt", bad)  # the recorded sha256 is of the good bytes
    _put(client, base + "v1/metadata.json", json.dumps({"artifact": {"sha256": hashlib.sha256(good).hexdigest(),
                                                                     "format": "torchscript"}}))
    _put(client, base + "v2/model.pt", good[: len(good) // 3])  # no sha256 recorded: cut short
    _put(client, base + "v2/metrics.json", "{}")
    registry = _s3_registry(tmp_path, s3_server, prefix)
    with pytest.raises(IntegrityError) as integrity:
        registry.fetch_artifact("cancer", "v1", str(tmp_path / "v1"))
    message = str(integrity.value)
    assert "\n" not in message and f"{prefix}/models/cancer/versions/v1/model.pt" in message and "sha256" in message
    path = registry.fetch_artifact("cancer", "v2", str(tmp_path / "v2"))
    mv = registry.get_version("cancer", "v2")
    with pytest.raises(BadInputError) as broken:
        resolve_format(mv.artifact.format, path, {}, model="cancer").load(path, {})
    assert str(broken.value).startswith(f"{path}: ") and "\n" not in str(broken.value)
