"""PrometheusMetrics against a real Prometheus: exact numbers from backfilled blocks, and a live scrape."""

from __future__ import annotations

import time

import pytest

from backends.base import BadInputError, Metrics
from backends.prometheus.metrics import PrometheusMetrics
from tests.support.queue_proxy import BUCKETS_MS, QueueProxyExporter, StepTraffic, openmetrics_backfill

pytestmark = pytest.mark.integration

STEP_S = 15


@pytest.fixture
def backfilled(preloaded_prometheus):
    """A Prometheus holding 10 minutes of exact queue-proxy metrics for three revisions of m."""
    end = (int(time.time()) - 1800) // STEP_S * STEP_S  # half an hour ago, aligned to the sample step
    traffic = {
        # stable: 300 requests per 15 s (20 rps), 1 % errors, half in (10,25] ms and half in (25,50] ms
        "m-predictor-1": StepTraffic(ok=297, failed=3, bucket_counts={25.0: 150, 50.0: 150}),
        # canary: 30 requests per 15 s, 20 % errors, all in (250,500] ms: a drilled regression
        "m-predictor-2": StepTraffic(ok=24, failed=6, bucket_counts={500.0: 30}),
        # deployed but idle: series exist, counters never move
        "m-predictor-3": StepTraffic(ok=0, failed=0, bucket_counts={}),
    }
    url = preloaded_prometheus(openmetrics_backfill(traffic, end=end, steps=40, step_s=STEP_S))
    metrics = PrometheusMetrics(url)
    yield metrics, end
    metrics.close()


def test_exact_health_windows_from_backfilled_queue_proxy_metrics(backfilled):
    metrics, end = backfilled
    assert isinstance(metrics, Metrics)
    stable = metrics.health("m", "1", end - 300, end)
    assert (stable.requests, stable.errors) == (6000, 60)
    assert stable.error_rate == pytest.approx(0.01)
    # histogram_quantile interpolates inside the bucket: rank 150 of 300 ends (10,25] -> 25 ms;
    # rank 297 sits 147/150 into (25,50] -> 49.5 ms
    assert stable.latency_p50_ms == pytest.approx(25.0)
    assert stable.latency_p99_ms == pytest.approx(49.5)
    assert stable.missing == {}

    canary = metrics.health("m", "2", end - 300, end)
    assert (canary.requests, canary.errors) == (600, 120)
    assert canary.error_rate == pytest.approx(0.2)
    assert canary.latency_p50_ms == pytest.approx(375.0)
    assert canary.latency_p99_ms == pytest.approx(497.5)
    # the PromQL that ran is kept, so the screen's action log can show it
    assert 'revision_name="m-predictor-2"' in canary.queries["latency_p99"]
    assert canary.queries["latency_p99"].startswith("histogram_quantile(0.99, sum by (le) (rate(")


def test_no_data_and_nan_are_none_with_a_reason_never_healthy(backfilled):
    metrics, end = backfilled
    idle = metrics.health("m", "3", end - 300, end)  # series exist, nothing served: NaN quantiles
    assert idle.requests == 0 and idle.error_rate is None
    assert idle.latency_p50_ms is None and idle.latency_p99_ms is None
    assert idle.missing["requests"] == "no requests in the window"
    assert "NaN" in idle.missing["latency_p99"]

    absent = metrics.health("m", "9", end - 300, end)  # no such revision: empty vectors
    assert absent.requests == 0 and absent.error_rate is None and absent.latency_p99_ms is None
    assert absent.missing["requests"].startswith("no data")
    assert absent.missing["latency_p50"].startswith("no data")

    later = metrics.health("m", "1", end + 3600, end + 3900)  # a window after the data ended
    assert later.error_rate is None and later.missing["requests"].startswith("no data")


def test_queries_and_revisions_are_configurable(backfilled):
    metrics, end = backfilled
    custom = PrometheusMetrics.from_config({
        "url": metrics.url,
        "revisions": {"m@42": "m-predictor-2"},  # Knative numbers revisions itself
        "queries": {"errors": 'sum(increase(revision_app_request_count{$selector, response_code_class=~"5.."}[$window]))'},
    })
    window = custom.health("m", "42", end - 300, end)
    assert (window.requests, window.errors) == (600, 120)
    custom.close()

    with pytest.raises(BadInputError, match=r"metrics\.queries\.errors.*\$windw"):
        PrometheusMetrics.from_config({"url": metrics.url, "queries": {"errors": "sum(x[$windw])"}})
    with pytest.raises(BadInputError, match=r"metrics\.queries\.p999 is not a known measure"):
        PrometheusMetrics.from_config({"url": metrics.url, "queries": {"p999": "up"}})
    broken = PrometheusMetrics.from_config({"url": metrics.url, "queries": {"requests": "sum(rate(up[$window])"}})
    with pytest.raises(BadInputError, match="rejected by Prometheus"):
        broken.health("m", "1", end - 300, end)
    broken.close()


def test_live_scrape_sees_a_drilled_regression_on_the_canary_revision(scraping_prometheus):
    exporter = QueueProxyExporter()
    try:
        exporter.serve("m-predictor-1", per_tick=20, error_ratio=0.01, latency_ms=20)
        exporter.serve("m-predictor-2", per_tick=10, error_ratio=0.3, latency_ms=400)  # the drill
        url = scraping_prometheus(exporter.target)
        metrics = PrometheusMetrics(url)
        deadline = time.monotonic() + 30
        while True:  # wait until a few scrapes landed; each health() is a real query
            now = time.time()
            stable, canary = metrics.health("m", "1", now - 5, now), metrics.health("m", "2", now - 5, now)
            # counts are exact from the first scrape after the window's start (an anchor before it);
            # the p99 needs two scrapes inside the 5 s window for rate()
            if (stable.requests > 500 and canary.requests > 250 and stable.latency_p99_ms is not None
                    and canary.latency_p99_ms is not None):
                break
            assert time.monotonic() < deadline, (stable.missing, canary.missing)
            time.sleep(0.5)
        assert stable.error_rate < 0.05 and canary.error_rate > 0.2
        assert stable.latency_p99_ms <= BUCKETS_MS[1] and canary.latency_p99_ms > BUCKETS_MS[4]
        metrics.close()
    finally:
        exporter.close()


def test_unreachable_prometheus_is_a_backend_error_after_retries():
    from backends.base import BackendError
    from tests.support.prometheus import free_port

    metrics = PrometheusMetrics(f"http://127.0.0.1:{free_port()}", retries=2, timeout_s=0.5)
    with pytest.raises(BackendError, match="after 2 attempts"):
        metrics.health("m", "1", 0, 300)
