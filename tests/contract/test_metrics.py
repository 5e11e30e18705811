"""One contract for every metrics backend (backends.base.Metrics): the same requests, recorded
the way each source records them — the local router's request log (requests.jsonl), a real
Prometheus holding Knative queue-proxy counters (backfilled by promtool: exact samples, no
waiting) — must give the same health windows: requests, errors, error rate, a latency in the
right bucket, and "no data" (never "healthy") for a version that served nothing.

Each source's own details (counter resets, disorder in the log, labels …) are tested in
tests/integration/prometheus/ and tests/unit/serving/.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from backends.base import HealthWindow, Metrics
from tests.support.prometheus import preloaded_prometheus  # noqa: F401  (fixture: a real Prometheus)

MODEL = "m"
STEP_S = 15
STEPS = 40
LATENCY_MS = 30.0  # every request; the histogram's bucket is (25, 50]
BUCKETS_MS = (10.0, 25.0, 50.0, 100.0, float("inf"))


@dataclass(frozen=True)
class Served:
    ok: int  # per step
    failed: int


SERVED = {"1": Served(ok=10, failed=2), "2": Served(ok=6, failed=0)}


def _t0() -> int:
    return (int(time.time()) - 3600) // 60 * 60 + 7  # an hour ago, off the minute grid


def _local(tmp_path: Path, request) -> tuple[Metrics, int]:
    """The router's log as the router writes it: one line per request, stamped inside its step."""
    from backends.local.metrics import LocalMetrics

    t0 = _t0()
    log = tmp_path / "serving" / MODEL / "requests.jsonl"
    log.parent.mkdir(parents=True)
    lines = []
    for k in range(1, STEPS + 1):
        for version, served in SERVED.items():
            for i in range(served.ok + served.failed):
                status = 200 if i < served.ok else 500
                lines.append({"type": "request", "t": t0 + k * STEP_S - 0.5 - i * 0.01, "id": f"{version}-{k}-{i}",
                              "key": None, "v": version, "status": status, "ms": LATENCY_MS,
                              "p": 0.7 if status == 200 else None})
    lines.sort(key=lambda r: r["t"])
    log.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in lines))
    return LocalMetrics(tmp_path), t0


def _openmetrics(t0: int) -> str:
    """queue-proxy's counters, growing by SERVED each step, sampled at t0 + k·STEP_S."""
    counts, buckets = ["# TYPE revision_app_request_count gauge"], ["# TYPE revision_app_request_latencies_bucket gauge"]
    for version, served in SERVED.items():
        base = f'namespace_name="serving",revision_name="{MODEL}-predictor-{version}"'
        for k in range(STEPS + 1):
            ts = t0 + k * STEP_S
            counts.append(f'revision_app_request_count{{{base},response_code_class="2xx"}} {served.ok * k} {ts}')
            if served.failed:
                counts.append(f'revision_app_request_count{{{base},response_code_class="5xx"}} {served.failed * k} {ts}')
            for bound in BUCKETS_MS:
                le = "+Inf" if bound == float("inf") else repr(bound)
                total = (served.ok + served.failed) * k if bound >= LATENCY_MS else 0
                buckets.append(f'revision_app_request_latencies_bucket{{{base},le="{le}"}} {total} {ts}')
    return "\n".join(counts + buckets + ["# EOF", ""])


def _prometheus(tmp_path: Path, request) -> tuple[Metrics, int]:
    from backends.prometheus.metrics import PrometheusMetrics

    t0 = _t0()
    url = request.getfixturevalue("preloaded_prometheus")(_openmetrics(t0))
    metrics = PrometheusMetrics(url)
    request.addfinalizer(metrics.close)
    return metrics, t0


SOURCES = {"local": _local, "prometheus": _prometheus}


@pytest.fixture(params=["local", pytest.param("prometheus", marks=pytest.mark.integration)])
def source(request, tmp_path):
    return SOURCES[request.param](tmp_path, request)


def _window(t0: int, first_step: int, last_step: int) -> tuple[float, float]:
    """(start, end) holding the requests of steps first_step..last_step, its edges between steps."""
    return t0 + (first_step - 1) * STEP_S + 5, t0 + last_step * STEP_S + 5


def test_is_a_metrics_backend(source):
    metrics, _ = source
    assert isinstance(metrics, Metrics)


@pytest.mark.parametrize("first, last", [(2, 3), (5, 14), (21, 40)])
def test_counts_the_requests_and_errors_of_the_window(source, first, last):
    metrics, t0 = source
    start, end = _window(t0, first, last)
    steps = last - first + 1
    for version, served in SERVED.items():
        window = metrics.health(MODEL, version, start, end)
        assert isinstance(window, HealthWindow)
        assert (window.model, window.version, window.start, window.end) == (MODEL, version, start, end)
        assert (window.requests, window.errors) == ((served.ok + served.failed) * steps, served.failed * steps)
        assert window.error_rate == pytest.approx(served.failed / (served.ok + served.failed))


def test_consecutive_windows_partition_the_counts(source):
    metrics, t0 = source
    whole = metrics.health(MODEL, "1", *_window(t0, 3, 20))
    parts = [metrics.health(MODEL, "1", *_window(t0, a, a + 5)) for a in (3, 9, 15)]
    assert sum(p.requests for p in parts) == whole.requests == 18 * 12
    assert sum(p.errors for p in parts) == whole.errors == 18 * 2


def test_latency_falls_in_the_bucket_of_the_requests(source):
    metrics, t0 = source
    window = metrics.health(MODEL, "1", *_window(t0, 5, 14))
    for latency in (window.latency_p50_ms, window.latency_p99_ms):
        assert latency is not None and 25.0 <= latency <= 50.0, latency


def test_a_version_that_served_nothing_has_no_data_not_good_health(source):
    metrics, t0 = source
    window = metrics.health(MODEL, "9", *_window(t0, 5, 14))
    assert window.requests == 0 and window.errors == 0
    assert window.error_rate is None and window.latency_p99_ms is None and window.online_accuracy is None


def test_a_window_before_any_request_has_no_data(source):
    metrics, t0 = source
    window = metrics.health(MODEL, "1", t0 - 600, t0 - 300)
    assert window.requests == 0 and window.error_rate is None
