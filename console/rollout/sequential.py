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
any tau keeps the guarantee, and so does an average over several taus (used here). The rollback
question is one-sided, so the decisions use the half-normal mixture over regressions only; each
side of the reported band is a one-sided bound at alpha.

Error rates get an exact test on top (`update_error_evidence`; it decides when the margin is
0): the normal approximation above is poor with a handful of errors and plugs the canary's own,
inflated rate into the variance, so it is slow exactly when a canary fails hard. Conditional on how many
errors a window had in total (k) and on its traffic split (canary share pi), under H0 "the canary
fails no more often than stable" each error is the canary's with probability at most pi.
Exponentially tilting that by an odds ratio psi > 1 gives, per window,

    psi^x / (1 - pi + pi psi)^k        (x = the canary's errors)

whose H0 mean is <= 1: the exact null law of x is hypergeometric, which sits below the binomial
in convex order (Hoeffding 1963), and a canary that fails less makes x smaller still. The product
over windows is a test supermartingale for each psi and so is a fixed-weight average over a grid
of psi (`ODDS_RATIOS`, weighted toward large regressions, which cost the most per second). By
Ville's inequality it ever reaches 1/alpha with probability <= alpha, whatever the look schedule:
the controller may check every second, or every request. The only assumption is the one every
test here makes: requests fail independently, at a rate that may drift over time but is the same
for both variants under H0 (and constant within a window when the split changes inside it).

This is the construction of Lindon et al. (KDD 2022, "Rapid regression detection in software
deployments through sequential testing"): given a window's total count, the canary's share is
binomial in the traffic share under H0; they mix over a conjugate Beta prior on it, this mixes
over a grid of odds ratios (same guarantee, one-sided, and a grid that can put its weight where
regressions cost the most).

The same exact machinery judges every per-request event with a count: requests slower than a
bound fixed before the window (stable's p99 or median in earlier windows; from raw latencies, the
canary's bound times the latency margin; from histogram buckets, both counted above the same bucket
edge, exactly), and wrong predictions among the labelled ones (the share is then the labelled counts').
The grid of odds ratios is dense (1.05 … 30, uniform on the log scale), so any regression is
found with probability -> 1; `events_needed` plans how many events a step must see to find a given
one with a given power. `update_ratio_evidence` is the sample-ratio check: each request goes to
the canary with the configured probability under H0, two-sided grid.

Means (log latency, the share of predictions above stable's median) are compared within windows
(`add_stratum`: one difference per window, weighted n_c n_s / (n_c + n_s), variances pooled from
within-window deviations), so a trend both variants share cancels however the split moves.

Per-user clustering (sticky routing): the exact error test conditions on each window's errors, so
a few users who fail often inflate it only mildly (0.5 % of users failing 30 % of their requests:
5.1 % false alarms at alpha 5 %, bench_canary.py); the sample-ratio check on requests does not hold
under sticky routing with heavy users (80 %). When windows carry routing keys the judge therefore
works on users (console/rollout/units.py: delta-method ratio differences on hashed user buckets in
the same confidence sequence, and a multinomial e-process on new users for the sample ratio).
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
ERROR_TAUS = (0.01, 0.04, 0.16)
LATENCY_TAUS = (0.05, 0.2, 0.8)

# Odds ratios (canary error odds over stable's) the exact count tests mix over, and their prior
# weights (summing to 1): a dense geometric grid from 1.05 to 30 (steps of ~13 %), uniform on the
# log scale, i.e. a discretised continuous prior on log(odds ratio). Every regression above 1 then
# has a grid point with positive expected log-growth, so it is detected with probability -> 1
# (the old grid 1.5 … 13 capped an odds ratio of 1.15 at 11.7 % for ever); the price against a
# prior piled on big regressions is log(28) ≈ 3.3 nats of evidence, a few extra canary errors.
ODDS_RATIOS = tuple(round(math.exp(math.log(1.05) + i * (math.log(30.0) - math.log(1.05)) / 27), 6) for i in range(28))
ODDS_WEIGHTS = tuple([1.0 / 28] * 28)
# Two-sided grid (sample-ratio mismatch, prediction drift): the same ratios and their inverses.
TWO_SIDED_RATIOS = tuple(sorted(set(ODDS_RATIOS) | {round(1.0 / r, 9) for r in ODDS_RATIOS}))
TWO_SIDED_WEIGHTS = tuple([1.0 / len(TWO_SIDED_RATIOS)] * len(TWO_SIDED_RATIOS))


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
    e_value: float | None = None  # the exact test's evidence against H0 (rejects at >= 1/alpha)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _log_mixture(score_gap: float, variance: float, taus: tuple[float, ...], one_sided: bool = False) -> float:
    """log of the average over `taus` of the normal-mixture martingale at |estimate - delta| = score_gap.

    one_sided mixes over regressions only (a half-normal on theta > 0): that is the question a
    rollback asks, and it buys the factor 2*Phi(.) <= 2 of evidence a symmetric mixture wastes."""
    info = 1.0 / variance
    s = score_gap / variance
    logs = []
    for t in taus:
        value = -0.5 * math.log1p(t * t * info) + t * t * s * s / (2.0 * (1.0 + t * t * info))
        if one_sided:
            x = t * s / math.sqrt(1.0 + t * t * info)
            value += math.log(max(1e-300, 1.0 + math.erf(x / math.sqrt(2.0))))  # log(2 * Phi(x))
        logs.append(value)
    top = max(logs)
    return top + math.log(sum(math.exp(x - top) for x in logs) / len(logs))


def radius(variance: float, alpha: float, taus: float | tuple[float, ...], one_sided: bool = False) -> float:
    """Half-width of the confidence sequence for an estimate of variance `variance`.

    With several taus the martingales are averaged (still a martingale: the band is valid), so
    the test is near its fastest for small and for large regressions alike. one_sided gives the
    distance of a one-sided bound at level alpha."""
    if variance <= 0:
        return 0.0
    if isinstance(taus, (int, float)) and not one_sided:
        tau = float(taus)
        return math.sqrt((variance + variance * variance / (tau * tau))
                         * (math.log(1.0 + tau * tau / variance) + 2.0 * math.log(1.0 / alpha)))
    taus = (float(taus),) if isinstance(taus, (int, float)) else taus
    target = math.log(1.0 / alpha)
    # The average needs no more than its best member; a one-sided bound no more than a two-sided one.
    low, high = 0.0, max(radius(variance, alpha, t) for t in taus)
    for _ in range(36):  # 2^-36 of the widest member's radius: far below any reported digit
        mid = (low + high) / 2
        if _log_mixture(mid, variance, taus, one_sided) >= target:
            high = mid
        else:
            low = mid
    return high


def mixture_p_value(estimate: float, margin: float, variance: float, taus: float | tuple[float, ...]) -> float:
    """1 / M at this look for H0: difference <= margin (one-sided: only a worse canary counts)."""
    if variance <= 0 or estimate <= margin:
        return 1.0
    taus = (float(taus),) if isinstance(taus, (int, float)) else taus
    log_m = _log_mixture(estimate - margin, variance, taus, one_sided=True)
    return 1.0 if log_m <= 0 else max(0.0, math.exp(-log_m))


def _more_requests(estimate: float, margin: float, variance: float, canary_n: int, alpha: float, tau) -> int | None:
    """How many more canary requests (stable growing in proportion) until the band clears the margin."""
    gap = abs(estimate - margin)
    if gap <= 0 or canary_n <= 0:
        return None
    if radius(variance, alpha, tau, True) < gap:
        return 0
    low, high = 1.0, 2.0
    while radius(variance / high, alpha, tau, True) >= gap:
        high *= 2
        if high > 1e7:
            return None
    for _ in range(12):  # a request count to ~0.1 %: it is an estimate anyway
        mid = (low + high) / 2
        if radius(variance / mid, alpha, tau, True) >= gap:
            low = mid
        else:
            high = mid
    return int(math.ceil(canary_n * (high - 1)))


def _judge(metric: str, estimate: float, variance: float, margin: float, alpha: float, tau,
           canary_n: int, stable_n: int, unit: str, explain: bool = True,
           e_value: float | None = None) -> SequentialResult:
    """The band's verdict; with an exact test's e_value, that test alone decides "worse" (so the
    two never add up to more than alpha) and the band only says "safe" and how far off a call is."""
    # Each side is a one-sided bound at alpha: "worse than stable" and "no worse" are separate questions.
    half = radius(variance, alpha, tau, one_sided=True)
    lower, upper = estimate - half, estimate + half
    worse = lower > margin if e_value is None else e_value >= 1.0 / alpha
    if worse:
        decision = REJECT
    elif upper < margin:
        decision = SAFE
    else:
        decision = CONTINUE
    if e_value is None:
        p_value = mixture_p_value(estimate, margin, variance, tau)
    else:
        p_value = min(1.0, 1.0 / e_value) if e_value > 0 else 1.0
    more = None if decision != CONTINUE or not explain else _more_requests(estimate, margin, variance, canary_n, alpha, tau)
    detail = (f"{metric}: canary - stable = {estimate:+.4g}{unit}, {100 * (1 - alpha):g}% bounds "
              f"[{lower:+.4g}, {upper:+.4g}], margin {margin:+.4g}")
    if e_value is not None:
        detail += f", exact test e = {e_value:.3g} (rolls back at {1.0 / alpha:.3g})"
    detail += f" -> {decision}"
    if more:
        detail += f" (about {more} more canary requests to decide)"
    return SequentialResult(metric, estimate, lower, upper, margin, alpha, decision, p_value,
                            canary_n, stable_n, more, detail, e_value)


def new_error_evidence(odds_ratios: tuple[float, ...] = ODDS_RATIOS,
                       weights: tuple[float, ...] = ODDS_WEIGHTS, two_sided: bool = False) -> dict[str, Any]:
    """An exact count test's running state (JSON-friendly: it is persisted with the canary).

    One-sided (ratios > 1) asks "does the canary have more events than stable?"; two_sided
    (ratios on both sides of 1) asks "does its share differ?" (sample ratio, prediction drift):
    psi^x is convex for every psi > 0, so the convex-order argument holds for psi < 1 as well."""
    if len(odds_ratios) != len(weights) or abs(sum(weights) - 1) > 1e-9 or any(r <= 0 for r in odds_ratios) \
            or (not two_sided and any(r <= 1 for r in odds_ratios)):
        raise ValueError("odds ratios must be > 1 (> 0 two-sided), one weight each, weights summing to 1")
    return {"odds_ratios": list(odds_ratios), "weights": list(weights), "log_e": [0.0] * len(odds_ratios),
            "windows": 0}


def new_two_sided_evidence() -> dict[str, Any]:
    return new_error_evidence(TWO_SIDED_RATIOS, TWO_SIDED_WEIGHTS, two_sided=True)


def tilt_evidence(evidence: dict[str, Any], canary_events: int, events: int, share: float) -> dict[str, Any]:
    """Multiply each grid member by psi^x / (1 - share + share psi)^k (pure: returns a new dict).

    `share` is each event's chance of being the canary's under H0; x of the k events were."""
    log_e = list(evidence["log_e"])
    if events > 0 and 0 < share < 1:
        for i, ratio in enumerate(evidence["odds_ratios"]):
            log_e[i] += canary_events * math.log(ratio) - events * math.log1p(share * (ratio - 1.0))
    return {"odds_ratios": list(evidence["odds_ratios"]), "weights": list(evidence["weights"]), "log_e": log_e,
            "windows": int(evidence.get("windows", 0)) + 1}


def update_error_evidence(evidence: dict[str, Any] | None, canary_errors: int, canary_n: int,
                          stable_errors: int, stable_n: int) -> dict[str, Any]:
    """Fold one window's counts into the exact test (pure: returns a new dict).

    Call it once per window, with that window's counts only: the product over windows is what
    keeps the guarantee; recomputing from cumulative totals would not. "Errors" are any per-request
    event of the same kind in both variants: failures, latencies above a bound fixed before the
    window, wrong predictions among the labelled ones (the share is then the labelled counts')."""
    ev = new_error_evidence() if not evidence else evidence
    # Counts from a metrics backend are kept within their totals.
    canary_n, stable_n = max(0, int(canary_n)), max(0, int(stable_n))
    canary_errors = min(canary_n, max(0, int(canary_errors)))
    stable_errors = min(stable_n, max(0, int(stable_errors)))
    errors = canary_errors + stable_errors
    if canary_n > 0 and stable_n > 0 and errors > 0:  # otherwise the window says nothing about the difference
        return tilt_evidence(ev, canary_errors, errors, canary_n / (canary_n + stable_n))
    return tilt_evidence(ev, 0, 0, 0.5)


def update_ratio_evidence(evidence: dict[str, Any] | None, canary_n: int, stable_n: int,
                          canary_share: float) -> dict[str, Any]:
    """Sample-ratio mismatch: each request goes to the canary with probability `canary_share`
    (the configured weight) under H0, independently; x canary requests of n are binomial, and the
    two-sided tilt is that binomial's likelihood-ratio mixture."""
    ev = new_two_sided_evidence() if not evidence else evidence
    canary_n, stable_n = max(0, int(canary_n)), max(0, int(stable_n))
    return tilt_evidence(ev, canary_n, canary_n + stable_n, canary_share)


def error_e_value(evidence: dict[str, Any] | None) -> float:
    """The mixture's e-value: the weighted average of the per-odds-ratio products."""
    if not evidence:
        return 1.0
    top = max(evidence["log_e"])
    total = sum(w * math.exp(x - top) for w, x in zip(evidence["weights"], evidence["log_e"]))
    return math.exp(min(700.0, top + math.log(total)))


def _no_data(metric: str, margin: float, alpha: float, canary_n: int, stable_n: int, min_n: int) -> SequentialResult:
    return SequentialResult(metric, None, None, None, margin, alpha, CONTINUE, 1.0, canary_n, stable_n,
                            max(0, min_n - canary_n) or None,
                            f"{metric}: {canary_n} canary / {stable_n} stable requests, need {min_n} each")


def error_rate_test(canary_errors: int, canary_n: int, stable_errors: int, stable_n: int, *,
                    alpha: float = 0.05, margin: float = 0.0, tau: float | tuple[float, ...] = ERROR_TAUS, min_n: int = 30,
                    explain: bool = True, evidence: dict[str, Any] | None = None,
                    metric: str = "error_rate") -> SequentialResult:
    """Is the canary's error rate above stable's + margin? Anytime-valid at level alpha.

    With `evidence` (from update_error_evidence, window by window) and margin 0, the exact test
    decides a rollback, from the first request on; the normal band is reported and says "safe".
    A margin above 0 is not an odds-ratio question: then the normal band decides alone."""
    e_value = error_e_value(evidence) if evidence is not None and margin == 0 else None
    if canary_n < min_n or stable_n < min_n:
        if e_value is not None and e_value >= 1.0 / alpha and canary_n > 0 and stable_n > 0:
            pass  # exact: needs no minimum sample, and this is already a decision
        else:
            result = _no_data(metric, margin, alpha, canary_n, stable_n, min_n)
            if e_value is not None:
                result.e_value = e_value
                result.p_value = min(1.0, 1.0 / e_value)
            return result
    estimate = canary_errors / canary_n - stable_errors / stable_n
    # Smoothed rates in the variance: zero observed errors must not mean zero uncertainty.
    pc = (canary_errors + 0.5) / (canary_n + 1.0)
    ps = (stable_errors + 0.5) / (stable_n + 1.0)
    variance = pc * (1 - pc) / canary_n + ps * (1 - ps) / stable_n
    return _judge(metric, estimate, variance, margin, alpha, tau, canary_n, stable_n, "", explain, e_value)


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
                 tau: float | tuple[float, ...] = LATENCY_TAUS, min_n: int = 30, explain: bool = True) -> SequentialResult:
    """Is the canary slower than stable by more than margin_ratio (on log(1 + latency))?"""
    margin = math.log(margin_ratio)
    if canary.n < min_n or stable.n < min_n:
        return _no_data("log_latency", margin, alpha, canary.n, stable.n, min_n)
    estimate = canary.mean - stable.mean
    floor = 1e-6  # identical latencies must not mean zero uncertainty
    variance = max(canary.variance, floor) / canary.n + max(stable.variance, floor) / stable.n
    return _judge("log_latency", estimate, variance, margin, alpha, tau, canary.n, stable.n, "", explain)


# ---------------------------------------------------------------------------------------------
# Stratified differences: one estimate per window, combined. Pooling a variant's requests across
# windows mixes split changes with time: a latency trend shared by both variants (+50 % over the
# plan) looked like a canary regression 35.5 % of the time, because the canary's requests sit
# later in the plan than stable's. Within a window both variants see the same moment.


def new_strata() -> dict[str, float]:
    return {"sw": 0.0, "w": 0.0, "w2c": 0.0, "w2s": 0.0, "ssc": 0.0, "dfc": 0.0, "sss": 0.0, "dfs": 0.0,
            "nc": 0, "ns": 0}


def add_stratum(strata: dict[str, float] | None, canary: Moments, stable: Moments) -> dict[str, float]:
    """Fold one window's per-variant moments in (pure). The window's difference of means gets the
    weight n_c n_s / (n_c + n_s) (fixed when the window closes, so the sum is predictable), and the
    per-variant variance is pooled over windows from within-window deviations only."""
    out = dict(strata or new_strata())
    if canary.n < 2 or stable.n < 2:
        return out  # a variance needs two observations on each side
    w = canary.n * stable.n / (canary.n + stable.n)
    out["sw"] += w * (canary.mean - stable.mean)
    out["w"] += w
    out["w2c"] += w * w / canary.n
    out["w2s"] += w * w / stable.n
    out["ssc"] += canary.variance * (canary.n - 1)
    out["dfc"] += canary.n - 1
    out["sss"] += stable.variance * (stable.n - 1)
    out["dfs"] += stable.n - 1
    out["nc"] += canary.n
    out["ns"] += stable.n
    return out


def strata_estimate(strata: dict[str, float] | None, floor: float = 1e-6) -> tuple[float, float] | None:
    """(canary − stable, its variance) of the stratified difference, or None before any window."""
    if not strata or strata["w"] <= 0:
        return None
    var_c = max(floor, strata["ssc"] / strata["dfc"]) if strata["dfc"] else floor
    var_s = max(floor, strata["sss"] / strata["dfs"]) if strata["dfs"] else floor
    return strata["sw"] / strata["w"], (var_c * strata["w2c"] + var_s * strata["w2s"]) / (strata["w"] ** 2)


def stratified_latency_test(strata: dict[str, float] | None, *, alpha: float = 0.05, margin_ratio: float = 1.1,
                            tau: float | tuple[float, ...] = LATENCY_TAUS, min_n: int = 30,
                            explain: bool = True) -> SequentialResult:
    """Is the canary slower than stable by more than margin_ratio (log(1 + ms), within windows)?"""
    margin = math.log(margin_ratio)
    nc, ns = int((strata or {}).get("nc", 0)), int((strata or {}).get("ns", 0))
    found = strata_estimate(strata)
    if found is None or nc < min_n or ns < min_n:
        return _no_data("log_latency", margin, alpha, nc, ns, min_n)
    estimate, variance = found
    return _judge("log_latency", estimate, variance, margin, alpha, tau, nc, ns, "", explain)


def stratified_shift_test(strata: dict[str, float] | None, metric: str, *, alpha: float = 0.05, margin: float = 0.1,
                          tau: float | tuple[float, ...] = ERROR_TAUS, min_n: int = 100,
                          explain: bool = True) -> SequentialResult:
    """Two-sided: does the canary's mean (e.g. share of predictions above stable's median) differ
    from stable's by more than margin in either direction? Each side is tested at alpha / 2."""
    nc, ns = int((strata or {}).get("nc", 0)), int((strata or {}).get("ns", 0))
    found = strata_estimate(strata)
    if found is None or nc < min_n or ns < min_n:
        return _no_data(metric, margin, alpha, nc, ns, min_n)
    estimate, variance = found
    up = _judge(metric, estimate, variance, margin, alpha / 2, tau, nc, ns, "", explain)
    down = _judge(metric, -estimate, variance, margin, alpha / 2, tau, nc, ns, "", explain)
    down.detail = down.detail.replace("canary - stable", "stable - canary")  # its numbers are the mirror
    if up.decision == REJECT or down.decision == REJECT:
        return up if up.decision == REJECT else down
    if up.decision == SAFE and down.decision == SAFE:
        return up
    result = up if estimate >= 0 else down
    result.decision = CONTINUE
    result.detail = result.detail.rsplit(" -> ", 1)[0] + " -> " + CONTINUE
    return result


# ---------------------------------------------------------------------------------------------
# Power: how much data a step needs before "no rollback" means "no regression of that size".


def events_needed(odds_ratio: float, share: float, alpha: float, power: float = 0.8,
                  odds_ratios: tuple[float, ...] = ODDS_RATIOS, weights: tuple[float, ...] = ODDS_WEIGHTS) -> float:
    """Events (errors, slow requests …) in both variants together after which the exact mixture
    test detects a regression of `odds_ratio` with probability ~`power` at this split.

    Per event, grid member psi gains q log psi − log(1 − pi + pi psi) of log-evidence on average
    (q: the canary's share of events under the alternative) with variance q(1−q) log² psi; the
    mixture is at least w · member, so K events suffice once K g − z sqrt(K) s ≥ log(1/(alpha w)).
    Rare events are assumed (odds ratio ≈ rate ratio): a conservative plan for frequent ones."""
    if not 0 < share < 1 or odds_ratio <= 1:
        return math.inf
    z = _normal_quantile(power)
    q = share * odds_ratio / (1 - share + share * odds_ratio)
    best = math.inf
    for ratio, weight in zip(odds_ratios, weights):
        if ratio <= 1:
            continue
        gain = q * math.log(ratio) - math.log1p(share * (ratio - 1))
        if gain <= 0:
            continue
        spread = math.sqrt(q * (1 - q)) * math.log(ratio)
        target = math.log(1.0 / alpha) - math.log(weight)
        root = (z * spread + math.sqrt(z * z * spread * spread + 4 * gain * target)) / (2 * gain)
        best = min(best, root * root)
    return best


def _normal_quantile(p: float) -> float:
    low, high = -10.0, 10.0
    for _ in range(80):
        mid = (low + high) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            low = mid
        else:
            high = mid
    return high
