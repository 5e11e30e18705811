"""Only the alpha budget rolls back (issue 20): silence, thin windows, an outage stable shares and
infinite plans hold the canary and say so; the timeouts end it as inconclusive under the plan's
policy; no arithmetic path raises. Pure and seeded."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from backends.base import HealthWindow
from console.domain import CanaryPlan
from console.rollout import canary, sequential
from tests.support.canary_streams import SHAPES, Regression, run_canary


def window(version: str, requests: int, errors: int = 0, start: float = 0.0, end: float = 1.0) -> HealthWindow:
    return HealthWindow("m", version, start, end, requests=requests, errors=errors,
                        latency_p50_ms=5.0 if requests else None, latency_p99_ms=5.0 if requests else None,
                        latencies_ms=[5.0] * requests, predictions=[0.3] * requests)


def at_last_step(plan: CanaryPlan):
    state = canary.new_state("m", "1", "2", plan, 0.0, "t")
    state.step, state.weight = len(plan.steps) - 2, plan.steps[-2]
    return state


def feed(state, pairs, start: float = 1.0, dt: float = 1.0):
    analyses = []
    for i, (stable, can) in enumerate(pairs):
        now = start + i * dt
        a = canary.analyze(state, stable, can, now)
        state = canary.record_analysis(state, a, "t")
        d = canary.decide(state, now, a)
        analyses.append((a, d))
        if d.action != canary.HOLD:
            state = canary.apply(state, d, now, "t")
    return state, analyses


def test_events_needed_can_be_infinite_and_the_plan_says_so_instead_of_raising():
    assert sequential.events_needed(1.0, 0.5, 0.01) == math.inf
    assert sequential.events_needed(2.0, 0.0, 0.01) == math.inf
    plan = CanaryPlan(steps=[50, 100], hold_s=0, interval_s=1, min_requests=1, evidence_timeout_s=100)
    # a shared outage: every request of both variants fails for 41 windows (issue 20's stuck canary)
    state, analyses = feed(at_last_step(plan), [(window("1", 50, 50), window("2", 50, 50))] * 41)
    assert state.active and state.status == "progressing"
    assert all(d.action == canary.HOLD for _, d in analyses)
    assert "cannot show the minimum detectable regression" in analyses[-1][1].reason
    assert state.sequential["needs_more"]["requests"] is None and state.sequential["needs_more"]["test"] == "error_rate"
    json.dumps(state.to_dict(), allow_nan=False)
    # past the evidence timeout it ends inconclusive (held), not rolled back
    state, analyses = feed(state, [(window("1", 50, 50), window("2", 50, 50))] * 70, start=42.0)
    assert state.status == "paused" and state.sequential["outcome"] == "inconclusive"


def test_nan_and_zero_counts_in_the_evidence_never_raise():
    plan = CanaryPlan(steps=[50, 100], hold_s=0, interval_s=1, min_requests=1)
    state = at_last_step(plan)
    state.sequential["cumulative"] = {"errors_info": {"counts": [0, 0, 0, 0], "info": math.nan},
                                      "latency_tail": {"counts": [0, 0, 0, 0], "info": math.inf}}
    assert canary.evidence_gap(state) is None or isinstance(canary.evidence_gap(state), tuple)
    canary.decide(state, 10.0)
    state, analyses = feed(at_last_step(plan), [(window("1", 0), window("2", 0))] * 3)  # zero counts throughout
    assert not any(a.rollback for a, _ in analyses)


def test_the_evidence_timeout_ends_inconclusive_held_by_default_rolled_back_by_policy():
    plan = CanaryPlan(steps=[50, 100], hold_s=0, interval_s=1, min_requests=1, evidence_timeout_s=5)
    pairs = [(window("1", 20), window("2", 20))] * 8  # healthy but thin: never enough to rule out a doubling
    state, analyses = feed(at_last_step(plan), pairs)
    ended = [d for _, d in analyses if d.action != canary.HOLD]
    assert ended and ended[0].action == canary.PAUSE and ended[0].inconclusive
    assert state.status == "paused" and state.weight == 50 and state.sequential["outcome"] == "inconclusive"
    assert "no test failed" in state.reason and "evidence timeout 5 s" in state.reason
    assert [e["kind"] for e in state.events][-1] == "inconclusive"
    strict = dataclasses.replace(plan, inconclusive="rollback")
    state, analyses = feed(at_last_step(strict), pairs)
    assert state.status == "rolled_back" and state.sequential["outcome"] == "inconclusive"
    assert "inconclusive, rolled back by policy" in state.reason and "failing" not in state.reason


def test_thin_windows_below_min_requests_never_count_as_failures():
    plan = CanaryPlan(steps=[5, 25, 50, 100], hold_s=5, interval_s=1, min_requests=20)
    state = canary.new_state("m", "1", "2", plan, 0.0, "t")
    state = canary.apply(state, canary.decide(state, 0.0), 0.0, "t")
    pairs = [(window("1", 19), window("2", 1)), (window("1", 19), window("2", 0)), (window("1", 3), window("2", 1))] * 10
    state, analyses = feed(state, pairs)
    assert state.failures == 0 and not any(a.rollback for a, _ in analyses)
    assert state.status in ("progressing", "promoted", "paused") and state.status != "rolled_back"


def test_at_3_requests_a_second_no_a_a_canary_rolls_back():
    """The whole judge at 3 req/s on the load generator's shape (sticky, 1,000 users): A/A canaries
    end promoted or inconclusive (held), never rolled back by a rule outside alpha."""
    plan = CanaryPlan(interval_s=5.0, min_requests=10, evidence_timeout_s=600)
    rng = np.random.default_rng(2026)
    results = [run_canary(plan, Regression(), 3.0, rng, SHAPES["sticky"]) for _ in range(6)]
    assert all(r["outcome"] in ("promoted", "inconclusive") for r in results), results
    assert not any(r["rolled_back"] for r in results)


def test_an_a_a_candidate_at_the_demo_traffic_promotes_under_the_default_plan():
    """`mrc load`'s default 50 req/s on the load generator's shape, the default plan (10 s looks)."""
    rng = np.random.default_rng(50)
    results = [run_canary(CanaryPlan(), Regression(), 50.0, rng, SHAPES["sticky"]) for _ in range(3)]
    assert all(r["outcome"] == "promoted" for r in results), results
    assert all(r["seconds"] < canary.evidence_timeout(CanaryPlan()) + 180 for r in results)
