"""Fixtures for serving models mrc did not make: the real MLflow server and SeaweedFS of
tests/support/servers.py, processes started in their own sessions (killed at teardown, also on failure),
and the breast-cancer data every model here is built on with the plain libraries."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import REPO, mrc_env
from tests.support.processes import kill_group, running, served_pids  # noqa: F401  (the tests import them here)
from tests.support.remote import (  # noqa: F401  (fixtures)
    _remote_credentials,
    mlflow_server,
    mlflow_workspace,
    s3_server,
    s3_workspace,
)


@pytest.fixture
def cleanup_serving():
    """Register workspaces; whatever they serve is killed at teardown."""
    workspaces: list[Path] = []
    yield workspaces.append
    for ws in workspaces:
        for pid in served_pids(ws):
            kill_group(pid)


@pytest.fixture
def spawn():
    """spawn(argv, cwd=…) -> Popen in its own session, killed with its group at teardown."""
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], cwd: Path | None = None, log: Path | None = None) -> subprocess.Popen:
        out = open(log, "wb") if log else subprocess.DEVNULL
        env = mrc_env({"PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])})
        proc = subprocess.Popen(argv, cwd=str(cwd or REPO), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        kill_group(proc.pid)


def http_json(port: int, method: str, path: str, body=None, timeout: float = 30.0,
              headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, None if body is None else json.dumps(body).encode(),
                     {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw.strip() else {}
        except ValueError:  # MLflow's /ping answers a bare newline
            return resp.status, {"text": raw.decode(errors="replace")}
    finally:
        conn.close()


def wait_for(condition, what: str, timeout: float = 180.0, proc: subprocess.Popen | None = None):
    """Poll until condition() is truthy (generous: 2 loaded cores); its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@pytest.fixture(scope="session")
def cancer():
    """(feature names, X, y) of sklearn's breast-cancer set; names without spaces."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    names = [n.replace(" ", "_") for n in raw.feature_names]
    return names, raw.data.astype("float64"), raw.target.astype("int64")


def write_csv(path: Path, names: list[str], X, y, label: str = "label") -> Path:
    lines = [",".join([*names, label])]
    lines += [",".join([*(repr(float(v)) for v in row), str(int(t))]) for row, t in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


PYTHON = sys.executable


def add_model_table(root: Path, model: str, **values) -> None:
    lines = [f"\n[models.{model}]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    with open(root / "mrc.toml", "a") as fh:
        fh.write("\n".join(lines) + "\n")


def scripted_classifier(X):
    """A small torch classifier that standardises inside, scripted as a team's export would be."""
    import torch

    class Scaled(torch.nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)
            self.net = torch.nn.Sequential(torch.nn.Linear(len(mean), 8), torch.nn.ReLU(), torch.nn.Linear(8, 1),
                                           torch.nn.Sigmoid())

        def forward(self, x):
            return self.net((x - self.mean) / self.std).squeeze(-1)

    torch.manual_seed(7)
    return torch.jit.script(Scaled(torch.tensor(X.mean(0), dtype=torch.float32),
                                   torch.tensor(X.std(0), dtype=torch.float32)).eval())


def seed_bucket(s3_server, registry, root: Path, tmp_path: Path, cancer):
    """A model in the seed's bucket layout, written with plain boto3: v1-ts (TorchScript
    model.pt) in production, v2-onnx (skl2onnx model.onnx) the candidate, a CSV test set in
    mrc.toml. (model name, the scripted module, the ONNX file)."""
    import numpy as np
    import torch
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tests.support.remote import BUCKET, unique

    names, X, y = cancer
    model = "fraud-" + unique("m")[2:]
    scripted = scripted_classifier(X)
    ts_path = tmp_path / "model.pt"
    torch.jit.save(scripted, str(ts_path))
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X.astype(np.float32), y)
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(to_onnx(pipe, X[:1].astype(np.float32), options={"zipmap": False}).SerializeToString())
    client = s3_server.client()
    base = f"{registry.prefix}models/{model}/"
    versions = {"v1-ts": ("model.pt", ts_path, "torchscript"), "v2-onnx": ("model.onnx", onnx_path, "onnx")}
    for version, (key, path, fmt) in versions.items():
        client.put_object(Bucket=BUCKET, Key=f"{base}versions/{version}/{key}", Body=path.read_bytes())
        client.put_object(Bucket=BUCKET, Key=f"{base}versions/{version}/metrics.json", Body=b'{"auc_roc": 0.95}')
        client.put_object(Bucket=BUCKET, Key=f"{base}versions/{version}/metadata.json", Body=json.dumps(
            {"format": fmt, "features": names, "git_commit": "ab" * 20, "run_id": version}).encode())
    client.put_object(Bucket=BUCKET, Key=f"{base}production/version.txt", Body=b"v1-ts")
    client.put_object(Bucket=BUCKET, Key=f"{base}candidates/latest", Body=b"v2-onnx\n")
    test_csv = write_csv(tmp_path / "test.csv", names, X[:100], y[:100])
    add_model_table(root, model, test_data=str(test_csv), label="label")
    return model, scripted, onnx_path
