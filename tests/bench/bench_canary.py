"""Benchmark: the sequential judge against the seed's 3-consecutive threshold rule, on simulated
request streams. Pure (no servers): the real console/rollout/canary.py analysis and state machine run on
generated health windows with errors, latencies, predictions and labels (a fifth of the requests
labelled, accuracy 0.8).

    python tests/bench/bench_canary.py [--runs 30] [--aa-runs 100] [--rate 200]

For each regression — errors x1.25 / x1.5 / x2 / x5 (base 1 %), every request 1.2x slower, 3 % of
requests 10x slower — and each judge: how often it rolled back before promotion, the median
seconds and canary requests to the rollback, and the bad requests served (failed, or slow, canary
requests) before traffic went back to stable; then false rollbacks over A/A canaries with labels.
The plan is the default one (5 -> 25 -> 50 -> 100 %, 60 s holds; the sequential judge's last step
also waits for the sample to detect an error odds ratio of 2). The sequential judge looks every
5 s, which its anytime validity allows; the threshold rule judges 10 s windows and the seed's 60 s.

Then the error test alone against the literature anchor, on the same vectorised streams (2,000 per
regression, seed fixed): mrc's exact e-process beside Lindon et al.'s mixture test (KDD 2022,
tests/bench/lindon_baseline.py), both at the judge's error share of alpha, through the 180 s plan,
and A/A under continuous monitoring (the plan, and an hour at 50 %).

Then per-user clustering (sticky routing by user): the false-alarm rate of the exact error test
when a few users fail often, and of the sample-ratio check when a few users send most requests.

Last (issue 20), the same table on sticky traffic through the whole default judge, users as the
unit (tests/support/canary_streams.py): the load generator's shape (1,000 users) and heavy-tailed
users with per-user effects; A/A false halts in all and per test; 3 req/s; and the Prometheus path
(counts and histogram buckets only, no users: request-level tests, sample-ratio check off).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backends.base import HealthWindow  # noqa: E402
from console.rollout import canary  # noqa: E402
from console.rollout import sequential
from console.domain import CanaryPlan  # noqa: E402

import lindon_baseline  # noqa: E402  (tests/bench, beside this file)

BASE_ERROR = 0.01
LATENCY_MEDIAN_MS, LATENCY_SIGMA = 20.0, 0.35

JUDGES = {
    "sequential (5 s looks)": CanaryPlan(judge="sequential", interval_s=5.0, min_requests=10),
    "threshold 3x (10 s, +1 pt)": CanaryPlan(judge="threshold", interval_s=10.0, max_error_rate_delta=0.01),
    "threshold 3x (60 s, seed)": CanaryPlan(judge="threshold", interval_s=60.0, max_error_rate_delta=0.01),
}


@dataclasses.dataclass
class Scenario:
    error: float = BASE_ERROR
    slow: float = 1.0
    tail_share: float = 0.0
    tail_factor: float = 1.0

    @property
    def latency(self) -> bool:
        return self.slow != 1.0 or self.tail_share > 0


SCENARIOS = {
    "errors x1.25": Scenario(error=0.0125),
    "errors x1.5": Scenario(error=0.015),
    "errors x2": Scenario(error=0.02),
    "errors x5": Scenario(error=0.05),
    "latency x1.2 (all)": Scenario(slow=1.2),
    "3 % of req x10": Scenario(tail_share=0.03, tail_factor=10.0),
    "A/A": Scenario(),
}


def window(rng, version: str, n: int, sc: Scenario, canary_side: bool, start: float, end: float) -> tuple[HealthWindow, int]:
    """A window, and how many of its requests were bad (failed, or slowed by the regression)."""
    error = sc.error if canary_side else BASE_ERROR
    errors = int(rng.binomial(n, error)) if n else 0
    lat = rng.lognormal(np.log(LATENCY_MEDIAN_MS), LATENCY_SIGMA, n)
    slowed = 0
    if canary_side and sc.latency:
        lat = lat * sc.slow
        hit = rng.random(n) < sc.tail_share
        lat = np.where(hit, lat * sc.tail_factor, lat)
        slowed = n if sc.slow != 1.0 else int(hit.sum())
    labelled = int(rng.binomial(n, 0.2))
    w = HealthWindow("m", version, start, end, requests=n, errors=errors,
                     latency_p50_ms=float(np.quantile(lat, 0.5)) if n else None,
                     latency_p99_ms=float(np.quantile(lat, 0.99)) if n else None, latencies_ms=lat.tolist(),
                     predictions=rng.beta(2, 5, n).tolist(), labelled=labelled,
                     correct=int(rng.binomial(labelled, 0.8)))
    return w, (slowed if sc.latency else errors)


def simulate(plan: CanaryPlan, sc: Scenario, rate: float, rng) -> dict:
    """One canary from start to its end."""
    now = 0.0
    state = canary.new_state("m", "1", "2", plan, now, "t")
    state = canary.apply(state, canary.decide(state, now), now, "t")
    canary_requests = bad = 0
    while state.active:
        start, now = now, now + plan.interval_s
        n_total = int(rng.poisson(rate * plan.interval_s))
        n_canary = int(rng.binomial(n_total, state.weight / 100))
        stable_w, _ = window(rng, "1", n_total - n_canary, sc, False, start, now)
        canary_w, bad_now = window(rng, "2", n_canary, sc, True, start, now)
        canary_requests += n_canary
        bad += bad_now
        analysis = canary.analyze(state, stable_w, canary_w, now, explain=False)
        state = canary.record_analysis(state, analysis, "t")
        decision = canary.decide(state, now, analysis)
        if decision.action != canary.HOLD:
            state = canary.apply(state, decision, now, "t")
    return {"rolled_back": state.status != "promoted", "seconds": now, "canary_requests": canary_requests,
            "bad": bad}


def summarize(results: list[dict]) -> dict:
    detected = [r for r in results if r["rolled_back"]]
    med = lambda key, rows: statistics.median(r[key] for r in rows) if rows else float("nan")  # noqa: E731
    return {"detected": len(detected) / len(results), "seconds": med("seconds", detected),
            "requests": med("canary_requests", detected), "bad_detected": med("bad", detected),
            "bad_all": statistics.mean(r["bad"] for r in results)}


def clustering(rng, runs: int = 2000, users: int = 2000, looks: int = 60, rate: float = 200.0) -> dict:
    """False alarms of the exact error test and of the sample-ratio check when routing is sticky by
    user: requests per user are heavy-tailed (Pareto), 0.5 % of users fail 30 % of their requests."""
    alpha = 0.05
    out = {}
    activity = rng.pareto(1.2, size=(runs, users)) + 1
    activity /= activity.sum(axis=1, keepdims=True)
    in_canary = rng.random((runs, users)) < 0.5  # a 50 % split, sticky per user
    failing = rng.random((runs, users)) < 0.005
    p_user = np.where(failing, 0.30, 0.01)
    ratios = np.asarray(sequential.ODDS_RATIOS)
    two = np.asarray(sequential.TWO_SIDED_RATIOS)
    log_e = np.zeros((runs, len(ratios)))
    log_r = np.zeros((runs, len(two)))
    alarm_e = np.zeros(runs, bool)
    alarm_r = np.zeros(runs, bool)
    for _ in range(looks):
        n_user = rng.poisson(rate * activity)
        x_user = rng.binomial(n_user, p_user)
        nc, ns = (n_user * in_canary).sum(1), (n_user * ~in_canary).sum(1)
        xc, xs = (x_user * in_canary).sum(1), (x_user * ~in_canary).sum(1)
        k = xc + xs
        share = nc / np.maximum(nc + ns, 1)
        log_e += np.where(((k > 0) & (nc > 0) & (ns > 0))[:, None],
                          xc[:, None] * np.log(ratios) - k[:, None] * np.log1p(share[:, None] * (ratios - 1)), 0)
        log_r += nc[:, None] * np.log(two) - (nc + ns)[:, None] * np.log1p(0.5 * (two - 1))
        for arr, logs, weights in ((alarm_e, log_e, sequential.ODDS_WEIGHTS), (alarm_r, log_r, sequential.TWO_SIDED_WEIGHTS)):
            top = logs.max(1, keepdims=True)
            mix = top[:, 0] + np.log((np.exp(logs - top) * np.asarray(weights)).sum(1))
            arr |= mix >= math.log(1 / alpha)
    out["errors, sticky users (0.5 % fail at 30 %)"] = alarm_e.mean()
    out["sample ratio, sticky heavy-tailed users"] = alarm_r.mean()
    return out


def literature(seed: int, runs: int, rate: float) -> None:
    """mrc's exact error e-process beside Lindon et al.'s mixture test, on the same streams."""
    alpha = JUDGES["sequential (5 s looks)"].alpha * canary.ALPHA_SHARES["error_rate"]
    tests = {"mrc exact e-process (28-point grid)": lambda c: lindon_baseline.mrc_detections(
                 c, alpha, sequential.ODDS_RATIOS, sequential.ODDS_WEIGHTS),
             f"Lindon et al. (Beta({lindon_baseline.PRIOR_A:g},{lindon_baseline.PRIOR_A:g}) mixture)":
                 lambda c: lindon_baseline.lindon_detections(c, alpha)}
    print(f"\nerror test alone vs the literature anchor: {runs:,} streams per row, seed {seed}, alpha {alpha:g} "
          f"(the judge's error share), looks every 5 s, plan 5→25→50 % with 60 s holds (180 s)")
    print(f"{'scenario':<20} {'test':<40} {'caught <180 s':>13} {'median s':>9} {'median req':>11} {'median bad':>11}")
    for name, factor in (("errors x1.25", 1.25), ("errors x1.5", 1.5), ("errors x2", 2.0), ("errors x5", 5.0)):
        counts = lindon_baseline.simulate(np.random.default_rng(seed), runs, BASE_ERROR * factor, BASE_ERROR, rate)
        for test, detect in tests.items():
            s = lindon_baseline.summarize(counts, detect(counts))
            print(f"{name:<20} {test:<40} {s['detected']:>13.1%} {s['seconds']:>9.0f} {s['requests']:>11.0f} {s['bad']:>11.0f}")
    for name, steps, hold in (("A/A, the plan", lindon_baseline.PLAN_STEPS, lindon_baseline.HOLD_S),
                              ("A/A, 1 h at 50 %", (0.5,), 3600.0)):
        counts = lindon_baseline.simulate(np.random.default_rng(seed), runs, BASE_ERROR, BASE_ERROR, rate, steps, hold)
        for test, detect in tests.items():
            print(f"{name:<20} {test:<40} {'false alarms ' + format(float((detect(counts) >= 0).mean()), '.2%'):>25}")


def sticky_table(args) -> None:
    """Issue 20's table: the default sequential judge (5 s looks) on sticky traffic, users as the unit."""
    from collections import Counter

    from tests.support.canary_streams import SHAPES as STREAM_SHAPES, Regression, run_canary

    plan = JUDGES["sequential (5 s looks)"]
    regressions = {"errors x1.5": Regression(error=0.015), "errors x2": Regression(error=0.02),
                   "errors x5": Regression(error=0.05), "latency x1.2 (all)": Regression(slow=1.2),
                   "3 % of req x10": Regression(tail_share=0.03, tail_factor=10.0)}
    print(f"\nsticky traffic through the whole default judge (users as the unit), {args.rate:g} req/s, "
          f"{args.sticky_runs} canaries per cell, {args.sticky_aa_runs} A/A per shape")
    header = (f"{'shape':<34} {'scenario':<20} {'rolled back':>11} {'median s':>9} {'median req':>11} "
              f"{'bad req (median, caught)':>25} {'bad req (mean, all)':>20}")
    print(header)
    print("-" * len(header))
    rows = [(shape, name, reg, args.rate, False) for shape in ("sticky", "heavy") for name, reg in regressions.items()]
    rows += [("sticky", "latency x1.2 (all)", Regression(slow=1.2), args.rate, True),
             ("sticky", "errors x2", Regression(error=0.02), args.rate, True)]
    for shape, name, reg, rate, prom in rows:
        rng = np.random.default_rng(args.seed)
        results = [run_canary(plan, reg, rate, rng, STREAM_SHAPES[shape], prometheus=prom)
                   for _ in range(args.sticky_runs)]
        s = summarize(results)
        label = shape + (" / Prometheus (buckets)" if prom else "")
        print(f"{label:<34} {name:<20} {s['detected']:>11.0%} {s['seconds']:>9.0f} {s['requests']:>11.0f} "
              f"{s['bad_detected']:>25.0f} {s['bad_all']:>20.0f}")
    for shape, rate, prom, runs in (("sticky", args.rate, False, args.sticky_aa_runs),
                                    ("heavy", args.rate, False, args.sticky_aa_runs),
                                    ("sticky", 3.0, False, max(10, args.sticky_aa_runs // 3)),
                                    ("sticky", args.rate, True, args.sticky_aa_runs)):
        rng = np.random.default_rng(args.seed)
        results = [run_canary(plan, Regression(), rate, rng, STREAM_SHAPES[shape], prometheus=prom)
                   for _ in range(runs)]
        halted = sum(r["rolled_back"] for r in results)
        outcomes = Counter(r["outcome"] for r in results)
        per_test = Counter(m for r in results if r["rolled_back"] for m in r["rejected"])
        label = f"{shape} at {rate:g} req/s" + (" / Prometheus" if prom else "")
        print(f"{label:<34} {'A/A':<20} false halts {halted}/{runs} = {halted / runs:.1%}; ends {dict(outcomes)}; "
              f"per test {dict(per_test) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30, help="canaries per regression and judge")
    parser.add_argument("--aa-runs", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, both variants together")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--lindon-runs", type=int, default=2000, help="streams per row of the literature comparison")
    parser.add_argument("--sticky-runs", type=int, default=10, help="canaries per regression on sticky traffic")
    parser.add_argument("--sticky-aa-runs", type=int, default=60, help="A/A canaries per sticky shape")
    parser.add_argument("--only-sticky", action="store_true", help="print the sticky-traffic table alone")
    parser.add_argument("--skip-sticky", action="store_true", help="leave the sticky-traffic table out")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.only_sticky:
        sticky_table(args)
        print(f"\n({time.perf_counter() - started:.0f} s)")
        return 0
    print(f"simulated traffic {args.rate:g} req/s, base error rate {BASE_ERROR:.0%}, latency lognormal "
          f"(median {LATENCY_MEDIAN_MS:g} ms, sigma {LATENCY_SIGMA}), 20 % of requests labelled (accuracy 0.8); "
          f"plan 5→25→50→100 %, 60 s holds; {args.runs} canaries per cell, {args.aa_runs} A/A\n")
    table: dict[str, dict[str, dict]] = {}
    for name, scenario in SCENARIOS.items():
        runs = args.aa_runs if name == "A/A" else args.runs
        table[name] = {}
        for judge, plan in JUDGES.items():
            rng = np.random.default_rng(args.seed)
            table[name][judge] = summarize([simulate(dataclasses.replace(plan), scenario, args.rate, rng)
                                            for _ in range(runs)])
    header = (f"{'scenario':<20} {'judge':<28} {'rolled back':>11} {'median s':>9} {'median req':>11} "
              f"{'bad req (median, caught)':>25} {'bad req (mean, all)':>20}")
    print(header)
    print("-" * len(header))
    for name, by_judge in table.items():
        for judge, s in by_judge.items():
            if name == "A/A":
                print(f"{name:<20} {judge:<28} {'false rollbacks ' + format(s['detected'], '.1%'):>32}")
            else:
                print(f"{name:<20} {judge:<28} {s['detected']:>11.0%} {s['seconds']:>9.0f} {s['requests']:>11.0f} "
                      f"{s['bad_detected']:>25.0f} {s['bad_all']:>20.0f}")
    literature(args.seed, args.lindon_runs, args.rate)
    print("\nper-user clustering (sticky routing), false alarms at alpha 5 % over 60 looks, 2,000 runs:")
    for what, rate in clustering(np.random.default_rng(args.seed)).items():
        print(f"  {what:<45} {rate:.1%}")
    if not args.skip_sticky:
        sticky_table(args)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
