"""Pure: a version is healthy by its window against the team's [alerts] thresholds (issue 23)."""

from __future__ import annotations

from backends.base import HealthWindow
from console.release.health import fault_line, judge, thresholds


def _window(requests, errors, p99=10.0):
    return HealthWindow("m", "5", 0.0, 300.0, requests=requests, errors=errors, latency_p99_ms=p99)


def test_thirty_percent_errors_is_unhealthy_whatever_health_answers():
    verdict = judge("5", _window(100, 30), thresholds({}))
    assert verdict.healthy is False and verdict.line().startswith("5: UNHEALTHY — errors 30.0% > 5.0% max")


def test_the_teams_thresholds_decide_and_latency_counts():
    cfg = thresholds({"alerts": {"max_error_rate": 0.4, "max_p99_latency_ms": 50}})
    assert judge("5", _window(100, 30), cfg).healthy is True
    slow = judge("5", _window(100, 0, p99=80.0), cfg)
    assert slow.healthy is False and "p99 80 ms > 50 ms max" in slow.line()


def test_too_few_requests_is_no_verdict_never_healthy():
    verdict = judge("5", _window(3, 0), thresholds({}))
    assert verdict.healthy is None and "3 requests" in verdict.line() and "needs 20" in verdict.line()


def test_a_drill_is_named_with_how_to_end_it():
    assert fault_line("5", {"error_rate": 0.3, "latency_ms": 0.0, "shift": 0.0}) == (
        "5: DRILL ACTIVE (30% errors) — `mrc drill MODEL 5 --off` ends it")
    assert fault_line("5", None) == ""
