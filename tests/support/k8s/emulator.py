"""The Kubernetes API emulator (kmock, extended: see apiserver.py) on 127.0.0.1, and schema checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kmock

from tests.support.k8s.apiserver import RunningApiServer

PVCS = kmock.resource("", "v1", "persistentvolumeclaims")

CRD_SCHEMA = Path(__file__).parent / "data" / "kserve_v1beta1_inferenceservice.schema.json"


@pytest.fixture
def apiserver(tmp_path, monkeypatch):
    """A running emulator; KUBECONFIG points at it for this process and for `mrc` subprocesses."""
    running = RunningApiServer(tmp_path / "kubeconfig.json", volumes={})
    running.start()
    # the data claim the training Job mounts (mrc checks it exists before creating the Job)
    running.call(running.server.create(PVCS, "ml", {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                                     "metadata": {"name": "mrc-data", "namespace": "ml"}}))
    monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))
    yield running
    running.stop()


def validate_k8s(manifest: dict) -> None:
    """Against the Kubernetes OpenAPI schemas shipped offline by kubernetes-validate (strict: no unknown fields)."""
    import kubernetes_validate

    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


def validate_isvc(obj: dict) -> None:
    """Against the KServe v1beta1 InferenceService schema kept as test data."""
    import jsonschema

    jsonschema.validate(obj, json.loads(CRD_SCHEMA.read_text()))


WORKSPACE_TOML = """\
[training]
backend = "k8s"
namespace = "ml"
gpus = 1
data_claim = "mrc-data"
poll_s = 0.1
node_selector = { "nvidia.com/gpu.present" = "true" }

[models.breast-cancer]
train_data = "breast_cancer@v2"
test_data = "breast_cancer-test@v1"
golden_data = "breast_cancer-golden@v1"
label = "malignant"
"""


@pytest.fixture(scope="session")
def k8s_ws_template(tmp_path_factory) -> Path:
    """A workspace with the demo's datasets and no versions, training on Kubernetes (built once: ~2 s)."""
    from console.demo import build_datasets
    from console.workspace import Workspace

    root = tmp_path_factory.mktemp("k8s-ws") / "ws"
    Workspace.init(root)
    (root / "mrc.toml").write_text(WORKSPACE_TOML)
    ws = Workspace.open(root)
    ws.registry().ensure_schema()
    ws.audit().ensure_schema()
    build_datasets(ws)
    return root


@pytest.fixture
def k8s_ws(k8s_ws_template, tmp_path) -> Path:
    import shutil

    dest = tmp_path / "ws"
    shutil.copytree(k8s_ws_template, dest)
    return dest
