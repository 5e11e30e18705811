"""Registries filled the way teams fill them, with plain MLflow / boto3 / sklearn / torch / onnx
code only (never mrc's helpers), once per session on the shared real servers:

- MLflow (tests/support/servers.py's `mlflow_server`): one registered model, four versions — sklearn, a
  PythonModel from code, a torch MLP (MLflow 3 logged models, `models:/m-…`) and a bad one
  registered the classic way from run artifacts (`runs:/<id>/model`); champion (mrc's production)
  on the sklearn one, challenger (mrc's candidate) on the pyfunc one. build_mlflow.py does it in
  its own process.
- SeaweedFS (`s3_server`): the seed article's bucket layout with two models, TorchScript
  `model.pt` versions and ONNX `model.onnx` versions, each a good production, a good candidate
  and a bad one (trained on drifted data with shuffled labels), metrics.json, metadata.json
  (features, commit, data path), production/{version.txt, metrics.json}, candidates/latest; the
  train and test CSVs uploaded beside them for s3:// references.

Workspaces are plain folders with an mrc.toml pointing at those registries.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import REPO
from tests.support.remote import (  # noqa: F401  (fixtures)
    BUCKET,
    _remote_credentials,
    mlflow_server,
    mlflow_toml,
    s3_server,
    s3_toml,
    unique,
    write_workspace,
)

from tests.support import teamdata

HERE = Path(__file__).resolve().parent

TS_MODEL, ONNX_MODEL, PICKLE_MODEL = "bc-torchscript", "bc-onnx", "bc-pickled"


@pytest.fixture(scope="session")
def team_data(tmp_path_factory) -> dict[str, Path]:
    return teamdata.write_data(tmp_path_factory.mktemp("team-data"))


# -- MLflow ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def _mlflow_build(mlflow_server, team_data, tmp_path_factory):
    """Starts build_mlflow.py (slow: MLflow logs four models) so the S3 side builds meanwhile."""
    name = unique("bc-mlflow")
    log = tmp_path_factory.mktemp("mlflow-build") / "build.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, str(HERE / "build_mlflow.py"), mlflow_server.url, name,
                                 str(team_data["train"].parent)], stdout=subprocess.PIPE, stderr=err, text=True,
                                cwd=str(log.parent))
    yield proc, log
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="session")
def mlflow_team(_mlflow_build, s3_team) -> dict:
    """What build_mlflow.py made: model name, versions by kind, commits, runs, metrics, data paths."""
    proc, log = _mlflow_build
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, f"build_mlflow.py failed:\n{log.read_text()[-4000:]}"
    return json.loads(out.strip().splitlines()[-1])  # the JSON is the last line


# -- S3, the seed layout ---------------------------------------------------------------------

def _put(client, key: str, body) -> None:
    client.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


def _torchscript_versions(train, drifted, test):
    """(kind, bytes, metrics, hyperparameters) for a good, a second good and a bad TorchScript MLP."""
    import numpy as np
    import torch

    cols = teamdata.features(train)
    x_test = torch.from_numpy(test[cols].to_numpy(np.float32))
    one = x_test[:1]
    out = []
    for kind, frame, seed in (("good", train, 1), ("candidate", train, 2), ("bad", drifted, 1)):
        net = teamdata.torch_mlp(frame[cols].to_numpy(), frame[teamdata.LABEL].to_numpy(), seed=seed)
        scripted = torch.jit.script(net)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        with torch.no_grad():
            scores = scripted(x_test).numpy().ravel()
            metrics = teamdata.recorded_metrics(test[teamdata.LABEL].to_numpy(), scores, lambda: scripted(one),
                                                len(buffer.getvalue()))
        out.append((kind, buffer.getvalue(), metrics, {"hidden": 16, "epochs": 300, "seed": seed}))
    return out


def _onnx_versions(train, drifted, test):
    """The same for scikit-learn pipelines converted by skl2onnx (ZipMap output on two, plain
    probabilities tensor on one), scored with onnxruntime."""
    import numpy as np
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cols = teamdata.features(train)
    x_test = test[cols].to_numpy(np.float32)
    out = []
    for kind, frame, c, zipmap in (("good", train, 1.0, True), ("candidate", train, 0.5, False),
                                    ("bad", drifted, 1.0, True)):
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        pipe.fit(frame[cols].to_numpy(np.float32), frame[teamdata.LABEL].to_numpy())
        options = None if zipmap else {LogisticRegression: {"zipmap": False}}
        blob = to_onnx(pipe, x_test[:1], options=options, target_opset=17).SerializeToString()
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def scores_of(rows, session=session, name=name, zipmap=zipmap):
            probabilities = session.run(None, {name: rows})[1]
            return np.array([p[1] for p in probabilities]) if zipmap else probabilities[:, 1]

        metrics = teamdata.recorded_metrics(test[teamdata.LABEL].to_numpy(), scores_of(x_test),
                                            lambda: scores_of(x_test[:1]), len(blob))
        out.append((kind, blob, metrics, {"C": c, "zipmap": zipmap}))
    return out


@pytest.fixture(scope="session")
def s3_team(s3_server, team_data) -> dict:
    """The seed layout under a fresh prefix: bc-torchscript and bc-onnx, three versions each."""
    import hashlib

    import pandas as pd

    client = s3_server.client()
    prefix = unique("teams")
    data_uris = {}
    for key in ("train", "train_drifted", "test"):
        path = team_data[key]
        _put(client, f"{prefix}/data/{path.name}", path.read_bytes())
        data_uris[key] = f"s3://{BUCKET}/{prefix}/data/{path.name}"
    train, test = pd.read_csv(team_data["train"]), pd.read_csv(team_data["test"])
    drifted = pd.read_csv(team_data["train_drifted"])
    cols = teamdata.features(train)
    models = {}
    for model, versions, filename, framework in (
            (TS_MODEL, _torchscript_versions(train, drifted, test), "model.pt", "pytorch"),
            (ONNX_MODEL, _onnx_versions(train, drifted, test), "model.onnx", "onnx")):
        base = f"{prefix}/models/{model}/"
        info = {"versions": {}, "commits": {}, "metrics": {}, "data": {}}
        for day, (kind, blob, metrics, params) in zip((1, 8, 15), versions):
            commit = hashlib.sha1(f"{model}-{kind}".encode()).hexdigest()
            version = f"v202603{day:02d}-{commit[:8]}"
            data_uri = data_uris["train_drifted" if kind == "bad" else "train"]
            v = f"{base}versions/{version}/"
            _put(client, v + filename, blob)
            _put(client, v + "metrics.json", json.dumps(metrics))
            _put(client, v + "metadata.json", json.dumps({
                "trained_at": f"2026-03-{day:02d}T03:00:00Z", "features": cols, "git_commit": commit,
                "data_version": Path(data_uri).stem, "data_path": data_uri, "run_id": f"gha-{model}-{kind}",
                "framework": framework, "hyperparameters": params}))
            _put(client, v + "requirements.txt", "torch==2.13.0\n" if framework == "pytorch" else "onnxruntime\n")
            info["versions"][kind], info["commits"][kind] = version, commit
            info["metrics"][kind], info["data"][kind] = metrics, data_uri
        _put(client, base + "production/version.txt", info["versions"]["good"])
        _put(client, base + "production/metrics.json", json.dumps(info["metrics"]["good"]))
        _put(client, base + "candidates/latest", info["versions"]["candidate"] + "\n")
        models[model] = info
    models[PICKLE_MODEL] = _pickled_model(client, prefix, train, cols, data_uris["train"])
    return {"prefix": prefix, "endpoint": s3_server.endpoint, "models": models, "data": data_uris}


def _pickled_model(client, prefix: str, train, cols, data_uri: str) -> dict:
    """A team that saved whole torch modules (torch.save(module)): production and a candidate."""
    import hashlib

    import torch

    base = f"{prefix}/models/{PICKLE_MODEL}/"
    versions = {}
    for day, kind in ((1, "good"), (8, "candidate")):
        net = teamdata.torch_mlp(train[cols].to_numpy(), train[teamdata.LABEL].to_numpy(), seed=day, epochs=150)
        buffer = io.BytesIO()
        torch.save(net, buffer)
        commit = hashlib.sha1(f"{PICKLE_MODEL}-{kind}".encode()).hexdigest()
        version = f"v202603{day:02d}-{commit[:8]}"
        v = f"{base}versions/{version}/"
        _put(client, v + "model.pt", buffer.getvalue())
        _put(client, v + "metrics.json", json.dumps({"auc_roc": 0.99, "precision": 0.95, "f1": 0.95}))
        _put(client, v + "metadata.json", json.dumps({"features": cols, "git_commit": commit, "data_path": data_uri}))
        versions[kind] = version
    _put(client, base + "production/version.txt", versions["good"])
    _put(client, base + "production/metrics.json", json.dumps({"auc_roc": 0.99, "precision": 0.95, "f1": 0.95}))
    _put(client, base + "candidates/latest", versions["candidate"])
    return {"versions": versions}


# -- workspaces ------------------------------------------------------------------------------

def models_toml(models: dict[str, dict[str, str]]) -> str:
    lines = []
    for model, keys in models.items():
        lines.append(f'\n[models."{model}"]')
        lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {str(v).lower()}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def mlflow_ws(tmp_path, mlflow_server, s3_server):  # noqa: F811
    """make(models={name: {test_data: …}}) -> a workspace on the MLflow registry; [data] names the
    S3 endpoint for s3:// references."""
    def make(models: dict | None = None, name: str = "ws-mlflow") -> Path:
        toml = mlflow_toml(mlflow_server.url) + f'\n[data]\nendpoint_url = "{s3_server.endpoint}"\n'
        return write_workspace(tmp_path / name, toml + models_toml(models or {}))
    return make


@pytest.fixture
def s3_ws(tmp_path, s3_team):
    def make(models: dict | None = None, name: str = "ws-s3") -> Path:
        return write_workspace(tmp_path / name, s3_toml(s3_team["endpoint"], s3_team["prefix"]) +
                               models_toml(models or {}))
    return make


# -- served processes ------------------------------------------------------------------------

def recorded_pids(ws: Path) -> list[int]:
    """Every pid the workspace's serving folder records (servers, router), whatever its shape."""
    pids: list[int] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pid" and isinstance(value, int):
                    pids.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in (ws / "serving").glob("**/*.json"):
        try:
            walk(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_recorded(ws: Path) -> None:
    """Teardown only: stop what `mrc serve-models --stop` may have left (a failed test)."""
    import os
    import signal

    for pid in recorded_pids(ws):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not alive(pid):
                break
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
            deadline = time.monotonic() + 3
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


class Background:
    """`mrc …` processes left running during a test (load, canary controllers); killed at teardown."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        from tests.support.cli import mrc_env
        from tests.support.remote import remote_env

        proc = subprocess.Popen([sys.executable, "-m", "console.cli", *args], cwd=str(REPO),
                                env=mrc_env({**remote_env(), **(env or {})}), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        import os
        import signal

        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.communicate(timeout=10)


@pytest.fixture
def background():
    b = Background()
    try:
        yield b
    finally:
        b.close()
