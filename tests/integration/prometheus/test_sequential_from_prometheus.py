"""The sequential latency tests from a real Prometheus: histogram bucket counts per `le`, counted
exactly from raw samples, feed the count test on requests above stable's p99 bucket (issue 12: a
canary 2x slower on every request was promoted 100/100 from Prometheus before)."""

from __future__ import annotations

import time

import pytest

from backends.prometheus.metrics import PrometheusMetrics
from console.rollout import canary
from console.rollout import sequential
from console.domain import CanaryPlan
from tests.support.prometheus import preloaded_prometheus  # noqa: F401  (the fixture)
from tests.support.queue_proxy import StepTraffic, openmetrics_backfill

pytestmark = pytest.mark.integration

STEP_S = 15


@pytest.fixture
def histograms(preloaded_prometheus):  # noqa: F811
    end = (int(time.time()) - 1800) // STEP_S * STEP_S
    traffic = {
        # stable: 300 requests per 15 s: 150 in (10,25] ms, 147 in (25,50], 3 in (50,100]: p99 bucket 50 ms
        "m-predictor-1": StepTraffic(ok=297, failed=3, bucket_counts={25.0: 150, 50.0: 147, 100.0: 3}),
        # canary: 75 per 15 s (20 % of the traffic, as the plan's split says), every request about 2.5x
        # slower: 37 in (50,100], 35 in (100,250], 3 in (250,500]
        "m-predictor-2": StepTraffic(ok=75, failed=0, bucket_counts={100.0: 37, 250.0: 35, 500.0: 3}),
    }
    url = preloaded_prometheus(openmetrics_backfill(traffic, end=end, steps=40, step_s=STEP_S))
    metrics = PrometheusMetrics(url)
    yield metrics, end
    metrics.close()


def test_bucket_counts_are_exact_per_le(histograms):
    metrics, end = histograms
    stable = metrics.health("m", "1", end - 300, end)  # 20 sample steps
    assert stable.bucket_method == "raw-samples"
    assert dict(stable.latency_buckets) == {10.0: 0, 25.0: 3000, 50.0: 5940, 100.0: 6000, 250.0: 6000, 500.0: 6000,
                                            1000.0: 6000, float("inf"): 6000}
    assert stable.latency_buckets[-1][1] == stable.requests
    canary_w = metrics.health("m", "2", end - 300, end)
    assert dict(canary_w.latency_buckets)[100.0] == 740 and dict(canary_w.latency_buckets)[float("inf")] == 1500
    assert 'revision_name="m-predictor-2"' in canary_w.queries["latency_buckets"]


def test_a_slower_canary_is_rolled_back_from_prometheus_histograms_alone(histograms):
    metrics, end = histograms
    plan = CanaryPlan(steps=[20, 100], hold_s=6000, interval_s=60)
    state = canary.new_state("m", "1", "2", plan, end - 600, "t")
    state = canary.apply(state, canary.decide(state, end - 600), end - 600, "t")
    decision = None
    for start in range(end - 600, end, 60):
        stable_w, canary_w = metrics.health("m", "1", start, start + 60), metrics.health("m", "2", start, start + 60)
        assert not stable_w.latencies_ms and stable_w.latency_buckets  # Prometheus gives no raw latencies
        analysis = canary.analyze(state, stable_w, canary_w, start + 60)
        state = canary.record_analysis(state, analysis, "t")
        decision = canary.decide(state, start + 60, analysis)
        if decision.action != canary.HOLD:
            break
    assert decision.action == canary.ROLLBACK, state.sequential["results"]
    tail = {r["metric"]: r for r in state.sequential["results"]}["latency_over_p99"]
    assert tail["decision"] == sequential.REJECT and "latency_over_p99" in decision.reason
    assert {r["metric"]: r for r in state.sequential["results"]}["sample_ratio"]["decision"] != sequential.REJECT
    # stable's p99 bucket (50 ms) is the bound; the canary is counted above 100 ms (50 x 1.1, rounded up a bucket)
    assert state.sequential["cumulative"]["latency_tail"]["bound_ms"] == 50.0
