"""Benchmark: the sequential judge against the seed's 3-consecutive threshold rule, on simulated
request streams at a realistic rate. Pure (no servers): the real console/canary.py analysis and
state machine run on generated health windows.

    python tests/bench/bench_canary.py [--runs 100] [--aa-runs 200] [--rate 200]

For each regression (error rate 1 % -> 2 %, 1 % -> 5 %, latency x1.6) and each judge: detection
rate, seconds and canary requests to detection, and bad requests (failed — or, for latency,
slow — canary requests served before traffic went back to stable); then false rollbacks over
A/A canaries. The plan is the default one (5 -> 25 -> 50 -> 100 %, 60 s holds); the threshold
rule judges 10 s windows (the seed judges 60 s ones), the sequential judge looks every second,
which its anytime validity allows.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backends.base import HealthWindow  # noqa: E402
from console import canary  # noqa: E402
from console.domain import CanaryPlan  # noqa: E402

BASE_ERROR = 0.01
LATENCY_MEDIAN_MS, LATENCY_SIGMA = 20.0, 0.35

JUDGES = {
    "sequential (1 s looks)": CanaryPlan(judge="sequential", interval_s=1.0, min_requests=10),
    "threshold 3x (10 s, +1 pt)": CanaryPlan(judge="threshold", interval_s=10.0, max_error_rate_delta=0.01),
    "threshold 3x (10 s, +0.5 pt)": CanaryPlan(judge="threshold", interval_s=10.0, max_error_rate_delta=0.005),
    "threshold 3x (60 s, seed)": CanaryPlan(judge="threshold", interval_s=60.0, max_error_rate_delta=0.01),
}

SCENARIOS = {
    "errors 1% -> 2%": {"error": 0.02, "latency_factor": 1.0},
    "errors 1% -> 5%": {"error": 0.05, "latency_factor": 1.0},
    "latency x1.6": {"error": BASE_ERROR, "latency_factor": 1.6},
    "A/A": {"error": BASE_ERROR, "latency_factor": 1.0},
}


def window(rng, version: str, n: int, error: float, latency_factor: float, start: float, end: float) -> HealthWindow:
    errors = int(rng.binomial(n, error)) if n else 0
    lat = (rng.lognormal(np.log(LATENCY_MEDIAN_MS), LATENCY_SIGMA, n) * latency_factor).tolist() if n else []
    srt = sorted(lat)
    p = (lambda q: srt[min(len(srt) - 1, int(np.ceil(q * len(srt))) - 1)]) if srt else (lambda q: None)
    return HealthWindow("m", version, start, end, requests=n, errors=errors, latency_p50_ms=p(0.5),
                        latency_p99_ms=p(0.99), latencies_ms=lat)


def simulate(plan: CanaryPlan, scenario: dict, rate: float, rng) -> dict:
    """One canary from start to its end. Returns when (and whether) it rolled back."""
    now = 0.0
    state = canary.new_state("m", "1", "2", plan, now, "t")
    state = canary.apply(state, canary.decide(state, now), now, "t")
    canary_requests = bad = 0
    regression = scenario["error"] != BASE_ERROR or scenario["latency_factor"] != 1.0
    while state.active:
        start, now = now, now + plan.interval_s
        n_total = int(rng.poisson(rate * plan.interval_s))
        n_canary = int(rng.binomial(n_total, state.weight / 100))
        stable_w = window(rng, "1", n_total - n_canary, BASE_ERROR, 1.0, start, now)
        canary_w = window(rng, "2", n_canary, scenario["error"], scenario["latency_factor"], start, now)
        canary_requests += n_canary
        bad += canary_w.errors if scenario["latency_factor"] == 1.0 else n_canary
        analysis = canary.analyze(state, stable_w, canary_w, now, explain=False)
        state = canary.record_analysis(state, analysis, "t")
        decision = canary.decide(state, now, analysis)
        if decision.action != canary.HOLD:
            state = canary.apply(state, decision, now, "t")
    rolled_back = state.status == "rolled_back"
    return {"rolled_back": rolled_back, "seconds": now, "canary_requests": canary_requests,
            "bad": bad if regression else 0}


def summarize(results: list[dict]) -> dict:
    detected = [r for r in results if r["rolled_back"]]
    med = lambda key, rows: statistics.median(r[key] for r in rows) if rows else float("nan")  # noqa: E731
    return {"detected": len(detected) / len(results), "seconds": med("seconds", detected),
            "requests": med("canary_requests", detected), "bad_detected": med("bad", detected),
            "bad_all": statistics.mean(r["bad"] for r in results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100, help="canaries per regression and judge")
    parser.add_argument("--aa-runs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, both variants together")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"simulated traffic {args.rate:g} req/s, base error rate {BASE_ERROR:.0%}, latency lognormal "
          f"(median {LATENCY_MEDIAN_MS:g} ms, sigma {LATENCY_SIGMA}); plan 5→25→50→100 %, 60 s holds\n")
    table: dict[str, dict[str, dict]] = {}
    for name, scenario in SCENARIOS.items():
        runs = args.aa_runs if name == "A/A" else args.runs
        table[name] = {}
        for judge, plan in JUDGES.items():
            rng = np.random.default_rng(args.seed)
            table[name][judge] = summarize([simulate(dataclasses.replace(plan), scenario, args.rate, rng)
                                            for _ in range(runs)])
    header = f"{'scenario':<18} {'judge':<30} {'detected':>8} {'median s':>9} {'median req':>11} {'bad req (median, detected)':>27} {'bad req (mean, all)':>20}"
    print(header)
    print("-" * len(header))
    for name, by_judge in table.items():
        for judge, s in by_judge.items():
            if name == "A/A":
                print(f"{name:<18} {judge:<30} {'false rollbacks ' + format(s['detected'], '.1%'):>30}")
            else:
                print(f"{name:<18} {judge:<30} {s['detected']:>8.0%} {s['seconds']:>9.0f} {s['requests']:>11.0f} "
                      f"{s['bad_detected']:>27.0f} {s['bad_all']:>20.0f}")
    print("\nratios (sequential / threshold +1 pt, bad requests, mean over all canaries incl. missed):")
    seq, thr = "sequential (1 s looks)", "threshold 3x (10 s, +1 pt)"
    seed = "threshold 3x (60 s, seed)"
    for name in ("errors 1% -> 2%", "errors 1% -> 5%", "latency x1.6"):
        a, b, c = table[name][seq]["bad_all"], table[name][thr]["bad_all"], table[name][seed]["bad_all"]
        print(f"  {name:<18} {a:8.0f} / {b:8.0f} = {a / b if b else float('nan'):.2f}x   (target <= 0.5x)"
              f"   vs 60 s windows: {a / c if c else float('nan'):.2f}x")
    print(f"  false rollbacks: sequential {table['A/A'][seq]['detected']:.1%} (target <= 5%), "
          f"threshold +1 pt {table['A/A'][thr]['detected']:.1%}, "
          f"threshold +0.5 pt {table['A/A']['threshold 3x (10 s, +0.5 pt)']['detected']:.1%}, "
          f"threshold 60 s {table['A/A'][seed]['detected']:.1%}")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
