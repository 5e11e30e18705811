"""Vectorised replicas of the user-level tests (console/rollout/units.py + the confidence sequence
of console/rollout/sequential.py) for seeded validity simulations: R canaries at once, numpy.

`cells` are the clustered sums the judge keeps, as arrays y, n of shape (R, strata, 2 arms, buckets)
(arm 0 the canary). tests/unit/rollout/test_users_as_unit.py checks these replicas against the real
functions on the same cells before trusting any rate they produce.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf  # tests only: vectorised Phi

from console.rollout import sequential, units


def ratio_difference(y: np.ndarray, n: np.ndarray, min_units: int = units.MIN_UNITS, min_requests: int = 30):
    """(estimate, variance, ok) per replication: units.ratio_difference, vectorised."""
    nc, ns = n[:, :, 0].sum(-1), n[:, :, 1].sum(-1)
    kc, ks = (n[:, :, 0] > 0).sum(-1), (n[:, :, 1] > 0).sum(-1)
    valid = (kc >= min_units) & (ks >= min_units) & (nc > 0) & (ns > 0)
    safe_c, safe_s = np.where(nc > 0, nc, 1), np.where(ns > 0, ns, 1)
    rc, rs = y[:, :, 0].sum(-1) / safe_c, y[:, :, 1].sum(-1) / safe_s
    w = np.where(valid, nc * ns / np.maximum(nc + ns, 1), 0.0)
    total = w.sum(1)
    ok = total > 0
    omega = w / np.where(ok, total, 1)[:, None]
    estimate = (omega * (rc - rs)).sum(1)
    inf_c = (y[:, :, 0] - rc[:, :, None] * n[:, :, 0]) / safe_c[:, :, None]
    inf_s = (y[:, :, 1] - rs[:, :, None] * n[:, :, 1]) / safe_s[:, :, None]
    influence = (omega[:, :, None] * (inf_c - inf_s)).sum(1)
    present = ((n > 0) & valid[:, :, None, None]).any(axis=(1, 2))
    k = present.sum(1)
    ok &= (k >= 2) & ((nc * valid).sum(1) >= min_requests) & ((ns * valid).sum(1) >= min_requests)
    variance = (influence ** 2).sum(1) * k / np.maximum(k - 1, 1)
    return estimate, variance, ok


def log_mixture(gap: np.ndarray, variance: np.ndarray, taus) -> np.ndarray:
    """sequential._log_mixture (one-sided), vectorised."""
    v = np.maximum(variance, 1e-300)
    info, s = 1.0 / v, gap / v
    logs = []
    for t in taus:
        value = -0.5 * np.log1p(t * t * info) + t * t * s * s / (2.0 * (1.0 + t * t * info))
        x = t * s / np.sqrt(1.0 + t * t * info)
        value = value + np.log(np.maximum(1e-300, 1.0 + erf(x / math.sqrt(2.0))))
        logs.append(value)
    stack = np.stack(logs)
    top = stack.max(0)
    return top + np.log(np.exp(stack - top).mean(0))


def rejects(estimate, variance, ok, margin: float, alpha: float, taus) -> np.ndarray:
    """What sequential._judge decides REJECT on (lower bound above the margin)."""
    gap = estimate - margin
    return ok & (gap > 0) & (variance > 0) & (log_mixture(np.maximum(gap, 0), variance, taus) >= math.log(1 / alpha))


def simulate_aa(rng: np.random.Generator, runs: int, *, users: int, rate: float, pareto: float | None = None,
                user_latency_sigma: float = 0.0, failing_share: float = 0.0, steps=(5, 25, 50),
                hold_s: float = 60.0, look_s: float = 5.0, extra_s: float = 600.0, alpha: float = 0.05,
                slow: float = 1.0, error_factor: float = 1.0, request_level: bool = False) -> dict[str, float]:
    """A/A (or a regression) canaries through the plan's steps (then extra_s more at the last),
    looking every look_s: the share of canaries whose user-level error test and latency test
    ever rejected at level alpha (margins 0: the sharpest null). request_level treats every
    request as its own unit (the old, clustered-blind variance) to show what breaks."""
    buckets = units.UNIT_BUCKETS
    act = (rng.pareto(pareto, (runs, users)) + 1) if pareto else np.ones((runs, users))
    act /= act.sum(1, keepdims=True)
    position = rng.random((runs, users))
    bucket = rng.integers(0, buckets, (runs, users))
    lat_effect = rng.normal(0, user_latency_sigma, (runs, users)) if user_latency_sigma else np.zeros((runs, users))
    p_err = np.where(rng.random((runs, users)) < failing_share, 0.3, 0.01)
    schedule = []
    for i, w in enumerate(steps):
        schedule += [(i, w)] * int(hold_s / look_s)
    schedule += [(len(steps) - 1, steps[-1])] * int(extra_s / look_s)
    shape = (runs, len(steps), 2, buckets)
    y_err, y_lat, n_req = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    ever = {"errors": np.zeros(runs, bool), "latency": np.zeros(runs, bool)}
    rows = np.arange(runs)[:, None].repeat(users, 1)
    mu = math.log(20.0)
    for stratum, weight in schedule:
        n = rng.poisson(rate * look_s * act)
        canary = position < weight / 100
        p = np.where(canary, np.minimum(1, p_err * error_factor), p_err)
        errors = rng.binomial(n, p)
        shift = np.where(canary, math.log(slow), 0.0)
        loglat = n * (mu + lat_effect + shift) + 0.35 * np.sqrt(n) * rng.standard_normal((runs, users))
        arm = np.where(canary, 0, 1)
        if request_level:  # each request its own cluster: spread a user's requests over buckets at random
            idx = (rows, stratum, arm, rng.integers(0, buckets, (runs, users)))
        else:
            idx = (rows, stratum, arm, bucket)
        np.add.at(y_err, idx, errors)
        np.add.at(y_lat, idx, loglat)
        np.add.at(n_req, idx, n)
        for name, y, taus in (("errors", y_err, sequential.ERROR_TAUS), ("latency", y_lat, sequential.LATENCY_TAUS)):
            est, var, ok = ratio_difference(y, n_req)
            ever[name] |= rejects(est, var, ok, 0.0, alpha, taus)
    return {name: float(v.mean()) for name, v in ever.items()}
