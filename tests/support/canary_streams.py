"""Simulated canary traffic for the judge's validity tests and bench (issue 20): whole health
windows with per-user requests, routed the way mrc's router routes (sticky by user key: a user is
the canary's when its hash position is below the canary weight, so the canary's users at 5 % stay
the canary's at 25 %), or at random per request.

Shapes (`Shape`): "independent" (every request its own user: random routing), "sticky" (the load
generator's shape: 1,000 users, each request's user drawn uniformly), "heavy" (heavy-tailed
activity, Pareto 1.2, and per-user effects: each user's own latency factor, 0.5 % of users failing
30 % of their requests, a per-user shift of predictions). Numpy only; the judge sees HealthWindows.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from backends.base import HealthWindow

BASE_ERROR = 0.01
LATENCY_MEDIAN_MS, LATENCY_SIGMA = 20.0, 0.35


@dataclasses.dataclass
class Regression:
    error: float = BASE_ERROR  # the canary's error rate (stable: BASE_ERROR)
    slow: float = 1.0  # every canary request this much slower
    tail_share: float = 0.0  # this share of canary requests ...
    tail_factor: float = 1.0  # ... this much slower

    @property
    def latency(self) -> bool:
        return self.slow != 1.0 or self.tail_share > 0


@dataclasses.dataclass
class Shape:
    name: str
    users: int = 1000  # 0: every request is its own user (random routing)
    pareto: float | None = None  # heavy-tailed activity (Pareto shape), None: uniform
    user_latency_sigma: float = 0.0  # per-user log-latency effect
    failing_share: float = 0.0  # users who fail often ...
    failing_rate: float = 0.3  # ... at this rate
    prediction_shift: float = 0.0  # per-user shift of predicted probabilities (sd)


SHAPES = {
    "independent": Shape("independent", users=0),
    "sticky": Shape("sticky", users=1000),
    "heavy": Shape("heavy", users=2000, pareto=1.2, user_latency_sigma=0.5, failing_share=0.005,
                   prediction_shift=0.1),
}


class Population:
    """One draw of users: activity, per-user effects, router position, key."""

    def __init__(self, rng: np.random.Generator, shape: Shape):
        self.shape = shape
        n = max(shape.users, 1)
        if shape.pareto:
            activity = rng.pareto(shape.pareto, n) + 1
        else:
            activity = np.ones(n)
        self.activity = activity / activity.sum()
        self.position = rng.random(n)  # the router's hash position in [0, 1)
        self.latency_effect = rng.normal(0, shape.user_latency_sigma, n) if shape.user_latency_sigma else np.zeros(n)
        self.error_rate = np.where(rng.random(n) < shape.failing_share, shape.failing_rate, BASE_ERROR)
        self.pred_shift = rng.normal(0, shape.prediction_shift, n) if shape.prediction_shift else np.zeros(n)
        self.serial = 0  # independent shape: a fresh key per request


def windows(rng: np.random.Generator, pop: Population, weight: int, n_total: int, reg: Regression,
            start: float, end: float) -> tuple[HealthWindow, HealthWindow, int]:
    """(stable window, canary window, bad canary requests) for n_total requests at this weight."""
    shape = pop.shape
    if shape.users == 0:  # random routing: each request is a new user
        users = np.arange(n_total)
        in_canary = rng.random(n_total) < weight / 100
        keys = [f"r{pop.serial + i}" for i in range(n_total)]
        pop.serial += n_total
        lat_effect = np.zeros(n_total)
        err_rate = np.full(n_total, BASE_ERROR)
        shift = np.zeros(n_total)
    else:
        users = rng.choice(len(pop.activity), size=n_total, p=pop.activity)
        in_canary = pop.position[users] < weight / 100
        keys = [f"user-{u}" for u in users]
        lat_effect, err_rate, shift = pop.latency_effect[users], pop.error_rate[users], pop.pred_shift[users]
    lat = np.exp(np.log(LATENCY_MEDIAN_MS) + lat_effect + rng.normal(0, LATENCY_SIGMA, n_total))
    rate = err_rate.copy()
    bad = 0
    if reg.error != BASE_ERROR:
        rate = np.where(in_canary, np.minimum(1.0, rate * reg.error / BASE_ERROR), rate)
    errors = rng.random(n_total) < rate
    if reg.latency:
        hit = in_canary & (rng.random(n_total) < reg.tail_share)
        lat = np.where(in_canary, lat * reg.slow, lat)
        lat = np.where(hit, lat * reg.tail_factor, lat)
        bad = int(in_canary.sum()) if reg.slow != 1.0 else int(hit.sum())
    else:
        bad = int((errors & in_canary).sum())
    preds = np.clip(rng.beta(2, 5, n_total) + shift, 0.0, 1.0)
    labelled = rng.random(n_total) < 0.2
    correct = rng.random(n_total) < 0.8
    out = []
    for version, mask in (("1", ~in_canary), ("2", in_canary)):
        idx = np.flatnonzero(mask)
        w = HealthWindow("m", version, start, end, requests=len(idx), errors=int(errors[idx].sum()),
                         latencies_ms=lat[idx].tolist(), predictions=preds[idx].tolist(),
                         labelled=int(labelled[idx].sum()), correct=int((labelled[idx] & correct[idx]).sum()),
                         unit_kind="user")
        if len(idx):
            w.latency_p50_ms = float(np.quantile(lat[idx], 0.5))
            w.latency_p99_ms = float(np.quantile(lat[idx], 0.99))
        units: dict[str, dict] = {}
        for i in idx:
            unit = units.get(keys[i])
            if unit is None:
                unit = units[keys[i]] = {"requests": 0, "errors": 0, "latencies_ms": [], "predictions": [],
                                         "labelled": 0, "wrong": 0}
            unit["requests"] += 1
            unit["errors"] += int(errors[i])
            unit["latencies_ms"].append(float(lat[i]))
            unit["predictions"].append(float(preds[i]))
            if labelled[i]:
                unit["labelled"] += 1
                unit["wrong"] += int(not correct[i])
        w.units = units
        out.append(w)
    return out[0], out[1], bad


# Prometheus' default histogram buckets, in ms (the client libraries' 0.005 ... 10 s)
PROMETHEUS_BUCKETS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)


def as_prometheus(window: HealthWindow) -> HealthWindow:
    """What the Prometheus backend sees of a window: counts and a latency histogram, nothing per
    request or per user, and no valid sample-ratio counts."""
    lat = np.asarray(window.latencies_ms)
    buckets = [(le, int((lat <= le).sum())) for le in PROMETHEUS_BUCKETS_MS] + [(math.inf, len(lat))]
    return HealthWindow(window.model, window.version, window.start, window.end, requests=window.requests,
                        errors=window.errors, latency_p50_ms=window.latency_p50_ms,
                        latency_p99_ms=window.latency_p99_ms, latency_buckets=buckets,
                        sample_ratio_off="Prometheus request counters (simulated)")


def run_canary(plan, reg: Regression, rate: float, rng: np.random.Generator, shape: Shape,
               max_seconds: float = 4000.0, with_units: bool = True, prometheus: bool = False) -> dict:
    """One canary through the real judge and state machine (console/rollout/canary.py), from start
    to its end (or max_seconds): how it ended, when, and the bad canary requests served."""
    from console.rollout import canary

    pop = Population(rng, shape)
    now = 0.0
    state = canary.new_state("m", "1", "2", plan, now, "t")
    state = canary.apply(state, canary.decide(state, now), now, "t")
    canary_requests = bad = 0
    while state.active and now < max_seconds:
        start, now = now, now + plan.interval_s
        n_total = int(rng.poisson(rate * plan.interval_s))
        stable_w, canary_w, bad_now = windows(rng, pop, state.weight, n_total, reg, start, now)
        if not with_units:
            stable_w.units, canary_w.units, stable_w.unit_kind, canary_w.unit_kind = {}, {}, "", ""
        if prometheus:
            stable_w, canary_w = as_prometheus(stable_w), as_prometheus(canary_w)
        canary_requests += canary_w.requests
        bad += bad_now
        analysis = canary.analyze(state, stable_w, canary_w, now, explain=False)
        state = canary.record_analysis(state, analysis, "t")
        decision = canary.decide(state, now, analysis)
        if decision.action != canary.HOLD:
            state = canary.apply(state, decision, now, "t")
            if decision.inconclusive:
                break
    outcome = state.sequential.get("outcome") or state.status
    rejected = [r["metric"] for r in state.sequential.get("results", []) if r["decision"] == "reject"]
    return {"status": state.status, "outcome": outcome, "rolled_back": state.status in ("rolled_back", "aborted")
            and outcome != "inconclusive", "seconds": now, "canary_requests": canary_requests, "bad": bad,
            "rejected": rejected}
