"""Canary analysis and the canary state machine. PURE: data in, verdict out, no I/O.

The controller (console/rollout/controller.py) feeds health windows in and carries the
decisions out to the traffic backend and the registry; the screen and the CLI read the state.

Two judges look at every interval:
- the threshold rule of the seed pipeline, against the stable variant: error-rate delta, p99
  latency ratio, prediction drift (PSI) and online accuracy; N consecutive failing windows
  (default 3) roll back;
- the sequential judge (console/rollout/sequential.py): anytime-valid tests that roll back, with the
  false-rollback rate held at alpha, as soon as the evidence is in: an exact e-process on each
  window's error counts (canary vs stable, conditional on the window's errors and split), and a
  confidence sequence on the cumulative log-latency difference (and on the error-rate
  difference when a margin above 0 is configured).
With judge="sequential" only anytime-valid tests roll back, with alpha spent across all of
them (ALPHA_SHARES): errors, latency within windows (log-mean from raw latencies, or the share
above stable's median from a histogram), the latency tail (the share of requests above stable's
p99, from raw latencies or histogram buckets), online accuracy (wrong among labelled), prediction
drift (share above stable's median, within windows) and the sample ratio (halts the canary); the
threshold checks are shown as advisory. "threshold" uses the seed rule alone; "both" rolls back
on either. The last step holds until the count tests have the sample to detect the plan's minimum
detectable regression (`evidence_gap`).

Only the alpha budget rolls back (sequential judge): a canary that cannot gather evidence — silent
or thin windows, an outage stable shares — holds and says so; past the no-data timeout, or past
`evidence_timeout_s` at the last step, it ends as INCONCLUSIVE under the plan's `inconclusive`
policy ("hold": paused at its weight for a person; "rollback": rolled back), recorded as
inconclusive, never as a failed check. When windows carry routing keys the tests work on users
(console/rollout/units.py), the unit the router randomises.

What stays fail-closed: a metrics-backend error and a NaN or infinite value in a window are a
broken instrument, not thin evidence: FAILED checks that count toward the consecutive-failure
rule. Under the threshold and "both" judges a silent variant is a failed check too (the seed rule).
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from backends.base import BadInputError, HealthWindow
from console.rollout import sequential, units
from console.domain import CanaryPlan, CanaryState

MAX_ANALYSES = 40  # kept in the state: enough for the screen's charts
MAX_EVENTS = 200
PSI_MIN_SAMPLE = 100

# The share of alpha each sequential check that can roll back (or halt) spends: a weighted
# Bonferroni, fixed in advance, so the judge's false-rollback rate is <= alpha over all of them.
ALPHA_SHARES = {"error_rate": 0.3, "latency": 0.2, "latency_tail": 0.2, "online_accuracy": 0.1,
                "prediction_drift": 0.1, "sample_ratio": 0.1}
# Latency bounds for the count tests: (state key, stable quantile, stable requests needed to set it).
LATENCY_BOUNDS = (("latency_tail", 0.99, 100), ("latency_p50", 0.5, 20))
DRIFT_MIN_PREDICTIONS = 20
# The power-aware plan's defaults (a plan may set these attributes): the regressions the last step
# must be able to detect before it promotes, the power, and how long it may wait for that sample.
MIN_DETECTABLE = {"error_ratio": 2.0, "error_delta": 0.002, "tail_ratio": 3.0, "tail_delta": 0.01}
PROMOTION_POWER = 0.8
EVIDENCE_TIMEOUT_HOLDS = 30  # evidence_timeout_s defaults to this many hold_s
TERMINAL = ("promoted", "rolled_back", "aborted")
NO_DATA_INTERVALS = 5  # the default no-data timeout, in analysis intervals
INCONCLUSIVE_POLICIES = ("hold", "rollback")

# Actions a decision asks the controller to carry out.
HOLD, STEP, PROMOTE, ROLLBACK, PAUSE, RESUME, ABORT = "hold", "step", "promote", "rollback", "pause", "resume", "abort"


# ---------------------------------------------------------------------------------------------
# Plan


def parse_plan(text: str, base: CanaryPlan | None = None) -> CanaryPlan:
    """"5,25,50,100" -> a plan with those steps; one clear error naming --plan otherwise."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    try:
        steps = [int(p) for p in parts]
    except ValueError:
        raise BadInputError(f"--plan {text!r}: steps must be integers (percent of traffic), e.g. 5,25,50,100") from None
    plan = dataclasses.replace(base or CanaryPlan(), steps=steps)
    validate_plan(plan, "--plan")
    return plan


def validate_plan(plan: CanaryPlan, where: str = "plan") -> CanaryPlan:
    steps = list(plan.steps)
    if not steps:
        raise BadInputError(f"{where}: at least one step is needed")
    if any(s <= 0 or s > 100 for s in steps):
        raise BadInputError(f"{where}: every step must be between 1 and 100 percent (got {steps})")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise BadInputError(f"{where}: steps must increase (got {steps})")
    if steps[-1] != 100:
        raise BadInputError(f"{where}: the last step must be 100 (got {steps[-1]})")
    import math

    if not (math.isfinite(plan.hold_s) and math.isfinite(plan.interval_s)) or plan.hold_s < 0 or plan.interval_s <= 0:
        # a NaN or infinite interval would never analyse, so never roll back by itself
        raise BadInputError(f"{where}: hold_s must be a finite number >= 0 and interval_s a finite number > 0")
    min_requests = getattr(plan, "min_requests", 1)
    if not isinstance(min_requests, int) or min_requests < 1:
        raise BadInputError(f"{where}: min_requests must be a whole number >= 1")
    delta = plan.max_error_rate_delta
    if not math.isfinite(delta) or delta < 0:
        raise BadInputError(f"{where}: max_error_rate_delta must be a finite number >= 0")
    if plan.consecutive_failures < 1:
        raise BadInputError(f"{where}: consecutive_failures must be >= 1")
    if not 0 < plan.alpha < 1:
        raise BadInputError(f"{where}: alpha must be between 0 and 1")
    for name in ("min_detectable_error_ratio", "min_detectable_tail_ratio"):
        value = getattr(plan, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 1):
            raise BadInputError(f"{where}: {name} must be an odds ratio > 1 (or None to promote without waiting)")
    if not isinstance(getattr(plan, "check_sample_ratio", True), bool):
        raise BadInputError(f"{where}: check_sample_ratio must be true or false")
    value = getattr(plan, "evidence_timeout_s", None)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value) or value <= 0):
        raise BadInputError(f"{where}: evidence_timeout_s must be a finite number of seconds > 0")
    if getattr(plan, "inconclusive", "hold") not in INCONCLUSIVE_POLICIES:
        raise BadInputError(f"{where}: inconclusive must be hold or rollback (got {getattr(plan, 'inconclusive', None)!r})")
    timeout = getattr(plan, "no_data_timeout_s", None)
    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
        raise BadInputError(f"{where}: no_data_timeout_s must be a finite number > 0")
    if plan.judge not in ("sequential", "threshold", "both"):
        raise BadInputError(f"{where}: judge must be sequential, threshold or both (got {plan.judge!r})")
    return plan


def new_state(model: str, stable: str, candidate: str, plan: CanaryPlan, now: float, now_iso: str) -> CanaryState:
    validate_plan(plan)
    if stable == candidate:
        raise BadInputError(f"{model}: candidate {candidate} is already the stable version")
    state = CanaryState(model=model, stable=stable, candidate=candidate, plan=plan, step=-1, weight=0,
                        status="progressing", id=uuid.uuid4().hex[:12], started_at=now, step_started_at=now,
                        updated_at=now_iso)
    state.sequential = {"cumulative": {}, "last_end": now, "min_p_value": 1.0}
    return log_event(state, now_iso, "start", f"canary {candidate} against stable {stable}, plan "
                     + " → ".join(f"{s}%" for s in plan.steps))


def log_event(state: CanaryState, at: str, kind: str, text: str, actor: str = "controller") -> CanaryState:
    state.events = (state.events + [{"at": at, "kind": kind, "text": text, "actor": actor}])[-MAX_EVENTS:]
    return state


def split_for(state: CanaryState, weight: int) -> dict[str, int]:
    """The weights the router gets for a canary weight; the canary first, so its buckets stay put."""
    if weight >= 100:
        return {state.candidate: 100}
    if weight <= 0:
        return {state.stable: 100}
    return {state.candidate: weight, state.stable: 100 - weight}


def stable_split(state: CanaryState) -> dict[str, int]:
    return {state.stable: 100}


# ---------------------------------------------------------------------------------------------
# Analysis


def psi(reference: list[float], current: list[float], bins: int = 10) -> float | None:
    """Population stability index of two prediction samples on [0, 1]."""
    if len(reference) < 5 or len(current) < 5:
        return None

    def shares(values: list[float]) -> list[float]:
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, max(0, int(v * bins)))] += 1
        return [(c + 0.5) / (len(values) + 0.5 * bins) for c in counts]

    ref, cur = shares(reference), shares(current)
    return sum((c - r) * math.log(c / r) for r, c in zip(ref, cur))


@dataclass
class Check:
    name: str
    passed: bool | None  # None: not enough data to say
    value: float | None
    threshold: float | None
    baseline: float | None
    detail: str
    counts: bool = True  # does a failure count toward the consecutive-failure rule?

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Analysis:
    at: float
    weight: int
    canary: dict[str, Any]
    stable: dict[str, Any]
    checks: list[Check]
    window_verdict: str  # pass | fail | no_data
    sequential_results: list[sequential.SequentialResult]
    sequential_verdict: str  # reject | safe | continue
    rollback: bool
    reason: str
    cumulative: dict[str, Any] = field(default_factory=dict)
    has_data: bool = True  # did both variants report finite numbers (what the no-data timeout waits for)?
    halt: bool = False  # a broken experiment (sample-ratio mismatch): abort rather than roll back

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at, "has_data": self.has_data, "weight": self.weight, "canary": self.canary, "stable": self.stable,
            "checks": [c.to_dict() for c in self.checks], "window_verdict": self.window_verdict,
            "sequential": [r.to_dict() for r in self.sequential_results],
            "sequential_verdict": self.sequential_verdict, "rollback": self.rollback, "reason": self.reason,
        }


def _safe_summary(w: HealthWindow) -> dict[str, Any]:
    """The summary of a window that failed the finite check: non-finite numbers become None (JSON-safe)."""
    out = _summary(dataclasses.replace(w, predictions=[p for p in w.predictions if math.isfinite(p)]))
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def _summary(w: HealthWindow) -> dict[str, Any]:
    return {"version": w.version, "requests": w.requests, "errors": w.errors, "error_rate": w.error_rate,
            "p50_ms": w.latency_p50_ms, "p99_ms": w.latency_p99_ms, "labelled": w.labelled,
            "accuracy": w.online_accuracy,
            "mean_prediction": (sum(w.predictions) / len(w.predictions)) if w.predictions else None}


def threshold_checks(plan: CanaryPlan, stable: HealthWindow, canary: HealthWindow) -> list[Check]:
    """The seed's threshold rule, relative to the stable variant, on one window."""
    enough = canary.requests >= plan.min_requests and stable.requests >= plan.min_requests
    # In sequential mode every check here is advisory: the anytime-valid tests own the rollback
    # (a threshold on 10 labels per arm alone gave 11.5 % false rollbacks in A/A).
    seq_counts = plan.judge != "sequential"
    checks = []
    if enough:
        delta = canary.error_rate - stable.error_rate
        checks.append(Check("error_rate", delta <= plan.max_error_rate_delta, canary.error_rate,
                            stable.error_rate + plan.max_error_rate_delta, stable.error_rate,
                            f"error rate {canary.error_rate:.2%} vs stable {stable.error_rate:.2%} "
                            f"(allowed +{plan.max_error_rate_delta:.2%})", seq_counts))
        if canary.latency_p99_ms is not None and stable.latency_p99_ms:
            limit = stable.latency_p99_ms * plan.max_p99_latency_ratio
            checks.append(Check("p99_latency", canary.latency_p99_ms <= limit, canary.latency_p99_ms, limit,
                                stable.latency_p99_ms, f"p99 {canary.latency_p99_ms:.1f} ms vs stable "
                                f"{stable.latency_p99_ms:.1f} ms (allowed ×{plan.max_p99_latency_ratio:g})", seq_counts))
    else:
        checks.append(Check("requests", None, canary.requests, plan.min_requests, stable.requests,
                            f"{canary.requests} canary / {stable.requests} stable requests in the window, "
                            f"need {plan.min_requests} each", False))
    # PSI on a few dozen predictions is noise: judge drift only on a sample that can carry it.
    drift = psi(stable.predictions, canary.predictions) if min(len(stable.predictions), len(canary.predictions)) >= max(
        PSI_MIN_SAMPLE, plan.min_requests) else None
    if enough and drift is not None:
        checks.append(Check("prediction_psi", drift <= plan.max_prediction_psi, drift, plan.max_prediction_psi,
                            0.0, f"prediction PSI canary vs stable {drift:.3f} (allowed {plan.max_prediction_psi:g})",
                            seq_counts))
    min_labels = max(5, plan.min_requests // 2)
    if canary.labelled >= min_labels and stable.labelled >= min_labels:
        delta = canary.online_accuracy - stable.online_accuracy
        checks.append(Check("online_accuracy", delta >= plan.min_online_accuracy_delta, canary.online_accuracy,
                            stable.online_accuracy + plan.min_online_accuracy_delta, stable.online_accuracy,
                            f"online accuracy {canary.online_accuracy:.1%} vs stable {stable.online_accuracy:.1%} "
                            f"({canary.labelled} labels)", seq_counts))
    return checks


def accumulate(cumulative: dict[str, Any], variant: str, window: HealthWindow) -> dict[str, Any]:
    """Add one window to the running totals the sequential judge reads (pure: returns a copy)."""
    out = {k: dict(v) for k, v in cumulative.items()}
    entry = out.get(variant, {"requests": 0, "errors": 0, "log_latency": {}})
    moments = sequential.Moments.from_dict(entry.get("log_latency"))
    moments = sequential.Moments(moments.n, moments.total, moments.total_sq)
    moments.extend(math.log1p(max(0.0, x)) for x in window.latencies_ms)
    out[variant] = {"requests": entry["requests"] + window.requests, "errors": entry["errors"] + window.errors,
                    "log_latency": moments.to_dict()}
    return out


def sequential_results(plan: CanaryPlan, cumulative: dict[str, Any], explain: bool = True) -> list[sequential.SequentialResult]:
    """Every anytime-valid check, each at its share of alpha (ALPHA_SHARES)."""
    c = cumulative.get("canary", {"requests": 0, "errors": 0})
    s = cumulative.get("stable", {"requests": 0, "errors": 0})
    share = {name: plan.alpha * part for name, part in ALPHA_SHARES.items()}
    results = [sequential.error_rate_test(c["errors"], c["requests"], s["errors"], s["requests"], alpha=share["error_rate"],
                                          margin=plan.error_rate_margin, explain=explain,
                                          evidence=cumulative.get("error_evidence"))]
    strata = cumulative.get("latency_strata")
    if strata is not None or not cumulative.get("latency_p50"):  # raw latencies seen (or nothing yet)
        results.append(sequential.stratified_latency_test(strata, alpha=share["latency"],
                                                          margin_ratio=plan.latency_margin_ratio, explain=explain))
    else:  # a histogram source: the share of requests above stable's median, counted exactly
        results.append(_count_result(cumulative["latency_p50"], "latency_over_p50", share["latency"], explain))
    results.append(_count_result(cumulative.get("latency_tail") or {}, "latency_over_p99", share["latency_tail"], explain))
    results.append(_count_result(cumulative.get("accuracy") or {}, "online_error", share["online_accuracy"], explain))
    results.append(sequential.stratified_shift_test(cumulative.get("drift_strata"), "prediction_over_median",
                                                    alpha=share["prediction_drift"],
                                                    margin=getattr(plan, "max_prediction_shift", 0.1), explain=explain))
    if cumulative.get("users"):  # windows carried routing keys: users are the unit
        by_user = _user_results(plan, cumulative, share, explain)
        results = [by_user.get(r.metric, r) for r in results]
        ratio = by_user["sample_ratio"]
    else:
        ratio = _ratio_result(cumulative.get("sample_ratio") or {}, share["sample_ratio"])
    if not getattr(plan, "check_sample_ratio", True) and ratio.decision == sequential.REJECT:
        ratio.decision = sequential.CONTINUE  # shown, never acted on: the plan says routing is sticky
        ratio.detail = ratio.detail.rsplit(" -> ", 1)[0] + " -> advisory (check_sample_ratio off)"
    results.append(ratio)
    return results


def _count_result(entry: dict[str, Any], metric: str, alpha: float, explain: bool) -> sequential.SequentialResult:
    counts = entry.get("counts") or [0, 0, 0, 0]
    return sequential.error_rate_test(counts[0], counts[1], counts[2], counts[3], alpha=alpha, explain=explain,
                                      evidence=entry.get("evidence") or sequential.new_error_evidence(), metric=metric)


def _ratio_result(entry: dict[str, Any], alpha: float) -> sequential.SequentialResult:
    if entry.get("off"):
        return sequential.SequentialResult("sample_ratio", None, None, None, 0.0, alpha, sequential.CONTINUE, 1.0, 0, 0,
                                           None, f"sample_ratio: off: {entry['off']}")
    e_value = sequential.error_e_value(entry.get("evidence"))
    canary_n, stable_n, expected = entry.get("canary", 0), entry.get("stable", 0), entry.get("expected", 0.0)
    total = canary_n + stable_n
    decision = sequential.REJECT if e_value >= 1.0 / alpha else sequential.CONTINUE
    detail = (f"sample_ratio: canary got {canary_n} of {total} requests ({canary_n / total:.2%}) where the split "
              f"promised {expected / total:.2%}, e = {e_value:.3g} (halts at {1.0 / alpha:.3g})" if total else
              "sample_ratio: no requests yet") + f" -> {decision}"
    return sequential.SequentialResult("sample_ratio", None, None, None, 0.0, alpha, decision,
                                       min(1.0, 1.0 / e_value) if e_value > 0 else 1.0, canary_n, stable_n, None,
                                       detail, e_value)


# -- per-window evidence ----------------------------------------------------------------------


def _over(window: HealthWindow, threshold: float, canary_side: bool) -> tuple[int, int] | None:
    """(requests above threshold, requests) from raw latencies or the histogram.

    A histogram counts above a bucket bound: the canary's bound is rounded up and stable's down,
    so under H0 the canary's count can only come out smaller: the test stays valid. fold_window
    passes a bucket edge itself for both (no rounding at all: the exact share above that edge)."""
    if window.latencies_ms:
        return sum(1 for x in window.latencies_ms if x > threshold), len(window.latencies_ms)
    buckets = sorted((float(le), int(n)) for le, n in window.latency_buckets)
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    total = buckets[-1][1]
    if canary_side:
        le, at = next((le, n) for le, n in buckets if le >= threshold * (1 - 1e-9))
        if math.isinf(le):
            return None  # no finite bucket above the canary's bound: nothing to count
        return total - at, total
    below = [n for le, n in buckets if le <= threshold * (1 + 1e-9)]
    return total - (below[-1] if below else 0), total


def _bound(window: HealthWindow, quantile: float, min_n: int) -> float | None:
    """Stable's latency quantile in this window (a bucket bound for a histogram), or None."""
    if window.latencies_ms:
        ordered = sorted(window.latencies_ms)
        if len(ordered) < min_n:
            return None
        return ordered[min(len(ordered) - 1, max(0, math.ceil(quantile * len(ordered)) - 1))]
    buckets = sorted((float(le), int(n)) for le, n in window.latency_buckets)
    if not buckets or buckets[-1][1] < min_n:
        return None
    for le, n in buckets:
        if n >= quantile * buckets[-1][1]:
            return None if math.isinf(le) else le
    return None


def fold_window(state: CanaryState, previous: dict[str, Any], cumulative: dict[str, Any], stable: HealthWindow,
                canary: HealthWindow) -> dict[str, Any]:
    """Fold one window into every sequential test's running evidence (pure: returns a copy).

    Every bound a window is judged against (stable's latency quantiles, its prediction median)
    comes from earlier windows: fixed before the window's data, it keeps each window's factor a
    valid e-value given the past. Each window is compared within itself (split and moment shared)."""
    plan = state.plan
    out = dict(cumulative)
    if canary.latencies_ms or stable.latencies_ms:
        out["latency_strata"] = sequential.add_stratum(previous.get("latency_strata"),
                                                       sequential.log_latency_moments(canary.latencies_ms),
                                                       sequential.log_latency_moments(stable.latencies_ms))
    for key, quantile, min_n in LATENCY_BOUNDS:
        entry = dict(previous.get(key) or {"bound_ms": None, "counts": [0, 0, 0, 0], "events": 0.0, "info": 0.0})
        bound = entry.get("bound_ms")
        if bound is not None:
            # From raw latencies the canary's bound carries the margin. From a histogram the bound
            # is a bucket edge and the canary is counted above that same edge, exactly: H0 "no
            # slower" at that edge. Carrying the margin there rounded the canary's bound up a
            # whole bucket (25 -> 50 ms) and a 1.2x slower canary was promoted 30/30 (issue 20).
            ratio = plan.latency_margin_ratio if canary.latencies_ms or not canary.latency_buckets else 1.0
            got_c = _over(canary, bound * ratio, True)
            got_s = _over(stable, bound, False)
            if got_c and got_s:
                entry = _add_counts(entry, got_c[0], got_c[1], got_s[0], got_s[1])
        fresh = _bound(stable, quantile, min_n)
        entry["bound_ms"] = fresh if fresh is not None else bound
        out[key] = entry
    accuracy = dict(previous.get("accuracy") or {"counts": [0, 0, 0, 0], "events": 0.0, "info": 0.0})
    out["accuracy"] = _add_counts(accuracy, canary.labelled - canary.correct, canary.labelled,
                                  stable.labelled - stable.correct, stable.labelled)
    errors = dict(previous.get("errors_info") or {"counts": [0, 0, 0, 0], "events": 0.0, "info": 0.0})
    out["errors_info"] = _add_counts(errors, canary.errors, canary.requests, stable.errors, stable.requests,
                                     keep_evidence=False)
    cut = (previous.get("drift") or {}).get("cut")
    if cut is not None and canary.predictions and stable.predictions:
        out["drift_strata"] = sequential.add_stratum(
            previous.get("drift_strata"), sequential.Moments().extend(float(p > cut) for p in canary.predictions),
            sequential.Moments().extend(float(p > cut) for p in stable.predictions))
    if len(stable.predictions) >= DRIFT_MIN_PREDICTIONS:
        ordered = sorted(stable.predictions)
        cut = ordered[len(ordered) // 2]
    out["drift"] = {"cut": cut}
    out["sample_ratio"] = _fold_ratio(state, previous.get("sample_ratio") or {}, stable, canary)
    if canary.units or stable.units or "users" in previous:
        out["users"] = _fold_users(state, previous, stable, canary)
    return out


# -- users as the unit (console/rollout/units.py) ----------------------------------------------
# Each ratio metric: (state key, per-unit numerator, per-unit denominator). Bounds come from
# earlier windows (as for the request-level tests).
USER_METRICS = ("errors", "log_latency", "tail", "wrong", "drift")


def _fold_users(state: CanaryState, previous: dict[str, Any], stable: HealthWindow, canary: HealthWindow) -> dict[str, Any]:
    """Fold one window's per-user requests into the user-level ratio sums (stratum = the step)
    and the user sample-ratio check (pure: returns a new dict)."""
    plan = state.plan
    entry = dict(previous.get("users") or {})
    stratum = str(state.step)
    tail_bound = (previous.get("latency_tail") or {}).get("bound_ms")
    cut = (previous.get("drift") or {}).get("cut")
    for arm, window in (("c", canary), ("s", stable)):
        cells: dict[str, dict[int, list[float]]] = {name: {} for name in USER_METRICS}

        def add(name: str, bucket: int, y: float, n: float) -> None:
            if n > 0:
                old = cells[name].setdefault(bucket, [0.0, 0.0])
                old[0] += y
                old[1] += n

        bound = None if tail_bound is None else tail_bound * (plan.latency_margin_ratio if arm == "c" else 1.0)
        for key, unit in window.units.items():
            bucket = units.unit_bucket(key)
            latencies = [x for x in unit.get("latencies_ms") or [] if math.isfinite(x)]
            add("errors", bucket, int(unit.get("errors", 0)), int(unit.get("requests", 0)))
            add("log_latency", bucket, sum(math.log1p(max(0.0, x)) for x in latencies), len(latencies))
            if bound is not None:
                add("tail", bucket, sum(1 for x in latencies if x > bound), len(latencies))
            add("wrong", bucket, int(unit.get("wrong", 0)), int(unit.get("labelled", 0)))
            predictions = [x for x in unit.get("predictions") or [] if math.isfinite(x)]
            if cut is not None:
                add("drift", bucket, sum(1 for x in predictions if x > cut), len(predictions))
        for name in USER_METRICS:
            if cells[name]:
                entry[name] = units.add_ratio(entry.get(name), stratum, arm, {b: tuple(v) for b, v in cells[name].items()})
    weight = state.weight
    settled = canary.start >= state.step_started_at + plan.interval_s - 1e-9 and 0 < weight < 100
    srm, fresh = units.new_users_of(entry.get("srm"), canary.units.keys(), stable.units.keys(), settled)
    if settled and sum(fresh):
        srm = units.update_srm(srm, fresh, [weight / 100, 1 - weight / 100])
    entry["srm"] = srm
    return entry


def _user_results(plan: CanaryPlan, cumulative: dict[str, Any], share: dict[str, float],
                  explain: bool) -> dict[str, sequential.SequentialResult]:
    """The user-level tests (delta-method ratio differences in the same confidence sequence),
    by the metric names of the request-level ones they replace."""
    users = cumulative.get("users") or {}
    out: dict[str, sequential.SequentialResult] = {}
    for metric, key, margin, alpha, taus in (
            ("error_rate", "errors", plan.error_rate_margin, share["error_rate"], sequential.ERROR_TAUS),
            ("log_latency", "log_latency", math.log(plan.latency_margin_ratio), share["latency"], sequential.LATENCY_TAUS),
            ("latency_over_p99", "tail", 0.0, share["latency_tail"], sequential.ERROR_TAUS),
            ("online_error", "wrong", 0.0, share["online_accuracy"], sequential.ERROR_TAUS)):
        out[metric] = _user_test(users.get(key), metric, margin, alpha, taus, explain)
    drift_margin = getattr(plan, "max_prediction_shift", 0.1)
    up = _user_test(users.get("drift"), "prediction_over_median", drift_margin, share["prediction_drift"] / 2,
                    sequential.ERROR_TAUS, explain)
    down = _user_test(users.get("drift"), "prediction_over_median", drift_margin, share["prediction_drift"] / 2,
                      sequential.ERROR_TAUS, explain, sign=-1.0)
    drift = up if up.decision == sequential.REJECT or down.decision != sequential.REJECT else down
    if up.decision != down.decision and sequential.REJECT not in (up.decision, down.decision):
        drift.decision = sequential.CONTINUE
        drift.detail = drift.detail.rsplit(" -> ", 1)[0] + " -> " + sequential.CONTINUE
    drift.alpha = share["prediction_drift"]
    out["prediction_over_median"] = drift
    srm = users.get("srm") or {}
    out["sample_ratio"] = _user_ratio_result(srm, share["sample_ratio"])
    return out


USER_MIN_REQUESTS = 30


def _user_test(sums: dict[str, Any] | None, metric: str, margin: float, alpha: float, taus, explain: bool,
               sign: float = 1.0) -> sequential.SequentialResult:
    found = units.ratio_difference(sums)
    if found is None or min(found["canary_n"], found["stable_n"]) < USER_MIN_REQUESTS:
        nc, ns = (int(found["canary_n"]), int(found["stable_n"])) if found else (0, 0)
        result = sequential._no_data(metric, margin, alpha, nc, ns, USER_MIN_REQUESTS)
        result.detail += " (users as the unit: needs at least two user buckets on each side)"
        return result
    result = sequential._judge(metric, sign * found["estimate"], found["variance"], margin, alpha, taus,
                               int(found["canary_n"]), int(found["stable_n"]), "", explain)
    if sign < 0:
        result.detail = result.detail.replace("canary - stable", "stable - canary")
    result.detail += f" [users as the unit: {found['units']} user buckets, delta method]"
    return result


def _user_ratio_result(srm: dict[str, Any], alpha: float) -> sequential.SequentialResult:
    if srm.get("off"):
        return sequential.SequentialResult("sample_ratio", None, None, None, 0.0, alpha, sequential.CONTINUE, 1.0, 0, 0,
                                           None, f"sample_ratio: off: {srm['off']}")
    e_value = units.srm_e_value(srm)
    canary_n, stable_n = (srm.get("total") or [0, 0])[:2]
    total = canary_n + stable_n
    decision = sequential.REJECT if e_value >= 1.0 / alpha else sequential.CONTINUE
    detail = (f"sample_ratio (users): {canary_n} of {total} new users went to the canary ({canary_n / total:.2%}) where "
              f"the split promised {srm.get('expected', 0.0) / total:.2%}, e = {e_value:.3g} (halts at {1.0 / alpha:.3g})"
              if total else "sample_ratio (users): no new users yet") + f" -> {decision}"
    return sequential.SequentialResult("sample_ratio", None, None, None, 0.0, alpha, decision,
                                       min(1.0, 1.0 / e_value) if e_value > 0 else 1.0, canary_n, stable_n, None,
                                       detail, e_value)


def _add_counts(entry: dict[str, Any], canary_events: int, canary_n: int, stable_events: int, stable_n: int,
                keep_evidence: bool = True) -> dict[str, Any]:
    out = dict(entry)
    counts = list(out.get("counts") or [0, 0, 0, 0])
    out["counts"] = [counts[0] + canary_events, counts[1] + canary_n, counts[2] + stable_events, counts[3] + stable_n]
    if keep_evidence:
        out["evidence"] = sequential.update_error_evidence(out.get("evidence"), canary_events, canary_n,
                                                           stable_events, stable_n)
    if canary_n > 0 and stable_n > 0:
        share = canary_n / (canary_n + stable_n)
        # information a window's events carry about the odds ratio grows with share * (1 - share)
        out["info"] = out.get("info", 0.0) + (canary_events + stable_events) * share * (1 - share)
        out["events"] = out.get("events", 0.0) + canary_events + stable_events
    return out


def _fold_ratio(state: CanaryState, entry: dict[str, Any], stable: HealthWindow, canary: HealthWindow) -> dict[str, Any]:
    """Sample-ratio mismatch evidence. The first window after a step is skipped: routers take a
    moment to apply a new split, and a window straddling it has no single promised share."""
    out = dict(entry)
    off = canary.sample_ratio_off or stable.sample_ratio_off
    if not off and "user" in (canary.unit_kind, stable.unit_kind) and not (canary.units or stable.units):
        off = ("routing is sticky by user and the windows carry no per-user counts: request counts are no test "
               "of the split (heavy users move them)")
    if off:
        out["off"] = off
        return out
    weight = state.weight
    settled = canary.start >= state.step_started_at + state.plan.interval_s - 1e-9
    if 0 < weight < 100 and settled and canary.requests + stable.requests > 0:
        out["evidence"] = sequential.update_ratio_evidence(out.get("evidence"), canary.requests, stable.requests,
                                                           weight / 100)
        out["canary"] = out.get("canary", 0) + canary.requests
        out["stable"] = out.get("stable", 0) + stable.requests
        out["expected"] = out.get("expected", 0.0) + (canary.requests + stable.requests) * weight / 100
    return out


# -- the power-aware plan ---------------------------------------------------------------------


def _plan_value(plan: CanaryPlan, name: str, default: float) -> float:
    value = getattr(plan, name, None)
    return float(default if value is None else value)


def evidence_gap(state: CanaryState) -> tuple[str, int | None] | None:
    """(test, about how many more canary requests) before "no rollback" means "no regression of
    the plan's minimum detectable size", at the current split; None when the sample is there;
    (test, None) when no sample at this split can show it (an infinite plan: never raised).

    The needed sample is the exact count test's (sequential.events_needed) at the regression
    max(ratio, base + delta): with a base rate near 0 a ratio means nothing, an absolute rise does."""
    plan = state.plan
    share = state.weight / 100
    if not 0 < share < 1:
        return None
    cumulative = state.sequential.get("cumulative", {})
    worst: tuple[str, int] | None = None
    power = _plan_value(plan, "promotion_power", PROMOTION_POWER)
    for test, key, ratio_name, delta_name, alpha_key in (
            ("error_rate", "errors_info", "error_ratio", "error_delta", "error_rate"),
            ("latency_over_p99", "latency_tail", "tail_ratio", "tail_delta", "latency_tail")):
        entry = cumulative.get(key) or {}
        counts = entry.get("counts") or [0, 0, 0, 0]
        base = (counts[0] + counts[2] + 1) / (counts[1] + counts[3] + 2)  # smoothed: 0 events is not rate 0
        if test == "latency_over_p99":
            base = max(base, 1 - LATENCY_BOUNDS[0][1])  # stable's tail above its own p99 is 1 % by construction
        if getattr(plan, f"min_detectable_{ratio_name}", MIN_DETECTABLE[ratio_name]) is None:
            continue  # this wait is turned off
        ratio = _plan_value(plan, f"min_detectable_{ratio_name}", MIN_DETECTABLE[ratio_name])
        delta = _plan_value(plan, f"min_detectable_{delta_name}", MIN_DETECTABLE[delta_name])
        regressed = min(1.0, max(base * ratio, base + delta))  # the canary's rate under the regression
        target = min(regressed / base, max(sequential.ODDS_RATIOS))  # the grid's top detects more no slower
        if not (target > 1 and math.isfinite(target)):  # base rate at 1 (a shared outage): no room to regress
            return (test, None)
        needed = sequential.events_needed(target, share, plan.alpha * ALPHA_SHARES[alpha_key], power)
        missing_info = needed * share * (1 - share) - float(entry.get("info", 0.0) or 0.0)
        if not missing_info > 0:  # NaN counts as "there": never a reason to raise
            continue
        # The wait ends when the events seen reach the plan's, and they arrive at the rate seen so
        # far (assuming the regression's higher rate promised a third fewer requests than it took).
        rate_now = base
        more = missing_info / (share * (1 - share)) / rate_now * share if rate_now > 0 else math.inf
        if not math.isfinite(more) or more > 1e15:
            return (test, None)  # this step cannot see it: the plan says so instead of raising
        if worst is None or (worst[1] is not None and math.ceil(more) > worst[1]):
            worst = (test, int(math.ceil(more)))
    return worst


def evidence_timeout(plan: CanaryPlan) -> float:
    value = getattr(plan, "evidence_timeout_s", None)
    return float(value) if value is not None else EVIDENCE_TIMEOUT_HOLDS * max(plan.hold_s, plan.interval_s)


def window_problems(w: HealthWindow) -> list[str]:
    """What makes a window unusable as evidence: NaN/inf values, impossible counts."""
    problems = []
    numbers = {"requests": w.requests, "errors": w.errors, "labelled": w.labelled, "correct": w.correct,
               "p50 latency": w.latency_p50_ms, "p99 latency": w.latency_p99_ms}
    for name, value in numbers.items():
        if value is not None and not math.isfinite(value):
            problems.append(f"{name} is {value}")
    if not problems and (w.requests < 0 or w.errors < 0 or w.errors > w.requests):
        problems.append(f"{w.errors} errors in {w.requests} requests")
    for name, values in (("prediction", w.predictions), ("latency", w.latencies_ms)):
        bad = sum(1 for v in values if not math.isfinite(v))
        if bad:
            problems.append(f"{bad} NaN/inf {name}(s) of {len(values)}")
    return problems


def _silence(state: CanaryState, stable: HealthWindow, canary: HealthWindow) -> list[str]:
    """Variants that carry traffic at this weight but got no request in the window."""
    silent = []
    if 0 < state.weight < 100 and stable.requests == 0:
        silent.append(f"stable {stable.version}")
    if state.weight > 0 and canary.requests == 0:
        silent.append(f"canary {canary.version}")
    return silent


def _verdict(state: CanaryState, checks: list[Check], results: list[sequential.SequentialResult],
             now: float, summaries: tuple[dict[str, Any], dict[str, Any]], cumulative: dict[str, Any],
             has_data: bool) -> Analysis:
    plan = state.plan
    judged = [c for c in checks if c.passed is not None]
    if not judged:
        window_verdict = "no_data"
    else:
        window_verdict = "fail" if any(c.passed is False and c.counts for c in judged) else "pass"
    if any(r.decision == sequential.REJECT for r in results):
        seq_verdict = sequential.REJECT
    elif results and all(r.decision == sequential.SAFE for r in results if r.metric in DECIDING):
        seq_verdict = sequential.SAFE
    else:
        seq_verdict = sequential.CONTINUE
    failures = state.failures + 1 if window_verdict == "fail" else (0 if window_verdict == "pass" else state.failures)
    reasons = []
    if failures >= plan.consecutive_failures:
        failed = "; ".join(c.detail for c in judged if c.passed is False and c.counts)
        reasons.append(f"{failures} consecutive failing windows (limit {plan.consecutive_failures}): {failed}")
    if seq_verdict == sequential.REJECT:
        reasons += [r.detail for r in results if r.decision == sequential.REJECT]
    return _mark_halt(Analysis(now, state.weight, summaries[0], summaries[1], checks, window_verdict, results,
                               seq_verdict, bool(reasons), " | ".join(reasons), cumulative, has_data))


def analyze(state: CanaryState, stable: HealthWindow, canary: HealthWindow, now: float, *, explain: bool = True) -> Analysis:
    """Judge one interval: the window checks, then the sequential test on everything so far.

    Fails closed: a window with NaN/inf values or a silent variant is a failed check, and it
    is kept out of the sequential totals (a NaN there would poison every later verdict)."""
    plan = state.plan
    previous = state.sequential.get("cumulative", {})
    problems = [f"canary {canary.version}: {p}" for p in window_problems(canary)] + \
               [f"stable {stable.version}: {p}" for p in window_problems(stable)]
    silent = _silence(state, stable, canary)
    if silent and not problems and plan.judge == "sequential":
        # No evidence is not bad evidence: the window is folded in as it is (the counts it has
        # still feed the sample-ratio check) and the canary holds; only the budget rolls back.
        note = Check("no_data", None, 0, plan.min_requests, None, f"no requests reached {' and '.join(silent)} in the "
                     f"window at {state.weight}%: no evidence this window, holding", False)
        analysis = _analyze_data(state, previous, stable, canary, now, explain)
        analysis.checks = [note] + [c for c in analysis.checks if c.name != "requests"]
        analysis.has_data = stable.requests + canary.requests > 0  # thin is not silent: traffic flows
        return analysis
    if problems or silent:
        checks = []
        if problems:
            checks.append(Check("finite", False, None, None, None, "non-finite or impossible values in the window: "
                                + "; ".join(problems) + " (counted as a failed check)"))
        if silent:
            checks.append(Check("no_data", False, 0, plan.min_requests, None, f"no requests reached {' and '.join(silent)} "
                                f"in the window at {state.weight}% (counted as a failed check)"))
        results = sequential_results(plan, previous, explain) if plan.judge != "threshold" and previous else []
        summaries = (_safe_summary(canary), _safe_summary(stable))
        return _verdict(state, checks, results, now, summaries, previous, False)
    return _analyze_data(state, previous, stable, canary, now, explain)


def _analyze_data(state: CanaryState, previous: dict[str, Any], stable: HealthWindow, canary: HealthWindow,
                  now: float, explain: bool) -> Analysis:
    plan = state.plan
    checks = threshold_checks(plan, stable, canary)
    cumulative = accumulate(accumulate(previous, "stable", stable), "canary", canary)
    # The exact error-rate test is a product over windows: fold in this window's counts alone.
    cumulative["error_evidence"] = sequential.update_error_evidence(
        previous.get("error_evidence"), canary.errors, canary.requests, stable.errors, stable.requests)
    cumulative = fold_window(state, previous, cumulative, stable, canary)
    results = sequential_results(plan, cumulative, explain) if plan.judge != "threshold" else []
    return _verdict(state, checks, results, now, (_summary(canary), _summary(stable)), cumulative, True)


def failed_window(state: CanaryState, now: float, name: str, detail: str) -> Analysis:
    """A window that could not be measured at all (the metrics backend failed): a failed check."""
    previous = state.sequential.get("cumulative", {})
    empty = {"version": None, "requests": None, "errors": None, "error_rate": None, "p50_ms": None, "p99_ms": None,
             "labelled": None, "accuracy": None, "mean_prediction": None}
    check = Check(name, False, None, None, None, f"{detail} (counted as a failed check)")
    results = sequential_results(state.plan, previous, False) if state.plan.judge != "threshold" and previous else []
    return _verdict(state, [check], results, now, ({**empty, "version": state.candidate},
                                                   {**empty, "version": state.stable}), previous, False)


def no_data_timeout(plan: CanaryPlan) -> float:
    timeout = getattr(plan, "no_data_timeout_s", None)
    return float(timeout) if timeout else NO_DATA_INTERVALS * plan.interval_s


def silent_for(state: CanaryState, now: float) -> float:
    """Seconds since the last window that carried data from both variants (or since the start)."""
    return now - max(state.sequential.get("last_data_at", 0.0), state.started_at)


DECIDING = ("error_rate", "log_latency", "latency_over_p50", "latency_over_p99")  # what "safe" is judged on


def _mark_halt(analysis: Analysis) -> Analysis:
    """A sample-ratio mismatch is no verdict on the candidate: the split itself is broken, so every
    comparison is suspect. The canary halts (aborts to stable) and says so."""
    if any(r.metric == "sample_ratio" and r.decision == sequential.REJECT for r in analysis.sequential_results):
        analysis.halt = True
        analysis.reason = "halted: sample-ratio mismatch, the router is not splitting as planned: " + analysis.reason
    return analysis


def record_analysis(state: CanaryState, analysis: Analysis, now_iso: str) -> CanaryState:
    """The state after an analysis: failure count, cumulative totals, bounded history."""
    s = dataclasses.replace(state)
    if analysis.window_verdict == "fail":
        s.failures = state.failures + 1
    elif analysis.window_verdict == "pass":
        s.failures = 0
    seq = dict(state.sequential)
    seq["cumulative"] = analysis.cumulative
    seq["last_end"] = analysis.at
    if analysis.has_data:
        seq["last_data_at"] = analysis.at
    seq["results"] = [r.to_dict() for r in analysis.sequential_results]
    seq["verdict"] = analysis.sequential_verdict
    gap = evidence_gap(dataclasses.replace(s, sequential={**seq}))
    # what the screen shows while the last step waits: "needs ~N more requests (test)". It never
    # grows while the step lasts (issue 20: it rose by 2,028 while 3,200 requests arrived); the
    # fresh forecast still decides when the wait is over.
    previous = state.sequential.get("needs_more") or {}
    if gap and gap[1] is not None and previous.get("requests") is not None and previous.get("test") == gap[0] \
            and previous.get("weight") == s.weight:
        gap = (gap[0], max(1, min(gap[1], int(previous["requests"]))))
    seq["needs_more"] = {"test": gap[0], "requests": gap[1], "weight": s.weight} if gap else None
    p_values = [r.p_value for r in analysis.sequential_results if math.isfinite(r.p_value)]
    seq["min_p_value"] = min([seq.get("min_p_value", 1.0)] + p_values)  # the always-valid p is a running min
    s.sequential = seq
    s.analyses = (state.analyses + [analysis.to_dict()])[-MAX_ANALYSES:]
    s.updated_at = now_iso
    return s


# ---------------------------------------------------------------------------------------------
# The state machine


@dataclass
class Decision:
    action: str  # hold | step | promote | rollback | pause | resume | abort
    weight: int  # the canary weight after the action
    reason: str = ""
    step: int = -1
    inconclusive: bool = False  # the plan's inconclusive policy acted: not a verdict on the candidate


def decide(state: CanaryState, now: float, analysis: Analysis | None = None) -> Decision:
    """What the controller does next, given the state and (maybe) a fresh analysis."""
    if state.status in TERMINAL:
        return Decision(HOLD, state.weight, f"canary already {state.status}", state.step)
    if analysis is not None and analysis.rollback:
        return Decision(ABORT if analysis.halt else ROLLBACK, 0, analysis.reason, state.step)
    silent = state.step >= 0 and silent_for(state, now) > no_data_timeout(state.plan)
    why_silent = (f"no data from both variants for {silent_for(state, now):.0f} s (no-data timeout "
                  f"{no_data_timeout(state.plan):g} s)") if silent else ""
    if silent and _policy(state.plan) == "rollback":
        return inconclusive(state, why_silent)
    if state.status == "paused":
        return Decision(HOLD, state.weight, "paused", state.step)
    if silent:
        return inconclusive(state, why_silent)
    if state.step < 0:
        return _step_to(state, 0, "first step")
    held = now - state.step_started_at
    if held < state.plan.hold_s:
        return Decision(HOLD, state.weight, f"holding {state.weight}% ({held:.0f}/{state.plan.hold_s:.0f} s)", state.step)
    # The threshold rule needs a window with min_requests per variant; the sequential tests judge
    # any data (at 3 req/s no 5 % window ever reached min_requests: the canary never moved).
    sequential_only = state.plan.judge == "sequential"
    judged = [a for a in state.analyses if a.get("weight") == state.weight and a.get("at", 0) >= state.step_started_at
              and ((a.get("has_data", True) and (a.get("canary") or {}).get("requests") != 0) if sequential_only
                   else a.get("window_verdict") != "no_data")]
    if not judged:
        return Decision(HOLD, state.weight, f"holding {state.weight}%: no analysis with data yet at this step", state.step)
    if state.failures:
        return Decision(HOLD, state.weight, f"holding {state.weight}%: {state.failures} failing window(s)", state.step)
    promoting = state.step + 1 >= len(state.plan.steps) - 1
    gap = evidence_gap(state) if promoting and state.plan.judge != "threshold" else None
    if gap:  # the power-aware plan: no promotion on a sample too small to have seen the regression
        test, more = gap
        shown = state.sequential.get("needs_more") or {}
        if more is not None and shown.get("test") == test and shown.get("requests") is not None:
            more = min(more, int(shown["requests"]))  # the monotone forecast the screen shows
        needs = (f"needs ~{more} more canary requests ({test}) to rule out the minimum detectable regression"
                 if more is not None else f"{test} cannot show the minimum detectable regression at this split "
                 "and base rate")
        if held > evidence_timeout(state.plan):
            return inconclusive(state, f"not enough evidence to promote after {held:.0f} s at {state.weight}% "
                                f"(evidence timeout {evidence_timeout(state.plan):g} s): {needs}")
        return Decision(HOLD, state.weight, f"holding {state.weight}%: {needs}", state.step)
    return _step_to(state, state.step + 1, f"{state.weight}% held {held:.0f} s, healthy")


def _policy(plan: CanaryPlan) -> str:
    return getattr(plan, "inconclusive", "hold") or "hold"


def inconclusive(state: CanaryState, why: str) -> Decision:
    """The end of a canary that could not gather evidence: no test rejected, none said safe. The
    plan's policy picks the action; the reason says it was inconclusive and which policy acted."""
    if _policy(state.plan) == "rollback":
        return Decision(ROLLBACK, 0, f"inconclusive, rolled back by policy (inconclusive = rollback; no test "
                        f"failed): {why}", state.step, inconclusive=True)
    return Decision(PAUSE, state.weight, f"inconclusive, held at {state.weight}% for a person (inconclusive = hold; "
                    f"no test failed): {why}", state.step, inconclusive=True)


def _step_to(state: CanaryState, step: int, reason: str) -> Decision:
    steps = state.plan.steps
    if step >= len(steps) - 1 or steps[min(step, len(steps) - 1)] >= 100:
        return Decision(PROMOTE, 100, reason, len(steps) - 1)
    return Decision(STEP, steps[step], reason, step)


def command(state: CanaryState, name: str, now: float) -> Decision:
    """A person's command (CLI or screen key) as a decision; refuses what makes no sense."""
    if state.status in TERMINAL:
        raise BadInputError(f"{state.model}: canary {state.candidate} is already {state.status}")
    if name == "pause":
        if state.status == "paused":
            return Decision(HOLD, state.weight, "already paused", state.step)
        return Decision(PAUSE, state.weight, "paused by operator", state.step)
    if name == "resume":
        if state.status != "paused":
            return Decision(HOLD, state.weight, "not paused", state.step)
        return Decision(RESUME, state.weight, "resumed by operator", state.step)
    if name == "next":
        return _step_to(state, state.step + 1, "next step by operator")
    if name == "promote":
        return Decision(PROMOTE, 100, "promoted by operator", len(state.plan.steps) - 1)
    if name in ("rollback", "abort"):
        return Decision(ROLLBACK if name == "rollback" else ABORT, 0, f"{name} by operator", state.step)
    raise BadInputError(f"unknown canary command {name!r}")


def apply(state: CanaryState, decision: Decision, now: float, now_iso: str, actor: str = "controller") -> CanaryState:
    """The state after a decision was carried out (the controller calls this after the side effect)."""
    s = dataclasses.replace(state)
    s.pending = None
    s.updated_at = now_iso
    a = decision.action
    if a == HOLD:
        return s
    if a == STEP:
        s.step, s.weight, s.step_started_at, s.failures = decision.step, decision.weight, now, 0
        text = f"step {decision.step + 1}/{len(s.plan.steps)}: canary {s.candidate} at {decision.weight}% ({decision.reason})"
    elif a == PROMOTE:
        s.step, s.weight, s.status, s.finished_at = decision.step, 100, "promoted", now_iso
        s.reason = decision.reason
        text = f"promoted {s.candidate} to 100% and production ({decision.reason})"
    elif a in (ROLLBACK, ABORT):
        s.weight, s.status, s.finished_at = 0, "rolled_back" if a == ROLLBACK else "aborted", now_iso
        s.reason = decision.reason
        text = f"{'rolled back' if a == ROLLBACK else 'aborted'}: stable {s.stable} at 100% ({decision.reason})"
    elif a == PAUSE:
        s.status = "paused"
        s.reason = decision.reason if decision.inconclusive else s.reason
        text = f"paused at {s.weight}%" + (f" ({decision.reason})" if decision.inconclusive else "")
    elif a == RESUME:
        s.status = "progressing"
        s.step_started_at = now  # the hold restarts: the pause was not a healthy hold
        text = f"resumed at {s.weight}%"
    else:
        raise ValueError(a)
    if decision.inconclusive:
        s.sequential = {**s.sequential, "outcome": "inconclusive"}
        return log_event(s, now_iso, "inconclusive", text, actor)
    return log_event(s, now_iso, a, text, actor)


def changes_traffic(decision: Decision) -> bool:
    return decision.action in (STEP, PROMOTE, ROLLBACK, ABORT)


# ---------------------------------------------------------------------------------------------
# Planning before a canary starts (`mrc canary plan`): what each step can see at a given traffic.


def _smallest_detectable_ratio(events: float, share: float, alpha: float, power: float) -> float | None:
    """The smallest odds ratio on the test's grid found with `power` from `events` events at `share`."""
    for ratio in sequential.ODDS_RATIOS:
        if sequential.events_needed(ratio, share, alpha, power) <= events:
            return ratio
    return None


def forecast(plan: CanaryPlan, rate: float, base_error: float = 0.01) -> dict[str, Any]:
    """Per step at `rate` requests a second (both variants): its hold, the smallest error and
    tail regressions it could catch with the plan's power (events of the steps so far), and for
    the last step how long it needs for the plan's minimum detectable regressions. Pure; never
    raises on arithmetic (an effect no sample can show is reported as such)."""
    validate_plan(plan)
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise BadInputError(f"--rate {rate!r}: requests per second must be a finite number > 0")
    if not 0 < base_error < 1:
        raise BadInputError(f"--base-error-rate {base_error!r}: must be between 0 and 1")
    power = _plan_value(plan, "promotion_power", PROMOTION_POWER)
    tail_base = 1 - LATENCY_BOUNDS[0][1]
    steps, cannot = [], []
    for index, weight in enumerate(plan.steps[:-1]):
        share = weight / 100
        row: dict[str, Any] = {"step": index + 1, "weight": weight, "canary_rps": rate * share, "hold_s": plan.hold_s}
        for test, base, key, alpha_key in (("error_rate", base_error, "error", "error_rate"),
                                           ("latency_over_p99", tail_base, "tail", "latency_tail")):
            alpha = plan.alpha * ALPHA_SHARES[alpha_key]
            events = rate * max(plan.hold_s, plan.interval_s) * base
            row[f"smallest_{key}_ratio"] = _smallest_detectable_ratio(events, share, alpha, power)
        last = index == len(plan.steps) - 2
        if last and plan.judge != "threshold":
            needs = []
            for test, base, ratio_name, delta_name, alpha_key in (
                    ("error_rate", base_error, "error_ratio", "error_delta", "error_rate"),
                    ("latency_over_p99", tail_base, "tail_ratio", "tail_delta", "latency_tail")):
                if getattr(plan, f"min_detectable_{ratio_name}", MIN_DETECTABLE[ratio_name]) is None:
                    continue
                ratio = _plan_value(plan, f"min_detectable_{ratio_name}", MIN_DETECTABLE[ratio_name])
                delta = _plan_value(plan, f"min_detectable_{delta_name}", MIN_DETECTABLE[delta_name])
                regressed = min(1.0, max(base * ratio, base + delta))
                target = min(regressed / base, max(sequential.ODDS_RATIOS))
                events = sequential.events_needed(target, share, plan.alpha * ALPHA_SHARES[alpha_key], power)
                per_s = rate * ((1 - share) * base + share * regressed)
                seconds = events / per_s if math.isfinite(events) and per_s > 0 else None
                needs.append({"test": test, "detects_ratio": round(target, 3), "seconds": seconds,
                              "canary_requests": None if seconds is None else int(math.ceil(seconds * rate * share))})
            row["needs"] = needs
            longest = max([n["seconds"] for n in needs if n["seconds"] is not None] or [0.0])
            row["duration_s"] = max(plan.hold_s, longest) if all(n["seconds"] is not None for n in needs) else None
            timeout = evidence_timeout(plan)
            row["inconclusive_after_s"] = timeout
            for n in needs:
                if n["seconds"] is None or n["seconds"] > timeout:
                    cannot.append(f"{n['test']}: a regression of x{n['detects_ratio']:g} needs "
                                  + (f"{n['seconds']:.0f} s at {weight}%, past the evidence timeout ({timeout:g} s): the "
                                     f"canary would end inconclusive ({_policy(plan)})" if n["seconds"] is not None
                                     else "more than any sample at this split"))
        else:
            row["duration_s"] = plan.hold_s
        for key, test in (("error", "error_rate"), ("tail", "latency_over_p99")):
            if row[f"smallest_{key}_ratio"] is None:
                cannot.append(f"step {index + 1} ({weight}%, {plan.hold_s:g} s): no {test} regression below "
                              f"x{max(sequential.ODDS_RATIOS):g} can be caught with {power:.0%} power in the hold")
        steps.append(row)
    return {"rate": rate, "base_error_rate": base_error, "alpha": plan.alpha, "power": power, "steps": steps,
            "cannot_see": cannot,
            "total_s": None if any(r["duration_s"] is None for r in steps) else sum(r["duration_s"] for r in steps)}


def forecast_text(model: str, version: str, result: dict[str, Any]) -> str:
    lines = [f"canary plan for {model} {version} at {result['rate']:g} req/s (base error rate "
             f"{result['base_error_rate']:.2%}, alpha {result['alpha']:g}, power {result['power']:.0%}):"]
    for row in result["steps"]:
        err, tail = row["smallest_error_ratio"], row["smallest_tail_ratio"]
        text = (f"  step {row['step']}: {row['weight']}% ({row['canary_rps']:.3g} canary req/s), "
                f"{'~' + format(row['duration_s'], '.0f') + ' s' if row['duration_s'] is not None else 'no end in sight'}"
                f"; in its {row['hold_s']:g} s hold it catches errors x{err:.3g} and slow tails x{tail:.3g}"
                if err and tail else
                f"  step {row['step']}: {row['weight']}% ({row['canary_rps']:.3g} canary req/s), "
                f"{'~' + format(row['duration_s'], '.0f') + ' s' if row['duration_s'] is not None else 'no end in sight'}"
                f"; its {row['hold_s']:g} s hold is too short to catch "
                + " or ".join(t for t, v in (("an error regression", err), ("a slow tail", tail)) if not v))
        lines.append(text)
        for need in row.get("needs", []):
            lines.append(f"    waits for {need['test']} x{need['detects_ratio']:g}: "
                         + (f"~{need['seconds']:.0f} s, ~{need['canary_requests']} canary requests"
                            if need["seconds"] is not None else "never at this split"))
    if result["total_s"] is not None:
        lines.append(f"  in all ~{result['total_s']:.0f} s")
    for line in result["cannot_see"]:
        lines.append(f"  cannot see: {line}")
    return "\n".join(lines)
