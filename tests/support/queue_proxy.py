"""Test data in the shape of Knative's queue-proxy metrics, two ways.

- `openmetrics_backfill(...)`: exact counters and histograms as OpenMetrics text for promtool.
- `QueueProxyExporter`: a live prometheus-client endpoint whose traffic per revision the test
  sets (request rate, error ratio, latency), scraped by a real Prometheus.
Names and labels follow queue-proxy: `revision_app_request_count{revision_name,
response_code_class}` and the `revision_app_request_latencies` histogram in milliseconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

BUCKETS_MS = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, float("inf"))


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


@dataclass
class StepTraffic:
    """What one revision serves per sample step: ok and failed requests, latency per bucket."""

    ok: int
    failed: int
    bucket_counts: dict[float, int]  # upper bound -> observations in that bucket (not cumulative)
    namespace: str = "serving"


def openmetrics_backfill(traffic: dict[str, StepTraffic], *, end: int, steps: int, step_s: int = 15) -> str:
    """Counters growing linearly by `traffic` per step, samples at end - steps*step_s … end."""
    lines = ["# TYPE revision_app_request_count gauge"]  # a gauge to promtool; counter semantics to PromQL
    hist_lines = ["# TYPE revision_app_request_latencies_bucket gauge"]
    for revision, t in traffic.items():
        for i in range(steps + 1):
            ts = end - (steps - i) * step_s
            base = f'namespace_name="{t.namespace}",revision_name="{revision}"'
            lines.append(f'revision_app_request_count{{{base},response_code_class="2xx"}} {t.ok * i} {ts}')
            lines.append(f'revision_app_request_count{{{base},response_code_class="5xx"}} {t.failed * i} {ts}')
            cumulative = 0
            for bound in BUCKETS_MS:
                cumulative += t.bucket_counts.get(bound, 0)
                hist_lines.append(f'revision_app_request_latencies_bucket{{{base},le="{_le(bound)}"}} {cumulative * i} {ts}')
    return "\n".join(lines + hist_lines + ["# EOF", ""])


class QueueProxyExporter:
    """A /metrics endpoint on 127.0.0.1 in queue-proxy's shape, fed by a traffic thread."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, start_http_server

        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], float] = {}  # (revision, code class) -> requests
        self.buckets: dict[str, list[float]] = {}  # revision -> non-cumulative bucket counts
        self.sums: dict[str, float] = {}
        self.profiles: dict[str, tuple[int, float, float]] = {}  # revision -> (req per tick, error ratio, ms)
        registry = CollectorRegistry()
        registry.register(self)
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.target = f"127.0.0.1:{self.server.server_port}"
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._run, daemon=True)
        self._ticker.start()

    def serve(self, revision: str, *, per_tick: int, error_ratio: float, latency_ms: float) -> None:
        """From now on `revision` serves per_tick requests every 50 ms with this error ratio and latency."""
        with self.lock:
            self.profiles[revision] = (per_tick, error_ratio, latency_ms)

    def _run(self) -> None:
        debt: dict[str, float] = {}
        while not self._stop.wait(0.05):
            with self.lock:
                for revision, (per_tick, error_ratio, latency_ms) in self.profiles.items():
                    debt[revision] = debt.get(revision, 0.0) + per_tick * error_ratio
                    failed = int(debt[revision])
                    debt[revision] -= failed
                    self.counts[(revision, "5xx")] = self.counts.get((revision, "5xx"), 0) + failed
                    self.counts[(revision, "2xx")] = self.counts.get((revision, "2xx"), 0) + per_tick - failed
                    counts = self.buckets.setdefault(revision, [0.0] * len(BUCKETS_MS))
                    index = next(i for i, bound in enumerate(BUCKETS_MS) if latency_ms <= bound)
                    counts[index] += per_tick
                    self.sums[revision] = self.sums.get(revision, 0.0) + per_tick * latency_ms

    def collect(self):
        from prometheus_client.core import HistogramMetricFamily, UnknownMetricFamily

        with self.lock:
            requests = UnknownMetricFamily("revision_app_request_count", "requests served by the revision",
                                           labels=["namespace_name", "revision_name", "response_code_class"])
            for (revision, code), value in sorted(self.counts.items()):
                requests.add_metric(["serving", revision, code], value)
            latencies = HistogramMetricFamily("revision_app_request_latencies", "request latency in ms",
                                              labels=["namespace_name", "revision_name"])
            for revision, counts in sorted(self.buckets.items()):
                cumulative, buckets = 0.0, []
                for bound, count in zip(BUCKETS_MS, counts):
                    cumulative += count
                    buckets.append((_le(bound), cumulative))
                latencies.add_metric(["serving", revision], buckets, self.sums[revision])
        yield requests
        yield latencies

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=5)
        self.server.shutdown()
        self.server.server_close()
        time.sleep(0)
