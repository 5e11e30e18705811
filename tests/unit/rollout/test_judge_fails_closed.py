"""The pure judge fails closed on a broken instrument: NaN/inf and unreadable windows are failed
checks; none of it poisons the sequential totals. Silence is no evidence (issue 20): the sequential
judge holds and says so, the threshold rule still counts it as a failed check, and silence longer
than the no-data timeout ends the canary as inconclusive under the plan's policy."""

from __future__ import annotations

import json
import math

import pytest

from backends.base import BadInputError, HealthWindow
from console.rollout import canary
from console.domain import CanaryPlan


def window(version: str, requests: int, errors: int = 0, preds=None, latency: float = 5.0):
    return HealthWindow("m", version, 0, 1, requests=requests, errors=errors,
                        latency_p50_ms=latency if requests else None, latency_p99_ms=latency if requests else None,
                        latencies_ms=[latency] * requests,
                        predictions=list(preds) if preds is not None else [0.3] * (requests - errors))


def live(plan: CanaryPlan | None = None):
    state = canary.new_state("m", "1", "2", plan or CanaryPlan(hold_s=10, interval_s=1, min_requests=20), 1000.0,
                             "2026-01-01T00:00:00.000000Z")
    state.step, state.weight = 0, 25
    return state


def run_windows(state, windows, start: float = 1001.0):
    analyses = []
    for i, (stable, can) in enumerate(windows):
        a = canary.analyze(state, stable, can, start + i)
        analyses.append(a)
        state = canary.record_analysis(state, a, "t")
    return state, analyses


@pytest.mark.parametrize("bad", [
    window("2", 100, preds=[math.nan] * 100),
    window("2", 100, preds=[0.3] * 99 + [math.inf]),
    window("2", 100, latency=math.nan),
    window("2", 100, errors=150),
])
def test_non_finite_or_impossible_windows_fail_three_times_then_roll_back(bad):
    state, analyses = run_windows(live(), [(window("1", 100), bad)] * 3)
    assert [a.window_verdict for a in analyses] == ["fail"] * 3
    assert [a.rollback for a in analyses] == [False, False, True]
    assert "finite" in [c.name for c in analyses[-1].checks] and "counted as a failed check" in analyses[-1].reason
    # the bad windows never reached the sequential totals, and the state stays JSON without NaN
    assert state.sequential["cumulative"] == {}
    json.dumps(state.to_dict(), allow_nan=False)


def test_a_silent_variant_is_a_failed_check_under_the_threshold_rule():
    plan = CanaryPlan(hold_s=10, interval_s=1, min_requests=20, judge="threshold")
    state, analyses = run_windows(live(plan), [(window("1", 100), window("2", 0))] * 3)
    assert [a.window_verdict for a in analyses] == ["fail"] * 3 and analyses[-1].rollback
    assert "no requests reached canary 2" in analyses[-1].reason
    state, analyses = run_windows(live(plan), [(window("1", 0), window("2", 0))])
    assert "stable 1 and canary 2" in analyses[0].checks[0].detail


def test_a_silent_variant_holds_the_sequential_judge_and_says_so():
    state, analyses = run_windows(live(), [(window("1", 30), window("2", 0))] * 6)
    assert [a.window_verdict for a in analyses] == ["no_data"] * 6 and not any(a.rollback for a in analyses)
    assert state.failures == 0 and "no evidence this window, holding" in analyses[-1].checks[0].detail
    assert state.sequential["cumulative"]["stable"]["requests"] == 180  # the counts it had were kept


def test_a_good_window_resets_the_count_of_failed_checks():
    nan = (window("1", 100), window("2", 100, preds=[math.nan] * 100))
    good = (window("1", 100), window("2", 100))
    state, analyses = run_windows(live(), [nan, nan, good, nan, nan])
    assert not any(a.rollback for a in analyses) and state.failures == 2


def test_an_unreadable_window_is_a_failed_check():
    state = live()
    for i in range(3):
        a = canary.failed_window(state, 1001.0 + i, "metrics", "metrics backend: ConnectionRefusedError: refused")
        state = canary.record_analysis(state, a, "t")
    assert a.window_verdict == "fail" and a.rollback and "metrics backend: ConnectionRefusedError" in a.reason
    assert canary.decide(state, 1003.0, a).action == canary.ROLLBACK
    assert "last_data_at" not in state.sequential  # no data arrived


def test_the_no_data_timeout_ends_inconclusive_under_the_rollback_policy_and_data_restarts_it():
    plan = CanaryPlan(hold_s=600, interval_s=1, min_requests=20, consecutive_failures=100, no_data_timeout_s=5,
                      inconclusive="rollback")
    state = live(plan)
    assert canary.decide(state, 1004.0).action == canary.HOLD
    decision = canary.decide(state, 1005.5)
    assert decision.action == canary.ROLLBACK and "no-data timeout 5 s" in decision.reason
    assert decision.inconclusive and "inconclusive, rolled back by policy" in decision.reason
    assert "failed" not in decision.reason.replace("no test failed", "")
    ended = canary.apply(state, decision, 1005.5, "t")
    assert ended.sequential["outcome"] == "inconclusive" and ended.events[-1]["kind"] == "inconclusive"
    state, _ = run_windows(state, [(window("1", 100), window("2", 3))], start=1005.0)  # thin, but data
    assert state.sequential["last_data_at"] == 1005.0
    assert canary.decide(state, 1009.0).action == canary.HOLD
    assert canary.decide(state, 1010.5).action == canary.ROLLBACK


def test_the_no_data_timeout_holds_for_a_person_by_default():
    state = live(CanaryPlan(hold_s=600, interval_s=1, min_requests=20, no_data_timeout_s=5))
    decision = canary.decide(state, 1005.5)
    assert decision.action == canary.PAUSE and decision.inconclusive and "held at 25% for a person" in decision.reason
    held = canary.apply(state, decision, 1005.5, "t")
    assert held.status == "paused" and held.weight == 25 and held.sequential["outcome"] == "inconclusive"
    assert canary.decide(held, 2000.0).action == canary.HOLD  # it waits for the person, it does not roll back
    with pytest.raises(BadInputError, match="inconclusive"):
        canary.validate_plan(CanaryPlan(inconclusive="fail"))


def test_the_default_no_data_timeout_is_a_few_intervals_and_a_bad_one_is_refused():
    assert canary.no_data_timeout(CanaryPlan(interval_s=10)) == canary.NO_DATA_INTERVALS * 10
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(BadInputError, match="no_data_timeout_s"):
            canary.validate_plan(CanaryPlan(no_data_timeout_s=bad))
