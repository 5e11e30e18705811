"""KServe canaries on the emulator, both deployment modes: step, promote, roll back, lose a race."""

from __future__ import annotations

import copy
import time

import pytest

from backends.base import ConflictError, Traffic
from backends.k8s.traffic import KServeTraffic
from tests.support.k8s.apiserver import ISVCS
from tests.support.k8s.emulator import validate_isvc

pytestmark = pytest.mark.integration
NS = "serving"


def make_isvc(mode: str, version: str) -> dict:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "breast-cancer", "namespace": NS,
                         "annotations": {"serving.kserve.io/deploymentMode": mode}},
            "spec": {"predictor": {"minReplicas": 1, "model": {
                "modelFormat": {"name": "pytorch"}, "storageUri": f"s3://models/breast-cancer/{version}"}}}}


@pytest.fixture
def kserve(apiserver):
    def start(mode: str) -> KServeTraffic:
        body = make_isvc(mode, "2")
        validate_isvc(body)
        apiserver.call(apiserver.server.create(ISVCS, NS, body))
        apiserver.call(apiserver.server._reconcile_isvc(NS, "breast-cancer"))
        return KServeTraffic({"namespace": NS, "storage_uri": "s3://models/$model/$version"})

    yield start


def stored(apiserver) -> dict:
    return apiserver.server.get(ISVCS, NS, "breast-cancer")


def settle(traffic: KServeTraffic, want: dict[str, int]):
    """The controller writes status after our write: read the split back from status."""
    deadline = time.monotonic() + 5
    while (split := traffic.get_split("breast-cancer")).weights != want:
        assert time.monotonic() < deadline, split
        time.sleep(0.02)
    return split


def checked(apiserver) -> dict:
    obj = stored(apiserver)
    validate_isvc(obj)  # every state we wrote is a valid InferenceService
    return obj


def test_serverless_canary_steps_promotes_and_rolls_back_restoring_the_model(apiserver, kserve):
    traffic = kserve("Serverless")
    assert isinstance(traffic, Traffic)
    split = settle(traffic, {"2": 100})
    for weight in (10, 50):  # start the canary of version 5, then step it
        traffic.set_split("breast-cancer", {"2": 100 - weight, "5": weight}, expected_revision=split.revision)
        split = settle(traffic, {"2": 100 - weight, "5": weight})
        predictor = checked(apiserver)["spec"]["predictor"]
        assert predictor["canaryTrafficPercent"] == weight
        assert predictor["model"]["storageUri"] == "s3://models/breast-cancer/5"
    revisions = checked(apiserver)["status"]["components"]["predictor"]["traffic"]
    assert [(r["revisionName"], r["percent"]) for r in revisions] == [
        ("breast-cancer-predictor-00001", 50), ("breast-cancer-predictor-00002", 50)]

    # roll back: pinned to 0 AND the previous model restored, so a later promote cannot ship 5
    traffic.rollback("breast-cancer", "2")
    settle(traffic, {"2": 100})
    predictor = checked(apiserver)["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 0
    assert predictor["model"]["storageUri"] == "s3://models/breast-cancer/2"

    # a new canary of 6, then promotion: the field is removed and 6 takes everything
    split = traffic.get_split("breast-cancer")
    traffic.set_split("breast-cancer", {"2": 90, "6": 10}, expected_revision=split.revision)
    split = settle(traffic, {"2": 90, "6": 10})
    traffic.set_split("breast-cancer", {"6": 100}, expected_revision=split.revision)
    settle(traffic, {"6": 100})
    predictor = checked(apiserver)["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    assert predictor["model"]["storageUri"] == "s3://models/breast-cancer/6"
    traffic.close()


def test_standard_canary_uses_spec_canary_never_canary_traffic_percent(apiserver, kserve):
    traffic = kserve("RawDeployment")
    split = settle(traffic, {"2": 100})
    for weight in (5, 25):
        traffic.set_split("breast-cancer", {"2": 100 - weight, "5": weight}, expected_revision=split.revision)
        split = settle(traffic, {"2": 100 - weight, "5": weight})
        obj = checked(apiserver)
        assert "canaryTrafficPercent" not in obj["spec"]["predictor"]  # ignored there (kserve#5335)
        assert obj["spec"]["canary"] == [{"trafficPercent": weight, "predictor": {"name": "v-5", "model": {
            "modelFormat": {"name": "pytorch"}, "storageUri": "s3://models/breast-cancer/5"}}}]
        assert obj["status"]["canaryStatuses"][0]["trafficPercent"] == weight
    traffic.rollback("breast-cancer", "2")
    settle(traffic, {"2": 100})
    obj = checked(apiserver)
    assert obj["spec"]["canary"] == [] and obj["spec"]["predictor"]["model"]["storageUri"].endswith("/2")

    split = traffic.get_split("breast-cancer")
    traffic.set_split("breast-cancer", {"2": 75, "6": 25}, expected_revision=split.revision)
    split = settle(traffic, {"2": 75, "6": 25})
    traffic.set_split("breast-cancer", {"6": 100}, expected_revision=split.revision)  # promote
    settle(traffic, {"6": 100})
    obj = checked(apiserver)
    assert obj["spec"]["canary"] == []
    assert obj["spec"]["predictor"]["name"] == "v-6"  # the canary's predictor retargeted as stable
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://models/breast-cancer/6"
    traffic.close()


@pytest.mark.parametrize("mode", ["Serverless", "RawDeployment"])
def test_a_stale_resource_version_is_a_conflict_and_writes_nothing(apiserver, kserve, mode):
    traffic = kserve(mode)
    seen = settle(traffic, {"2": 100})
    # someone else moves first (another console, kubectl): the object's resourceVersion changes
    other = KServeTraffic({"namespace": NS, "storage_uri": "s3://models/$model/$version"})
    other.set_split("breast-cancer", {"2": 90, "7": 10}, expected_revision=seen.revision)
    settle(traffic, {"2": 90, "7": 10})
    before, writes = copy.deepcopy(stored(apiserver)), len(apiserver.server.writes)
    with pytest.raises(ConflictError):
        traffic.set_split("breast-cancer", {"2": 50, "5": 50}, expected_revision=seen.revision)
    assert stored(apiserver) == before and len(apiserver.server.writes) == writes

    # the server itself refuses a stale resourceVersion (not only our early check)
    with pytest.raises(ConflictError, match="409|modified"):
        isvc = traffic.loop.run(traffic.aread("breast-cancer"))
        traffic.loop.run(traffic._write("breast-cancer", isvc, {"spec": {"canary": []}}, str(seen.revision)))
    assert stored(apiserver) == before and len(apiserver.server.writes) == writes
    # the fast rollback path re-reads and wins whatever the revision
    traffic.rollback("breast-cancer", "2")
    settle(traffic, {"2": 100})
    traffic.close()
    other.close()
