"""Words that match the judge (issue 23): the canary start statement describes the judge that
will run, an explanation never puts a band holding 0 beside "reject" without saying which test
decided, and "needs ~N more" is gone once the canary is over. Pure presenters."""

from __future__ import annotations

from console.domain import CanaryPlan, CanaryState
from screens.presenters import canary_evidence_lines, canary_start_statement, needs_more_lines, sequential_result_line


def _statement(plan: CanaryPlan) -> str:
    return "\n".join(canary_start_statement("m", "5", "2", plan.steps, "approved", plan.hold_s, plan.interval_s,
                                            plan.consecutive_failures, plan=plan))


def test_the_default_plan_is_described_as_the_sequential_judge_it_runs():
    text = _statement(CanaryPlan())
    assert CanaryPlan().judge == "sequential"
    assert "failing windows in a row" not in text  # that is the threshold judge, which does not run
    assert "sequential (anytime-valid) tests, false-rollback rate 5%" in text
    assert "threshold checks are shown as advice" in text and "2× would have been caught" in text
    assert "3 failing windows in a row" in _statement(CanaryPlan(judge="threshold"))
    both = _statement(CanaryPlan(judge="both"))
    assert "sequential" in both and "failing windows in a row" in both


def test_reject_beside_a_band_holding_zero_says_which_test_decided():
    line = sequential_result_line({"metric": "error_rate", "decision": "reject", "estimate": 0.004,
                                   "lower": -0.002, "upper": 0.010, "margin": 0.0, "e_value": 41.0, "p_value": 0.02})
    assert line.startswith("error_rate: reject (roll back) — the exact per-window count test's e-value 41")
    assert "still reaches -0.0020" in line
    clear = sequential_result_line({"metric": "latency", "decision": "reject", "estimate": 0.2, "lower": 0.1,
                                    "upper": 0.3, "margin": 0.0953, "p_value": 0.001})
    assert "the band lies above the margin +0.0953" in clear
    waiting = sequential_result_line({"metric": "latency", "decision": "continue", "estimate": 0.0, "lower": -0.1,
                                      "upper": 0.1, "margin": 0.0953, "p_value": 0.9})
    assert "not enough evidence either way yet" in waiting


def test_needs_more_is_cleared_once_the_canary_is_over():
    state = CanaryState(model="m", candidate="5", stable="2", plan=CanaryPlan(), status="progressing",
                        sequential={"needs_more": {"requests": 1226, "test": "error-rate"}})
    assert needs_more_lines(state) == ["needs ~1,226 more canary requests before the error-rate test can promote"]
    state.status = "rolled_back"
    assert needs_more_lines(state) == []
    assert not any("needs ~" in line for line in canary_evidence_lines(state))
