"""The Kubernetes API emulator (kmock, extended: see apiserver.py) on 127.0.0.1, and schema checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.k8s.apiserver import RunningApiServer

CRD_SCHEMA = Path(__file__).parent / "data" / "kserve_v1beta1_inferenceservice.schema.json"


@pytest.fixture
def apiserver(tmp_path, monkeypatch):
    """A running emulator; KUBECONFIG points at it for this process and for `mrc` subprocesses."""
    running = RunningApiServer(tmp_path / "kubeconfig.json", volumes={})
    running.start()
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
