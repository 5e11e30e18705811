"""Exact request/error counts from raw counter samples in a real Prometheus (issue 12, item 3).

The samples are backfilled with promtool at a 15 s step that is *not* aligned with the windows,
with a counter reset (a restarted pod) inside a window and a series born mid-way, so the
counts differ from what `increase()` extrapolates.
"""

from __future__ import annotations

import time

import pytest

from backends.base import BadInputError
from backends.prometheus.metrics import PrometheusMetrics, counter_increase

pytestmark = pytest.mark.integration

STEP_S = 15
STEPS = 40
RESET_AT = 20  # the sample index at which the pod restarted: its counters start again from 0
BORN_AT = 30  # the 4xx series appears at this sample (its first 4xx)


def _increments(steps: int = STEPS):
    """Per sample k: requests (2xx, 5xx, 4xx) recorded since sample k − 1."""
    return [(100 + (k % 7) * 3, k % 3, 5 if k >= BORN_AT else 0) for k in range(steps + 1)]


def _openmetrics(t0: int) -> str:
    lines = ["# TYPE revision_app_request_count gauge"]  # a gauge to promtool; counter semantics to PromQL
    values = {"2xx": 0, "5xx": 0, "4xx": 0}
    for k, incs in enumerate(_increments()):
        if k == RESET_AT:
            values = {code: 0 for code in values}
        for code, inc in zip(("2xx", "5xx", "4xx"), incs):
            values[code] += inc if k else 0
            if code == "4xx" and k < BORN_AT:
                continue
            lines.append(f'revision_app_request_count{{namespace_name="serving",revision_name="m-predictor-1",'
                         f'response_code_class="{code}"}} {values[code]} {t0 + k * STEP_S}')
    return "\n".join(lines + ["# EOF", ""])


def _expected(t0: int, start: float, end: float) -> tuple[int, int]:
    """Requests and errors recorded by the samples in (start, end], from the generator's own increments."""
    requests = errors = 0
    for k, (ok, failed, client) in enumerate(_increments()):
        if k and start < t0 + k * STEP_S <= end:
            requests += ok + failed + client
            errors += failed
    return requests, errors


@pytest.fixture
def counters(preloaded_prometheus):
    t0 = (int(time.time()) - 3600) // 60 * 60 + 7  # an hour ago, samples 7 s off the minute grid
    url = preloaded_prometheus(_openmetrics(t0))
    metrics = PrometheusMetrics(url)
    yield metrics, t0
    metrics.close()


def test_a_window_of_two_scrape_intervals_across_a_counter_reset_counts_exactly(counters):
    metrics, t0 = counters
    start, end = t0 + RESET_AT * STEP_S - 12, t0 + RESET_AT * STEP_S + 18  # 30 s: samples 20 (the reset) and 21
    window = metrics.health("m", "1", start, end)
    assert (window.requests, window.errors) == _expected(t0, start, end)
    assert window.count_method == {"requests": "raw-samples", "errors": "raw-samples"}
    assert window.queries["requests"] == 'revision_app_request_count{revision_name="m-predictor-1"}[330s]'
    # what increase() makes of the same window: extrapolated to the edges, and a fraction
    [(_, extrapolated)] = metrics.query('sum(increase(revision_app_request_count{revision_name="m-predictor-1"}[30s]))', end)
    assert extrapolated != pytest.approx(window.requests, abs=0.5)


def test_consecutive_windows_partition_the_counts(counters):
    metrics, t0 = counters
    a = t0 + 3 * STEP_S + 4
    total = metrics.health("m", "1", a, a + 540)
    parts = [metrics.health("m", "1", a + 30 * i, a + 30 * (i + 1)) for i in range(18)]
    for i, part in enumerate(parts):
        assert (part.requests, part.errors) == _expected(t0, a + 30 * i, a + 30 * (i + 1)), i
    assert sum(p.requests for p in parts) == total.requests == _expected(t0, a, a + 540)[0]
    assert sum(p.errors for p in parts) == total.errors == _expected(t0, a, a + 540)[1]
    # the 4xx series born at sample 30 counts its first value (a new series starts from 0)
    born = t0 + BORN_AT * STEP_S
    assert metrics.health("m", "1", born - 10, born + 1).requests == sum(_increments()[BORN_AT])


def test_windows_without_samples_are_missing_not_zero(counters):
    metrics, t0 = counters
    gap = metrics.health("m", "1", t0 + 5 * STEP_S + 1, t0 + 5 * STEP_S + 10)  # between two scrapes
    assert gap.requests == 0 and gap.error_rate is None and gap.missing["requests"].startswith("no data")
    after = metrics.health("m", "1", t0 + 3 * 3600, t0 + 3 * 3600 + 60)
    assert after.requests == 0 and after.missing["requests"].startswith("no data")


def test_an_aggregate_query_override_is_still_accepted_and_says_so(counters):
    metrics, t0 = counters
    custom = PrometheusMetrics.from_config({
        "url": metrics.url, "counter_lookback_s": 60,
        "queries": {"errors": 'sum(increase(revision_app_request_count{$selector, response_code_class="5xx"}[$window]))'}})
    start, end = t0 + 5 * STEP_S, t0 + 15 * STEP_S  # aligned with samples: increase() needs no extrapolation
    window = custom.health("m", "1", start, end)
    assert window.count_method == {"requests": "raw-samples", "errors": "promql"}
    assert (window.requests, window.errors) == _expected(t0, start, end)
    assert window.queries["requests"].endswith("[210s]")
    custom.close()
    with pytest.raises(BadInputError, match="counter_lookback_s"):
        PrometheusMetrics.from_config({"url": metrics.url, "counter_lookback_s": -1})


# -- the counting rule, on plain samples -----------------------------------------------------------


def test_counter_increase_rule():
    samples = [(0, 10.0), (15, 25.0), (30, 3.0), (45, 9.0), (60, 9.0), (75, 30.0)]
    assert counter_increase(samples, 10, 50) == (15 + 3 + 6, True)  # anchor 10 @0; reset at 30 adds 3
    assert counter_increase(samples, 15, 45) == (3 + 6, True)  # a sample exactly at start is the anchor
    assert counter_increase(samples, 61, 74) == (0.0, False)  # no sample inside
    assert counter_increase(samples[2:], -100, 40) == (3.0, True)  # born inside: counts from 0
    assert counter_increase(list(reversed(samples)), 50, 1000) == (21.0, True)  # order does not matter
    assert counter_increase([(0, 1.0), (5, float("nan")), (10, 4.0)], 0, 10) == (3.0, True)
