"""End to end: the canary controller (console/rollout/controller.py, unchanged) on KServe + Prometheus.

Traffic: KServeTraffic on the Kubernetes emulator (tests/support/k8s/apiserver.py), Serverless mode.
Metrics: PrometheusMetrics on a real Prometheus scraping a queue-proxy-shaped endpoint whose
per-revision errors and latency the test drills. A regression on the canary revision is
rolled back (pinned to 0 and the previous storageUri restored); a canary with no data holds
and says why.
"""

from __future__ import annotations

import time

import pytest

from backends.base import Lineage
from backends.k8s.traffic import KServeTraffic
from backends.prometheus.metrics import PrometheusMetrics
from console.domain import CanaryPlan
from tests.support.k8s.apiserver import ISVCS, RunningApiServer
from tests.support.queue_proxy import QueueProxyExporter
from tests.support.kserve import PLAN, controller_for, two_version_ws  # noqa: F401

pytestmark = pytest.mark.integration
MODEL, NS = "breast-cancer", "serving"
STORAGE = "s3://models/$model/$version"


@pytest.fixture
def kserve(tmp_path):
    running = RunningApiServer(tmp_path / "kubeconfig.json").start()
    body = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": MODEL, "annotations": {"serving.kserve.io/deploymentMode": "Serverless"}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "pytorch"},
                                             "storageUri": f"s3://models/{MODEL}/1"}}}}
    running.call(running.server.create(ISVCS, NS, body))
    running.call(running.server._reconcile_isvc(NS, MODEL))
    traffic = KServeTraffic({"namespace": NS, "storage_uri": STORAGE, "kubeconfig": str(running.kubeconfig)})
    yield running, traffic
    traffic.close()
    running.stop()


@pytest.fixture
def exporter():
    live = QueueProxyExporter()
    yield live
    live.close()


def test_a_drilled_regression_in_prometheus_is_rolled_back_on_kserve(two_version_ws, kserve, exporter,
                                                                     scraping_prometheus):
    apiserver, traffic = kserve
    exporter.serve(f"{MODEL}-predictor-1", per_tick=20, error_ratio=0.005, latency_ms=20)
    exporter.serve(f"{MODEL}-predictor-2", per_tick=10, error_ratio=0.3, latency_ms=400)  # the drill
    metrics = PrometheusMetrics(scraping_prometheus(exporter.target))
    time.sleep(2.5)  # a couple of scrapes before the first window
    controller = controller_for(two_version_ws, traffic, metrics)
    state = controller.start("2", PLAN)
    state = controller.run(state, max_seconds=40)
    assert state.status == "rolled_back", state.reason
    assert "error rate" in state.reason
    predictor = apiserver.server.get(ISVCS, NS, MODEL)["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 0  # pinned …
    assert predictor["model"]["storageUri"] == f"s3://models/{MODEL}/1"  # … and the good model restored
    assert traffic.get_split(MODEL).weights == {"1": 100}
    judged = [a for a in state.analyses if a["window_verdict"] == "fail"]
    assert judged and judged[-1]["canary"]["error_rate"] > 0.15
    metrics.close()


def test_a_canary_that_serves_nothing_fails_closed_and_says_why(two_version_ws, kserve, exporter, scraping_prometheus):
    """Silence is not health (issue 11): a canary with traffic but no requests in Prometheus is a
    failed check each window, and consecutive failures roll it back with the reason recorded."""
    _, traffic = kserve
    exporter.serve(f"{MODEL}-predictor-1", per_tick=20, error_ratio=0.005, latency_ms=20)  # the canary serves nothing
    metrics = PrometheusMetrics(scraping_prometheus(exporter.target))
    time.sleep(2.5)
    controller = controller_for(two_version_ws, traffic, metrics)
    state = controller.start("2", PLAN)
    state = controller.run(state, max_seconds=120)  # ends as soon as it rolls back
    assert state.status == "rolled_back", (state.status, state.reason)
    assert traffic.get_split(MODEL).weights == {"1": 100}
    assert state.analyses and all(a["window_verdict"] != "healthy" for a in state.analyses)
    assert "no requests reached canary 2" in state.reason and "failed check" in state.reason, state.reason
    window = metrics.health(MODEL, "2", time.time() - 2, time.time())
    assert window.missing["requests"].startswith("no data") and window.error_rate is None
    metrics.close()


def test_mrc_rollback_one_command_rolls_a_live_kserve_canary_back(two_version_ws, kserve, mrc):
    """`mrc rollback MODEL` (the key `R` behind it) on a workspace whose traffic is KServe."""
    apiserver, traffic = kserve
    toml = two_version_ws.config_path.read_text().replace('[traffic]\nbackend = "local"', "[traffic]\n"
        f'backend = "k8s"\nnamespace = "{NS}"\nstorage_uri = "{STORAGE}"\nkubeconfig = "{apiserver.kubeconfig}"')
    assert 'backend = "k8s"' in toml
    two_version_ws.config_path.write_text(toml)
    controller = controller_for(two_version_ws, traffic, metrics=None)
    state = controller.tick(controller.start("2", PLAN))  # the first step: 10 % to the canary
    assert state.weight == 10 and traffic.get_split(MODEL).weights == {"1": 90, "2": 10}
    started = time.perf_counter()
    result = mrc("rollback", MODEL, "--json", "--workspace", str(two_version_ws.root))
    elapsed = time.perf_counter() - started
    print(f"`mrc rollback` of a live KServe canary, whole process: {elapsed * 1000:.0f} ms")
    assert result.returncode == 0, result.stderr
    assert result.json()["traffic"] == {"1": 100}
    predictor = apiserver.server.get(ISVCS, NS, MODEL)["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 0 and predictor["model"]["storageUri"] == f"s3://models/{MODEL}/1"
    from console.rollout.controller import current_state

    assert current_state(two_version_ws, MODEL).status == "rolled_back"
