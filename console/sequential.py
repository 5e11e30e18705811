"""Anytime-valid sequential tests for canary analysis: confidence sequences, always-valid p-values.

Pure and stdlib-only (math): the canary controller calls it every interval and may stop at any
moment — after 30 requests or after 30,000 — while the chance of a false rollback stays ≤ alpha.

The statistic is a difference of means between the canary and the stable variant (error
indicator, or log latency). With a plug-in variance `v` of the difference estimate, the score
S = d/v has information V = 1/v, and the normal-mixture martingale (Robbins; Howard et al. 2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences"; the asymptotic version of
Waudby-Smith et al. 2021) mixed over effects theta ~ N(0, tau^2) is

    M = (1 + tau^2 V)^(-1/2) * exp(tau^2 S^2 / (2 (1 + tau^2 V)))

By Ville's inequality P(sup_t M_t >= 1/alpha) <= alpha, which gives the confidence sequence

    d ± sqrt((v + v^2 / tau^2) * (log(1 + tau^2 / v) + 2 log(1 / alpha)))

valid at every sample size at once. `tau` is the effect size the test is tuned to find fastest;
any tau keeps the guarantee.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# Decisions of one test.
REJECT = "reject"  # the canary is worse than stable beyond the margin: roll back
SAFE = "safe"  # the canary is no worse than stable + margin, with confidence 1 - alpha
CONTINUE = "continue"  # not enough evidence either way yet

# Effect sizes the mixtures are tuned to: error-rate differences from half a point to 30
# points; log-latency shifts from 5 % to 120 %.
ERROR_TAUS = (0.005, 0.02, 0.08, 0.3)
LATENCY_TAUS = (0.05, 0.2, 0.8)


@dataclass
class SequentialResult:
    metric: str
    estimate: float | None  # canary minus stable (in the metric's scale)
    lower: float | None
    upper: float | None
    margin: float
    alpha: float
    decision: str
    p_value: float  # always-valid p-value of H0: difference <= margin (at this look)
    canary_n: int
    stable_n: int
    more_requests: int | None = None  # canary requests still needed at the current trend
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _log_mixture(score_gap: float, variance: float, taus: tuple[float, ...]) -> float:
    """log of the average over `taus` of the normal-mixture martingale at |estimate - delta| = score_gap."""
    info = 1.0 / variance
    s = score_gap / variance
    logs = [-0.5 * math.log1p(t * t * info) + t * t * s * s / (2.0 * (1.0 + t * t * info)) for t in taus]
    top = max(logs)
    return top + math.log(sum(math.exp(x - top) for x in logs) / len(logs))


def radius(variance: float, alpha: float, taus: float | tuple[float, ...]) -> float:
    """Half-width of the confidence sequence for an estimate of variance `variance`.

    With several taus the martingales are averaged (still a martingale: the band is valid), so
    the test is near its fastest for small and for large regressions alike."""
    if variance <= 0:
        return 0.0
    if isinstance(taus, (int, float)):
        tau = float(taus)
        return math.sqrt((variance + variance * variance / (tau * tau))
                         * (math.log(1.0 + tau * tau / variance) + 2.0 * math.log(1.0 / alpha)))
    target = math.log(1.0 / alpha)
    low, high = 0.0, max(radius(variance, alpha, t) for t in taus)  # the average needs no more than its best member
    for _ in range(50):
        mid = (low + high) / 2
        if _log_mixture(mid, variance, taus) >= target:
            high = mid
        else:
            low = mid
    return high


def mixture_p_value(estimate: float, margin: float, variance: float, taus: float | tuple[float, ...]) -> float:
    """1 / M at this look for H0: difference <= margin (one-sided: only a worse canary counts)."""
    if variance <= 0 or estimate <= margin:
        return 1.0
    taus = (float(taus),) if isinstance(taus, (int, float)) else taus
    log_m = _log_mixture(estimate - margin, variance, taus)
    return 1.0 if log_m <= 0 else max(0.0, math.exp(-log_m))


def _more_requests(estimate: float, margin: float, variance: float, canary_n: int, alpha: float, tau) -> int | None:
    """How many more canary requests (stable growing in proportion) until the band clears the margin."""
    gap = abs(estimate - margin)
    if gap <= 0 or canary_n <= 0:
        return None
    if radius(variance, alpha, tau) < gap:
        return 0
    low, high = 1.0, 2.0
    while radius(variance / high, alpha, tau) >= gap:
        high *= 2
        if high > 1e7:
            return None
    for _ in range(40):
        mid = (low + high) / 2
        if radius(variance / mid, alpha, tau) >= gap:
            low = mid
        else:
            high = mid
    return int(math.ceil(canary_n * (high - 1)))


def _judge(metric: str, estimate: float, variance: float, margin: float, alpha: float, tau,
           canary_n: int, stable_n: int, unit: str) -> SequentialResult:
    half = radius(variance, alpha, tau)
    lower, upper = estimate - half, estimate + half
    if lower > margin:
        decision = REJECT
    elif upper < margin:
        decision = SAFE
    else:
        decision = CONTINUE
    p_value = mixture_p_value(estimate, margin, variance, tau)
    more = None if decision != CONTINUE else _more_requests(estimate, margin, variance, canary_n, alpha, tau)
    detail = (f"{metric}: canary - stable = {estimate:+.4g}{unit}, {100 * (1 - alpha):.0f}% band "
              f"[{lower:+.4g}, {upper:+.4g}], margin {margin:+.4g} -> {decision}")
    if more:
        detail += f" (about {more} more canary requests to decide)"
    return SequentialResult(metric, estimate, lower, upper, margin, alpha, decision, p_value,
                            canary_n, stable_n, more, detail)


def _no_data(metric: str, margin: float, alpha: float, canary_n: int, stable_n: int, min_n: int) -> SequentialResult:
    return SequentialResult(metric, None, None, None, margin, alpha, CONTINUE, 1.0, canary_n, stable_n,
                            max(0, min_n - canary_n) or None,
                            f"{metric}: {canary_n} canary / {stable_n} stable requests, need {min_n} each")


def error_rate_test(canary_errors: int, canary_n: int, stable_errors: int, stable_n: int, *,
                    alpha: float = 0.05, margin: float = 0.0, tau: float | tuple[float, ...] = ERROR_TAUS, min_n: int = 30) -> SequentialResult:
    """Is the canary's error rate above stable's + margin? Anytime-valid at level alpha."""
    if canary_n < min_n or stable_n < min_n:
        return _no_data("error_rate", margin, alpha, canary_n, stable_n, min_n)
    estimate = canary_errors / canary_n - stable_errors / stable_n
    # Smoothed rates in the variance: zero observed errors must not mean zero uncertainty.
    pc = (canary_errors + 0.5) / (canary_n + 1.0)
    ps = (stable_errors + 0.5) / (stable_n + 1.0)
    variance = pc * (1 - pc) / canary_n + ps * (1 - ps) / stable_n
    return _judge("error_rate", estimate, variance, margin, alpha, tau, canary_n, stable_n, "")


@dataclass
class Moments:
    """Running sums of a per-request quantity: enough for a mean and a variance."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.total_sq += value * value

    def extend(self, values) -> "Moments":
        for value in values:
            self.add(value)
        return self

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n < 2:
            return 0.0
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1))

    def to_dict(self) -> dict[str, float]:
        return {"n": self.n, "total": self.total, "total_sq": self.total_sq}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Moments":
        data = data or {}
        return cls(int(data.get("n", 0)), float(data.get("total", 0.0)), float(data.get("total_sq", 0.0)))


def log_latency_moments(latencies_ms) -> Moments:
    # log(1 + ms): latency is skewed; on the log scale a slowdown is a shift.
    return Moments().extend(math.log1p(max(0.0, x)) for x in latencies_ms)


def latency_test(canary: Moments, stable: Moments, *, alpha: float = 0.05, margin_ratio: float = 1.1,
                 tau: float | tuple[float, ...] = LATENCY_TAUS, min_n: int = 30) -> SequentialResult:
    """Is the canary slower than stable by more than margin_ratio (on log(1 + latency))?"""
    margin = math.log(margin_ratio)
    if canary.n < min_n or stable.n < min_n:
        return _no_data("log_latency", margin, alpha, canary.n, stable.n, min_n)
    estimate = canary.mean - stable.mean
    floor = 1e-6  # identical latencies must not mean zero uncertainty
    variance = max(canary.variance, floor) / canary.n + max(stable.variance, floor) / stable.n
    return _judge("log_latency", estimate, variance, margin, alpha, tau, canary.n, stable.n, "")
