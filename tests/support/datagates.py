"""Data sources, gates without a test set and honest review, on models mrc did not make.

Servers (MLflow, SeaweedFS) are the session ones of tests/support/servers.py; data and models are built here
with plain numpy / pandas / scikit-learn / torch / boto3 / the MLflow client.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.support.remote import _remote_credentials, mlflow_server, s3_server  # noqa: F401  (fixtures)

FEATURES = ["f0", "f1", "f2", "f3"]
WEIGHTS = np.array([1.6, -1.2, 0.9, 0.0])


def synthetic(n: int, seed: int, shift: float = 0.0):
    """A binary task with a text column (region) for slices: a pandas DataFrame."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    X[:, 0] += shift
    logits = X @ WEIGHTS + 0.2
    y = (rng.random(n) < 1 / (1 + np.exp(-2.5 * logits))).astype(int)
    df = pd.DataFrame(X, columns=FEATURES)
    df["region"] = np.where(rng.random(n) < 0.5, "north", "south")
    df["label"] = y
    return df


def train_lr(df, features=FEATURES, rows: slice = slice(None)):
    from sklearn.linear_model import LogisticRegression

    part = df.iloc[rows]
    return LogisticRegression(max_iter=500).fit(part[features].to_numpy(), part["label"].to_numpy())


def torchscript_bytes(lr, features=FEATURES) -> bytes:
    """The logistic regression as a TorchScript module (plain torch), input columns in its extra files."""
    import io

    import torch

    class Scorer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(len(features), 1)

        def forward(self, x):
            return torch.sigmoid(self.linear(x)).squeeze(-1)

    net = Scorer()
    with torch.no_grad():
        net.linear.weight.copy_(torch.tensor(lr.coef_, dtype=torch.float32))
        net.linear.bias.copy_(torch.tensor(lr.intercept_, dtype=torch.float32))
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buf, _extra_files={"features.json": json.dumps(list(features))})
    return buf.getvalue()


PLUGIN = '''
"""A third-party model format, installed as an `mrc.formats` entry point: TorchScript whose
input columns travel in the file's extra files."""
import json


class Loaded:
    def __init__(self, module, features):
        self.module = module
        self.features = features

    def predict(self, rows, columns):
        import numpy as np
        import torch

        index = [columns.index(f) for f in self.features]
        x = torch.tensor(np.asarray(rows, dtype=np.float32)[:, index] if len(rows) else
                         np.empty((0, len(self.features)), np.float32))
        with torch.no_grad():
            return self.module(x).numpy().astype(float).reshape(-1)


class ScriptFormat:
    name = "dg-torchscript"
    serve_protocol = "mrc"

    def sniff(self, path):
        return False

    def load(self, path, options):
        import torch

        extra = {"features.json": ""}
        module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
        return Loaded(module, json.loads(extra["features.json"]) or None)

    def serve_argv(self, path, host, port, options):
        return None
'''


@pytest.fixture(scope="session")
def format_plugin(tmp_path_factory) -> Path:
    """A folder to put on PYTHONPATH: a module and its dist-info declaring the entry point."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "mrc_dg_plugin.py").write_text(PLUGIN)
    info = root / "mrc_dg_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mrc-dg-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mrc.formats]\ndg-torchscript = mrc_dg_plugin:ScriptFormat\n")
    return root


def plugin_env(format_plugin: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    from tests.support.cli import REPO
    from tests.support.remote import remote_env

    env = remote_env(extra)
    env["PYTHONPATH"] = f"{REPO}:{format_plugin}"
    return env


def policy_file(path: Path, **extra) -> Path:
    """The seed article's gate_config.json, plus any extension sections."""
    policy = {"metric_directions": {"auc_roc": "higher", "precision": "higher"},
              "hard_gates": {"auc_roc": 0.85, "precision": 0.80}, "relative_gates": {"auc_roc": 0.02}}
    policy.update(extra)
    path.write_text(json.dumps(policy))
    return path


def put(client, bucket: str, key: str, body) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def seed_bucket(client, bucket: str, prefix: str, model: str, versions: dict[str, dict], production: str,
                candidate: str | None = None) -> None:
    """The seed article's layout, written by plain boto3: versions/<v>/{model.pt, metrics.json,
    metadata.json}, production/{version.txt, metrics.json}, candidates/latest."""
    base = f"{prefix}/models/{model}/"
    for n, (version, spec) in enumerate(versions.items(), start=1):
        v = f"{base}versions/{version}/"
        put(client, bucket, v + "model.pt", spec.get("model", b"\x80\x02not-a-model" * 8))
        put(client, bucket, v + "metrics.json", json.dumps(spec["metrics"]))
        meta = {"trained_at": f"2026-02-{10 + n:02d}T03:00:00Z", "features": FEATURES, "git_commit": f"{n:040x}",
                "run_id": f"gha-{n}", **spec.get("metadata", {})}
        put(client, bucket, v + "metadata.json", json.dumps(meta))
    put(client, bucket, base + "production/version.txt", production)
    put(client, bucket, base + "production/metrics.json", json.dumps(versions[production]["metrics"]))
    if candidate:
        put(client, bucket, base + "candidates/latest", candidate + "\n")


def append_toml(root: Path, text: str) -> None:
    path = root / "mrc.toml"
    path.write_text(path.read_text() + "\n" + textwrap.dedent(text))
