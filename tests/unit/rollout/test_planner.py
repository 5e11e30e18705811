""""needs ~N more" (issue 20): monotone while evidence arrives and calibrated (the canary requests
the last step really took within +-30 % of the first forecast, median over seeded canaries)."""

from __future__ import annotations

import statistics

import numpy as np

from console.domain import CanaryPlan
from console.rollout import canary
from tests.support.canary_streams import SHAPES, Population, Regression, windows


def last_step(seed: int, rate: float = 100.0):
    plan = CanaryPlan(interval_s=5.0, min_requests=10, evidence_timeout_s=100_000)
    rng = np.random.default_rng(seed)
    pop = Population(rng, SHAPES["sticky"])
    now = 0.0
    state = canary.new_state("m", "1", "2", plan, now, "t")
    state = canary.apply(state, canary.decide(state, now), now, "t")
    shown, canary_at_step, first, realised = [], 0, None, None
    while state.active and now < 20_000:
        start, now = now, now + plan.interval_s
        stable_w, canary_w, _ = windows(rng, pop, state.weight, int(rng.poisson(rate * plan.interval_s)), Regression(),
                                        start, now)
        stable_w.units = canary_w.units = {}  # the request-level plan (error counts), fast
        a = canary.analyze(state, stable_w, canary_w, now, explain=False)
        state = canary.record_analysis(state, a, "t")
        if state.weight == plan.steps[-2]:
            canary_at_step += canary_w.requests
            needs = state.sequential.get("needs_more")
            if needs and needs["requests"] is not None:
                shown.append(needs["requests"])
                first = first if first is not None else (canary_at_step, needs["requests"])
            elif first is not None and realised is None:
                realised = canary_at_step
        d = canary.decide(state, now, a)
        if d.action != canary.HOLD:
            state = canary.apply(state, d, now, "t")
    return shown, first, realised


def test_needs_more_never_grows_and_its_first_forecast_is_calibrated():
    errors = []
    for seed in range(6):
        shown, first, realised = last_step(seed)
        assert shown and all(b <= a for a, b in zip(shown, shown[1:])), shown
        assert realised is not None
        forecast_total = first[0] + first[1]
        errors.append(realised / forecast_total - 1)
    assert abs(statistics.median(errors)) <= 0.30, errors
