"""Literature baseline for the error e-process: Lindon, Sanden & Shirikian (KDD 2022, "Rapid
regression detection in software deployments through sequential testing"), vectorised in numpy.

Their count test: errors per arm are Poisson processes; given a window's total errors k, the
canary's x is Binomial(k, rho) with rho = w theta / (w theta + 1 - w) (w: the canary's traffic
share, theta: the canary's error rate over stable's). Under H0 theta = 1, rho = w. The test is the
Bayes factor of a Beta(a, b) prior on rho against the point null, a test martingale, so by Ville's
inequality it ever reaches 1/alpha with probability <= alpha under continuous monitoring.

Their conjugate closed form needs a fixed split; a canary plan moves it (5 -> 25 -> 50 %), so the
prior is put on theta instead: Beta(a, a) on rho *at an even split* (theta / (1 + theta), i.e. a
beta-prime prior on theta, symmetric in log theta), discretised at equal-probability quantile
nodes. A discrete prior is still a prior, so validity is exact whatever the number of nodes; at a
fixed 50 % split it equals their closed form up to quadrature error (tests/unit/evaluate checks both).
Their test is two-sided (equality); a rollback is called only when the canary holds more than
its share of the errors, which can only lower the false-alarm rate.

Only numpy and scipy.special/scipy.stats here; mrc's own exact e-process (console/rollout/sequential.py's
ODDS_RATIOS grid, one-sided) is evaluated on the same simulated streams for comparison.
"""

from __future__ import annotations

import math

import numpy as np

PRIOR_A = 10.0  # Beta(a, a) on rho at an even split: sd of rho 0.11, i.e. theta mostly within 0.4 … 2.6
NODES = 200

# The bench's default plan: 5 -> 25 -> 50 % of traffic, 60 s holds, promotion after the 50 % hold.
PLAN_STEPS = (0.05, 0.25, 0.50)
HOLD_S, LOOK_S = 60.0, 5.0


def prior_thetas(a: float = PRIOR_A, nodes: int = NODES) -> np.ndarray:
    """theta at equal-probability quantiles of Beta(a, a) on rho at an even split."""
    from scipy import stats

    rho = stats.beta.ppf((np.arange(nodes) + 0.5) / nodes, a, a)
    return rho / (1.0 - rho)


def closed_form_log_bf(x: np.ndarray, k: np.ndarray, w: float, a: float = PRIOR_A) -> np.ndarray:
    """Lindon et al.'s conjugate Bayes factor at a fixed split w: B(a+x, a+k-x)/B(a, a) / (w^x (1-w)^(k-x))."""
    from scipy.special import betaln

    return betaln(a + x, a + k - x) - betaln(a, a) - x * math.log(w) - (k - x) * math.log1p(-w)


def _log_mean_exp(logs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    top = logs.max(axis=1, keepdims=True)
    terms = np.exp(logs - top)
    mean = terms.mean(axis=1) if weights is None else terms @ weights
    return top[:, 0] + np.log(mean)


def simulate(rng, runs: int, canary_error: float, base_error: float = 0.01, rate: float = 200.0,
             steps: tuple[float, ...] = PLAN_STEPS, hold_s: float = HOLD_S, look_s: float = LOOK_S) -> dict:
    """Per-look counts of `runs` canaries through the plan: arrays (runs, looks) and the split per look."""
    per_step = int(round(hold_s / look_s))
    split = np.repeat(np.asarray(steps, float), per_step)
    n_total = rng.poisson(rate * look_s, size=(runs, split.size))
    n_canary = rng.binomial(n_total, split)
    x_canary = rng.binomial(n_canary, canary_error)
    x_stable = rng.binomial(n_total - n_canary, base_error)
    return {"split": split, "n_canary": n_canary, "x_canary": x_canary, "k": x_canary + x_stable}


def _first_crossing(log_e_by_look: list[np.ndarray], alpha: float) -> np.ndarray:
    """Index of the first look at which the e-process reaches 1/alpha, or -1."""
    crossed = np.stack(log_e_by_look, axis=1) >= math.log(1.0 / alpha)
    return np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)


def lindon_detections(counts: dict, alpha: float, thetas: np.ndarray | None = None) -> np.ndarray:
    """First look at which Lindon et al.'s mixture test rolls back (-1: never)."""
    thetas = prior_thetas() if thetas is None else thetas
    log_bf = np.zeros((counts["k"].shape[0], thetas.size))
    out = []
    for j, w in enumerate(counts["split"]):
        x, k = counts["x_canary"][:, j], counts["k"][:, j]
        scale = w * thetas + (1.0 - w)  # rho / w = theta / scale; (1 - rho) / (1 - w) = 1 / scale
        log_bf += x[:, None] * np.log(thetas)[None, :] - k[:, None] * np.log(scale)[None, :]
        cum_x = counts["x_canary"][:, : j + 1].sum(axis=1)
        cum_expected = (counts["k"][:, : j + 1] * counts["split"][: j + 1]).sum(axis=1)
        log_e = _log_mean_exp(log_bf)
        out.append(np.where(cum_x > cum_expected, log_e, -np.inf))  # roll back only on the canary's side
    return _first_crossing(out, alpha)


def mrc_detections(counts: dict, alpha: float, ratios, weights) -> np.ndarray:
    """First look at which mrc's exact one-sided e-process (console/rollout/sequential.py's grid) rolls back."""
    ratios, weights = np.asarray(ratios, float), np.asarray(weights, float)
    log_e = np.zeros((counts["k"].shape[0], ratios.size))
    out = []
    for j, w in enumerate(counts["split"]):
        x, k = counts["x_canary"][:, j], counts["k"][:, j]
        log_e += x[:, None] * np.log(ratios)[None, :] - k[:, None] * np.log1p(w * (ratios - 1.0))[None, :]
        out.append(_log_mean_exp(log_e, weights))
    return _first_crossing(out, alpha)


def summarize(counts: dict, first: np.ndarray, look_s: float = LOOK_S) -> dict:
    """Detection rate within the simulated horizon; medians over the detected runs of seconds, canary
    requests and canary errors (bad requests) up to and including the deciding look."""
    hit = first >= 0
    rows = np.flatnonzero(hit)
    if not rows.size:
        return {"detected": 0.0, "seconds": math.nan, "requests": math.nan, "bad": math.nan}
    cum_n = np.cumsum(counts["n_canary"], axis=1)[rows, first[rows]]
    cum_x = np.cumsum(counts["x_canary"], axis=1)[rows, first[rows]]
    return {"detected": float(hit.mean()), "seconds": float(np.median((first[rows] + 1) * look_s)),
            "requests": float(np.median(cum_n)), "bad": float(np.median(cum_x))}
