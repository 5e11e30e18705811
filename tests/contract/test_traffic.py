"""One contract for every traffic backend (backends.base.Traffic): the local one (a real router
and one real model server per version, serving ONNX artifacts built here by skl2onnx) and
KServe (the k8s backend against the Kubernetes API emulator the k8s tests use). A split is
read, moved by compare-and-swap on its revision, refused when the revision is stale (nothing
written), and rolled back to the stable version whatever the revision.

A KServe controller writes status after each write, so the KServe case reads the split back
until it shows the write (`settled`), as tests/integration/k8s/test_kserve_traffic.py does.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from backends.base import ConflictError, Traffic, TrafficSplit
from tests.support.k8s.emulator import apiserver  # noqa: F401  (fixture: the Kubernetes API emulator)

pytestmark = pytest.mark.integration  # every case starts servers
MODEL = "contract-model"
STABLE, CANARY = "1", "2"


@pytest.fixture(scope="module")
def onnx_artifacts(tmp_path_factory) -> dict[str, Path]:
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("onnx")
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    out = {}
    for version, C in ((STABLE, 1.0), (CANARY, 0.1)):
        clf = LogisticRegression(C=C, max_iter=300).fit(X, y)
        out[version] = folder / f"model-{version}.onnx"
        out[version].write_bytes(to_onnx(clf, X[:1].astype(np.float32), target_opset=17).SerializeToString())
    return out


@pytest.fixture(scope="module")
def local_served(tmp_path_factory, onnx_artifacts):
    """A workspace whose registry holds the two versions, both served (router at STABLE: 100)."""
    from backends.base import Lineage
    from backends.local.registry import LocalRegistry
    from backends.local.traffic import LocalTraffic
    from console.cli import main
    from console.plugins import resolve_format

    root = tmp_path_factory.mktemp("local-traffic") / "ws"
    assert main(["init", "--workspace", str(root)]) == 0
    registry = LocalRegistry(root)
    for version, path in onnx_artifacts.items():
        registry.register_version(MODEL, str(path), metrics={}, lineage=Lineage(), version=version)
    traffic = LocalTraffic(root)
    try:
        traffic.ensure_serving(MODEL, [STABLE, CANARY], registry=registry, options={}, resolve_format=resolve_format)
        yield traffic
    finally:
        traffic.stop_serving(MODEL)
        registry.close()


def _local(request) -> Traffic:
    traffic = request.getfixturevalue("local_served")
    traffic.rollback(MODEL, STABLE)  # each case starts from the stable version alone
    return traffic


def _kserve(request) -> Traffic:
    from backends.k8s.traffic import KServeTraffic
    from tests.support.k8s.apiserver import ISVCS

    server = request.getfixturevalue("apiserver")
    body = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": MODEL, "namespace": "serving",
                         "annotations": {"serving.kserve.io/deploymentMode": "Serverless"}},
            "spec": {"predictor": {"minReplicas": 1, "model": {
                "modelFormat": {"name": "onnx"}, "storageUri": f"s3://models/{MODEL}/{STABLE}"}}}}
    server.call(server.server.create(ISVCS, "serving", body))
    server.call(server.server._reconcile_isvc("serving", MODEL))
    traffic = KServeTraffic({"namespace": "serving", "storage_uri": "s3://models/$model/$version"})
    request.addfinalizer(traffic.close)
    return traffic


@pytest.fixture(params=["local", "kserve"])
def traffic(request) -> Traffic:
    return {"local": _local, "kserve": _kserve}[request.param](request)


def settled(traffic: Traffic, want: dict[str, int], timeout_s: float = 10.0) -> TrafficSplit:
    """The split once it shows `want` (a cluster's controller writes status after our write)."""
    deadline = time.monotonic() + timeout_s
    while True:
        split = traffic.get_split(MODEL)
        if {v: w for v, w in split.weights.items() if w} == want:
            return split
        assert time.monotonic() < deadline, f"split {split.weights}, expected {want}"
        time.sleep(0.02)


def test_is_a_traffic_backend(traffic):
    assert isinstance(traffic, Traffic)


def test_a_served_model_has_all_its_traffic_on_the_stable_version(traffic):
    split = settled(traffic, {STABLE: 100})
    assert isinstance(split, TrafficSplit) and split.model == MODEL and split.stable == STABLE
    assert sum(split.weights.values()) == 100


def test_a_split_moves_by_compare_and_swap_on_its_revision(traffic):
    seen = settled(traffic, {STABLE: 100})
    for weight in (10, 50):
        moved = traffic.set_split(MODEL, {STABLE: 100 - weight, CANARY: weight}, expected_revision=seen.revision)
        assert isinstance(moved, TrafficSplit)
        now = settled(traffic, {STABLE: 100 - weight, CANARY: weight})
        assert now.revision != seen.revision
        seen = now


def test_a_stale_revision_is_a_conflict_and_moves_nothing(traffic):
    stale = settled(traffic, {STABLE: 100})
    traffic.set_split(MODEL, {STABLE: 90, CANARY: 10}, expected_revision=stale.revision)  # someone else, first
    moved = settled(traffic, {STABLE: 90, CANARY: 10})
    with pytest.raises(ConflictError):
        traffic.set_split(MODEL, {STABLE: 50, CANARY: 50}, expected_revision=stale.revision)
    after = traffic.get_split(MODEL)
    assert {v: w for v, w in after.weights.items() if w} == {STABLE: 90, CANARY: 10}
    assert after.revision == moved.revision


def test_rollback_puts_everything_on_stable_whatever_the_revision(traffic):
    seen = settled(traffic, {STABLE: 100})
    traffic.set_split(MODEL, {STABLE: 75, CANARY: 25}, expected_revision=seen.revision)
    settled(traffic, {STABLE: 75, CANARY: 25})
    rolled = traffic.rollback(MODEL, STABLE)
    assert isinstance(rolled, TrafficSplit)
    settled(traffic, {STABLE: 100})
    traffic.rollback(MODEL, STABLE)  # again: the same place, no error
    settled(traffic, {STABLE: 100})
