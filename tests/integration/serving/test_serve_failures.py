"""A version whose server cannot start is reported with the server's own last line, and leaves
no process behind; bad flags of load/drill/serve-models stop before anything is sent."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_mrc
from tests.support.remote import BUCKET, remote_env, unique
from tests.support.serving import running

pytestmark = pytest.mark.integration


def test_a_refused_artifact_is_reported_by_its_server(s3_server, s3_workspace, tmp_path):
    import torch

    root, registry = s3_workspace
    model = "pickled-" + unique("m")[2:]
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Sigmoid()), str(path))  # a full pickled module
    base = f"{registry.prefix}models/{model}/versions/v1/"
    client = s3_server.client()
    client.put_object(Bucket=BUCKET, Key=base + "model.pt", Body=path.read_bytes())
    client.put_object(Bucket=BUCKET, Key=base + "metrics.json", Body=b'{"auc_roc": 0.9}')

    result = run_mrc("serve-models", model, "--versions", "v1", "--workspace", str(root), env=remote_env())
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert "server-v1 exited before it listened" in result.stderr and "trust_pickle" in result.stderr
    processes = root / "serving" / model / "processes.json"
    assert not processes.exists() or not json.loads(processes.read_text())["servers"]
    # the router started beside it was stopped too: no process of this workspace is left
    for log in (root / "serving" / model).glob("*.log"):
        assert log.name in ("server-v1.log", "router.log")
    ready = root / "serving" / model / "router.ready"
    if ready.exists():
        assert not running(json.loads(ready.read_text())["pid"])


@pytest.mark.parametrize("args,needle", [
    (["drill", "m", "1", "--error-rate", "1.5"], "--error-rate"),
    (["load", "m", "--label-delay", "-1"], "--label-delay"),
    (["serve-models", "m", "--versions", "../x"], "version"),
    (["--read-only", "load", "m"], "--read-only"),  # the router would log its requests
    (["--read-only", "drill", "m", "1"], "--read-only"),
    (["--read-only", "serve-models", "m"], "--read-only"),
])
def test_bad_flags_stop_before_anything_runs(tmp_path, args, needle):
    root = tmp_path / "ws"
    assert run_mrc("init", "--workspace", str(root)).returncode == 0
    result = run_mrc(*args, "--workspace", str(root))
    assert result.returncode == 2 and needle in result.stderr and result.stderr.count("\n") == 1
    assert not (root / "serving").exists()
