"""Fixtures for shadow traffic: a workspace made by `mrc init` holding two TorchScript
classifiers trained here with plain torch on sklearn's breast-cancer data (production "1",
candidate "2"), served by mrc's real model servers behind the real router on 127.0.0.1 and
stopped at teardown, also when a test fails."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest

from tests.support.cli import run_mrc
from tests.support.processes import kill_group, stop_everything  # noqa: F401  (the tests import them here)

MODEL = "cancer"
PRODUCTION, CANDIDATE = "1", "2"


def post(port: int, path: str, body, timeout: float = 60.0, headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def wait_for(condition, what: str, timeout: float = 180.0):
    """Poll until condition() is truthy (generous: 2 loaded cores); its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def train_scripted(X, y, seed: int, steps: int):
    """A small torch classifier standardising inside, trained with plain torch and scripted."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)
            self.net = torch.nn.Sequential(torch.nn.Linear(len(mean), 8), torch.nn.ReLU(), torch.nn.Linear(8, 1),
                                           torch.nn.Sigmoid())

        def forward(self, x):
            return self.net((x - self.mean) / self.std).squeeze(-1)

    torch.manual_seed(seed)
    xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    net = Net(xt.mean(0), xt.std(0))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
    return torch.jit.script(net.eval())


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    return raw.data.astype("float64"), raw.target.astype("int64")


@pytest.fixture(scope="module")
def models(cancer, tmp_path_factory):
    """{version: scripted module} and the files they were saved to."""
    import torch

    X, y = cancer
    folder = tmp_path_factory.mktemp("models")
    out = {}
    for version, seed, steps in ((PRODUCTION, 1, 60), (CANDIDATE, 2, 25)):
        module = train_scripted(X[:400], y[:400], seed, steps)
        path = folder / f"model-{version}.pt"
        torch.jit.save(module, str(path))
        out[version] = (module, path)
    return out


def own_predictions(module, rows) -> list[float]:
    """What the plain library says for these rows."""
    import torch

    with torch.inference_mode():
        return module(torch.tensor(rows, dtype=torch.float32)).tolist()


def workspace_with(models, root: Path, traffic_settings: str = "") -> Path:
    """A workspace made by `mrc init` (traffic_settings: lines added to its [traffic] table)
    with both versions of `models` registered."""
    from backends.base import Lineage
    from backends.local.registry import LocalRegistry

    result = run_mrc("init", "--workspace", str(root))
    assert result.returncode == 0, result.stderr
    if traffic_settings:
        config = root / "mrc.toml"
        toml = config.read_text()
        assert '[traffic]\nbackend = "local"\n' in toml
        config.write_text(toml.replace('[traffic]\nbackend = "local"\n', f'[traffic]\nbackend = "local"\n{traffic_settings}'))
    registry = LocalRegistry(root)
    try:
        for version, (_, path) in models.items():
            registry.register_version(MODEL, str(path), metrics={"auc_roc": 0.9}, lineage=Lineage(), version=version,
                                      artifact_format="torchscript")
    finally:
        registry.close()
    return root


@pytest.fixture(scope="module")
def served(models, tmp_path_factory):
    """(workspace root, router port): both versions registered (production pointer at 1) and
    served, the router sending all traffic to production."""
    from backends.local.traffic import LocalTraffic

    root = workspace_with(models, tmp_path_factory.mktemp("shadow") / "ws")
    traffic = LocalTraffic(root)
    try:
        traffic.ensure_serving(MODEL, [PRODUCTION])  # production first: it takes 100 %
        yield root, traffic.router_port(MODEL)
    finally:
        stop_everything(root)


def mrc_ws(root: Path, *args: str):
    return run_mrc(*args, "--workspace", str(root))


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
