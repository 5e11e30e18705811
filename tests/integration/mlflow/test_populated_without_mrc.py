"""Registries that mrc did not fill: the plain MLflow client, and plain boto3 in the seed's layout.

`mrc versions --json` (a real subprocess) must list them correctly: versions, metrics, lineage,
the production pointer.
"""

from __future__ import annotations

import json

from tests.support.remote import BUCKET, remote_env, unique
import pytest

pytestmark = pytest.mark.integration  # starts real servers on 127.0.0.1


def _by_version(result):
    assert result.returncode == 0, result.stderr
    return {v["version"]: v for v in result.json()["versions"]}


def test_mlflow_registry_filled_by_the_plain_client(mlflow_server, mlflow_workspace, mrc):
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
    from mlflow.tracking import MlflowClient

    root, _ = mlflow_workspace
    client = MlflowClient(mlflow_server.url)
    name = unique("plain")
    experiment = client.create_experiment(unique("plain-exp"))
    client.create_registered_model(name)
    for i, auc in enumerate([0.91, 0.94], start=1):
        run_id = client.create_run(experiment, tags={"mlflow.source.git.commit": f"{i:040x}",
                                                     "mlflow.source.git.repoURL": "git@example.invalid:ml/churn.git"}).info.run_id
        client.log_batch(run_id, metrics=[Metric("auc_roc", auc, 0, 0), Metric("f1", 0.8, 0, 0)],
                         params=[Param("lr", str(0.1 * i)), Param("depth", "6")])
        dataset = Dataset(name="churn-train", digest=f"digest{i}", source_type="s3",
                          source=json.dumps({"uri": f"s3://data/churn/v{i}.parquet"}))
        client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])])
        client.log_text(run_id, "weights", "model/weights.txt")
        client.set_terminated(run_id)
        client.create_model_version(name, f"mlflow-artifacts:/{experiment}/{run_id}/artifacts/model", run_id=run_id)
    # MLflow 3: a version registered from a logged model, its metric on the model, no run on the version.
    run_id = client.create_run(experiment).info.run_id
    logged = client.create_logged_model(experiment, name="churn", source_run_id=run_id)
    client.log_metric(run_id, "auc_roc", 0.97, model_id=logged.model_id)
    client.finalize_logged_model(logged.model_id, "READY")
    client.create_model_version(name, f"models:/{logged.model_id}", model_id=logged.model_id)
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")

    versions = _by_version(mrc("versions", name, "--json", "--workspace", str(root), env=remote_env()))
    assert sorted(versions) == ["1", "2", "3"]  # strings over REST, one shape
    assert versions["1"]["metrics"] == {"auc_roc": 0.91, "f1": 0.8}
    assert versions["2"]["metrics"]["auc_roc"] == 0.94
    assert versions["3"]["metrics"]["auc_roc"] == 0.97  # from the logged model
    lineage = versions["2"]["lineage"]
    assert lineage["code_commit"] == f"{2:040x}"
    assert lineage["code_repo"] == "git@example.invalid:ml/churn.git"
    assert (lineage["data_version"], lineage["data_sha256"]) == ("churn-train", "digest2")
    assert lineage["params"] == {"lr": "0.2", "depth": "6"}
    assert lineage["training_run"]
    # Aliases are missing from search results; mrc reads them from the registered model.
    assert versions["1"]["aliases"] == ["production"]
    assert versions["2"]["aliases"] == ["candidate"]
    models = mrc("models", "--json", "--workspace", str(root), env=remote_env())
    assert models.returncode == 0, models.stderr
    row = {m["name"]: m for m in models.json()["models"]}[name]
    assert (row["production"], row["candidate"], row["versions"]) == ("1", "2", 3)


def _put(client, key, body):
    client.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


def test_bucket_filled_by_plain_boto3_in_the_seed_layout(s3_server, tmp_path, mrc):
    from tests.support.remote import s3_toml, write_workspace

    prefix = unique("seed")
    root = write_workspace(tmp_path / "ws", s3_toml(s3_server.endpoint, prefix))
    client = s3_server.client()
    base = f"{prefix}/models/fraud-detector/"
    seed_versions = {
        "v20260215-a3b4c5d6": {"auc_roc": 0.931, "precision": 0.88},
        "v20260222-e7f8a9b0": {"auc_roc": 0.944, "precision": 0.90},
    }
    for n, (version, metrics) in enumerate(seed_versions.items(), start=1):
        v = f"{base}versions/{version}/"
        _put(client, v + "model.pt", b"\x80\x02torch-bytes" * 20)
        _put(client, v + "metrics.json", json.dumps(metrics))
        _put(client, v + "metadata.json", json.dumps({
            "trained_at": f"2026-02-{14 + 7 * n}T03:00:00Z", "features": ["amount", "merchant", "hour"],
            "git_commit": f"{n:040x}", "data_version": f"dvc:{n}abc", "run_id": f"gha-{n}",
            "hyperparameters": {"max_depth": 6 + n}}))
        _put(client, v + "requirements.txt", "torch==2.3.0\n")
    _put(client, base + "production/version.txt", "v20260215-a3b4c5d6")
    _put(client, base + "production/metrics.json", json.dumps(seed_versions["v20260215-a3b4c5d6"]))
    _put(client, base + "candidates/latest", "v20260222-e7f8a9b0\n")

    env = remote_env()
    versions = _by_version(mrc("versions", "fraud-detector", "--json", "--workspace", str(root), env=env))
    assert sorted(versions) == list(seed_versions)
    old = versions["v20260215-a3b4c5d6"]
    assert old["metrics"] == seed_versions["v20260215-a3b4c5d6"]
    assert old["aliases"] == ["production"]
    assert versions["v20260222-e7f8a9b0"]["aliases"] == ["candidate"]
    assert old["lineage"]["code_commit"] == f"{1:040x}"
    assert old["lineage"]["data_version"] == "dvc:1abc"
    assert old["lineage"]["training_run"] == "gha-1"
    assert old["lineage"]["params"] == {"max_depth": 7}
    assert old["created_at"].startswith("2026-02-21")
    models = mrc("models", "--json", "--workspace", str(root), env=env).json()["models"]
    assert [(m["name"], m["production"], m["candidate"]) for m in models] == [
        ("fraud-detector", "v20260215-a3b4c5d6", "v20260222-e7f8a9b0")]

    # mrc can release on it: a promotion is a conditional write in the same layout.
    result = mrc("promote", "fraud-detector", "v20260222-e7f8a9b0", "--override", "--reason", "seed bucket test",
                 "--workspace", str(root), env=env)
    assert result.returncode == 0, result.stderr
    body = client.get_object(Bucket=BUCKET, Key=base + "production/version.txt")["Body"].read().decode()
    assert body == "v20260222-e7f8a9b0"
    baseline = json.loads(client.get_object(Bucket=BUCKET, Key=base + "production/metrics.json")["Body"].read())
    assert baseline == seed_versions["v20260222-e7f8a9b0"]
    from console.workspace import Workspace

    history = Workspace.open(root).registry().pointer_history("fraud-detector", "production")
    # The pointer that was there before mrc is shown as a move made outside mrc, then mrc's move.
    assert [(h.from_version, h.to_version, h.actor) for h in history] == [
        (None, "v20260215-a3b4c5d6", "(outside mrc)"), ("v20260215-a3b4c5d6", "v20260222-e7f8a9b0", "tester")]
    # rollback needs no --to: the history says where production was.
    result = mrc("rollback", "fraud-detector", "--json", "--workspace", str(root), env=env)
    assert result.returncode == 0, result.stderr
    assert result.json()["version"] == "v20260215-a3b4c5d6"


def test_a_version_registered_by_mrc_is_a_tracked_mlflow_run(mlflow_server, mlflow_workspace, tmp_path):
    """Local training registers through the registry: on MLflow that logs the run to tracking."""
    from mlflow.tracking import MlflowClient

    from backends.base import Lineage

    _, registry = mlflow_workspace
    artifact = tmp_path / "model.pt"
    artifact.write_bytes(b"trained weights")
    lineage = Lineage(code_commit="c" * 40, code_repo="/src/mrc", data_version="breast_cancer@v2",
                      data_sha256="d" * 64, training_run="job-42", params={"lr": 0.01, "hidden": [32, 16]})
    model = unique("tracked")
    mv = registry.register_version(model, str(artifact), metrics={"auc_roc": 0.97, "f1": 0.91}, lineage=lineage)
    client = MlflowClient(mlflow_server.url)
    run_id = client.get_model_version(model, mv.version).run_id
    run = client.get_run(run_id)
    assert run.data.metrics == {"auc_roc": 0.97, "f1": 0.91}
    assert run.data.params == {"lr": "0.01", "hidden": "[32, 16]"}
    assert run.data.tags["mlflow.source.git.commit"] == "c" * 40
    dataset = run.inputs.dataset_inputs[0].dataset
    assert (dataset.name, dataset.digest) == ("breast_cancer@v2", "d" * 36)
    assert run.info.status == "FINISHED"
    assert registry.get_version(model, mv.version).lineage == lineage


def test_mrc_train_on_an_mlflow_workspace_logs_a_tracked_run(mlflow_server, tmp_path, mrc):
    """Real local torch training, registered in MLflow: the run is in MLflow tracking."""
    import numpy as np
    from mlflow.tracking import MlflowClient

    from backends.native.datasets import DatasetStore
    from tests.support.remote import mlflow_toml

    root = tmp_path / "ws"
    assert mrc("init", "--workspace", str(root)).returncode == 0  # local tables for datasets
    rng = np.random.default_rng(0)
    features = rng.normal(size=(160, 3))
    label = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(float)
    ds = DatasetStore(root).add("toy", "v1", ["a", "b", "c", "y"], np.column_stack([features, label]), label="y")
    model = unique("trained")
    (root / "mrc.toml").write_text(mlflow_toml(mlflow_server.url) + f'\n[models.{model}]\ntrain_data = "toy@v1"\n'
                                   'label = "y"\n')
    result = mrc("train", model, "--param", "epochs=3", "--json", "--workspace", str(root), env=remote_env())
    assert result.returncode == 0, result.stderr
    version = result.json()
    assert version["aliases"] == ["candidate"]
    client = MlflowClient(mlflow_server.url)
    run = client.get_run(client.get_model_version(model, version["version"]).run_id)
    assert run.data.params["epochs"] == "3"
    assert version["metrics"] and run.data.metrics == version["metrics"]
    assert run.data.tags["mlflow.source.git.commit"] == version["lineage"]["code_commit"]
    assert run.data.tags["mrc.training_run"] == version["lineage"]["training_run"]
    dataset = run.inputs.dataset_inputs[0].dataset
    assert (dataset.name, dataset.digest) == ("toy@v1", ds.sha256[:36])
    assert client.get_registered_model(model).aliases == {"challenger": version["version"]}
