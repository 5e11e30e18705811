"""`mrc canary start` on models mrc did not make (a seed bucket: TorchScript in production, an
ONNX candidate): the controller starts what it needs through the same serving path as
`mrc serve-models`; a drilled candidate is rolled back, a healthy one promoted in the bucket."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, mrc_env, run_mrc
from tests.remote.fixtures import BUCKET, remote_env
from tests.serving.conftest import kill_group, seed_bucket

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAN = ["--plan", "50,100", "--hold", "1", "--interval", "0.4", "--min-requests", "10", "--max-seconds", "240"]


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
