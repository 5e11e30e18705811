"""KServe canaries on the real API server's CRD machinery: structural schema, merge patches, real 409s.

The InferenceService CRD is installed from the schema kept as test data (kserve_crd.py). No
KServe controller or Knative runs (they are not built here): nothing writes `status`, so mrc
reads the split from the spec it wrote — the fallback it uses before a controller reports.
The canary controller is judged from a real Prometheus scraping a drilled queue-proxy exporter.
"""

from __future__ import annotations

import json
import time

import pytest

from backends.base import ConflictError, NotFoundError
from backends.k8s.traffic import KServeTraffic
from tests.support.k8s.emulator import validate_isvc
from tests.support.k8s.real_cluster import MODEL, STORAGE, isvc
from tests.support.prometheus import scraping_prometheus  # noqa: F401  (a fixture)
from tests.support.queue_proxy import QueueProxyExporter
from tests.support.kserve import PLAN, controller_for, two_version_ws  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration


def stored(cluster, ns: str) -> dict:
    obj = cluster.get("inferenceservice", MODEL, ns)
    validate_isvc({k: v for k, v in obj.items() if k != "metadata"} | {"metadata": {
        k: obj["metadata"][k] for k in ("name", "namespace", "annotations", "resourceVersion", "uid", "generation",
                                        "creationTimestamp") if k in obj["metadata"]}})
    return obj


def test_a_missing_crd_is_not_found_naming_the_crd(crd):
    assert isinstance(crd, NotFoundError), repr(crd)
    assert "CustomResourceDefinition" in str(crd) and "\n" not in str(crd)


@pytest.mark.parametrize("mode", ["Serverless", "RawDeployment"])
def test_canary_steps_rollback_promote_and_real_409s(cluster, crd, mode):
    ns = cluster.namespace()
    cluster.apply(isvc(ns, mode, "2"))
    traffic = KServeTraffic({"namespace": ns, "storage_uri": STORAGE, "kubeconfig": str(cluster.mrc_kubeconfig)})
    split = traffic.get_split(MODEL)
    assert split.weights == {"2": 100}
    for weight in (10, 50):
        split = traffic.set_split(MODEL, {"2": 100 - weight, "5": weight}, expected_revision=split.revision)
        obj = stored(cluster, ns)
        assert int(obj["metadata"]["resourceVersion"]) == split.revision
        if mode == "Serverless":
            assert obj["spec"]["predictor"]["canaryTrafficPercent"] == weight
            assert obj["spec"]["predictor"]["model"]["storageUri"] == f"s3://models/{MODEL}/5"
        else:
            assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
            assert obj["spec"]["canary"] == [{"trafficPercent": weight, "predictor": {"name": "v-5", "model": {
                "modelFormat": {"name": "pytorch"}, "storageUri": f"s3://models/{MODEL}/5"}}}]
        assert traffic.get_split(MODEL).weights == {"2": 100 - weight, "5": weight}

    # someone else writes (kubectl as admin): the resourceVersion we saw is stale
    cluster.kubectl("annotate", "inferenceservice", MODEL, "-n", ns, "team/owner=ml")
    before = stored(cluster, ns)
    with pytest.raises(ConflictError):  # mrc's own check
        traffic.set_split(MODEL, {"2": 20, "5": 80}, expected_revision=split.revision)
    with pytest.raises(ConflictError, match="409|modified"):  # the API server's 409 on the merge patch
        traffic.loop.run(traffic._write(MODEL, before, {"spec": {"canary": []}}, str(split.revision)))
    assert stored(cluster, ns) == before  # nothing written

    rolled = traffic.rollback(MODEL, "2")  # re-reads, CAS on what it read
    obj = stored(cluster, ns)
    assert rolled.weights == {"2": 100} and traffic.get_split(MODEL).weights == {"2": 100}
    assert obj["spec"]["predictor"]["model"]["storageUri"] == f"s3://models/{MODEL}/2"
    if mode == "Serverless":
        assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0  # pinned AND the model restored
    else:
        assert obj["spec"]["canary"] == []

    split = traffic.get_split(MODEL)
    split = traffic.set_split(MODEL, {"2": 75, "6": 25}, expected_revision=split.revision)
    traffic.set_split(MODEL, {"6": 100}, expected_revision=split.revision)  # promote
    obj = stored(cluster, ns)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == f"s3://models/{MODEL}/6"
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"] and not obj["spec"].get("canary")
    assert traffic.get_split(MODEL).weights == {"6": 100}
    traffic.close()


def test_the_structural_schema_rejects_out_of_range_and_prunes_typos(cluster, crd):
    ns = cluster.namespace()
    cluster.apply(isvc(ns, "Serverless", "2"))
    bad = cluster.kubectl("patch", "inferenceservice", MODEL, "-n", ns, "--type", "merge", "-p",
                          json.dumps({"spec": {"predictor": {"canaryTrafficPercent": 150}}}), check=False)
    assert bad.returncode != 0 and "canaryTrafficPercent" in bad.stderr
    cluster.kubectl("patch", "inferenceservice", MODEL, "-n", ns, "--type", "merge", "-p",
                    json.dumps({"spec": {"predictor": {"canaryTraficPercent": 10}}}))
    assert "canaryTraficPercent" not in stored(cluster, ns)["spec"]["predictor"]  # pruned, silently
    strategic = cluster.kubectl("patch", "inferenceservice", MODEL, "-n", ns, "--type", "strategic", "-p",
                                json.dumps({"spec": {"predictor": {"minReplicas": 2}}}), check=False)
    assert strategic.returncode != 0 and "UnsupportedMediaType" in strategic.stderr  # 415: why mrc merge-patches


def test_a_drilled_candidate_is_rolled_back_automatically_then_mrc_rollback_on_a_new_canary(
        cluster, crd, two_version_ws, scraping_prometheus, mrc):  # noqa: F811
    ns = cluster.namespace()
    cluster.apply(isvc(ns, "Serverless", "1"))
    traffic = KServeTraffic({"namespace": ns, "storage_uri": STORAGE, "kubeconfig": str(cluster.mrc_kubeconfig)})
    exporter = QueueProxyExporter()
    try:
        from backends.prometheus.metrics import PrometheusMetrics

        exporter.serve(f"{MODEL}-predictor-1", per_tick=20, error_ratio=0.005, latency_ms=20)
        exporter.serve(f"{MODEL}-predictor-2", per_tick=10, error_ratio=0.3, latency_ms=400)  # the drill
        metrics = PrometheusMetrics(scraping_prometheus(exporter.target))
        wait_for_scrapes = time.monotonic() + 60
        while metrics.health(MODEL, "1", time.time() - 5, time.time()).requests in (None, 0):
            assert time.monotonic() < wait_for_scrapes, "Prometheus never scraped the exporter"
            time.sleep(0.5)
        controller = controller_for(two_version_ws, traffic, metrics)
        state = controller.run(controller.start("2", PLAN), max_seconds=60)
        assert state.status == "rolled_back", state.reason
        assert "error rate" in state.reason
        predictor = stored(cluster, ns)["spec"]["predictor"]
        assert predictor["canaryTrafficPercent"] == 0 and predictor["model"]["storageUri"] == f"s3://models/{MODEL}/1"
        metrics.close()

        # a new canary, then `mrc rollback` (the key R) as one command, as the least-privileged user
        toml = two_version_ws.config_path.read_text().replace('[traffic]\nbackend = "local"', "[traffic]\n"
            f'backend = "k8s"\nnamespace = "{ns}"\nstorage_uri = "{STORAGE}"\nkubeconfig = "{cluster.mrc_kubeconfig}"')
        assert f'namespace = "{ns}"' in toml
        two_version_ws.config_path.write_text(toml)
        controller = controller_for(two_version_ws, traffic, metrics=None)
        state = controller.tick(controller.start("2", PLAN))
        assert state.weight == 10 and traffic.get_split(MODEL).weights == {"1": 90, "2": 10}
        result = mrc("rollback", MODEL, "--json", "--workspace", str(two_version_ws.root))
        assert result.returncode == 0, result.stderr
        assert result.json()["traffic"] == {"1": 100}
        predictor = stored(cluster, ns)["spec"]["predictor"]
        assert predictor["canaryTrafficPercent"] == 0 and predictor["model"]["storageUri"] == f"s3://models/{MODEL}/1"
    finally:
        exporter.close()
        traffic.close()
