"""Shadow traffic, judged: production's and the candidate's answers to the same requests.

Pure (stdlib math only, no I/O): the caller reads the router's shadow log (one record per
mirrored request: "p"/"sp" the predictions of production and the shadow, "ms"/"sms" the two
model servers' latencies, "status"/"sstatus" their HTTP statuses) and hands the records here.

What is compared, on the rows both answered:
- agreement: the same decision (both on the same side of `threshold`; for regression, within
  `tolerance` of each other);
- prediction PSI: the shadow's score distribution against production's (equal-width bins on
  [0, 1] for probabilities, production's deciles for regression), the share floor of
  console/evaluate/stats.py so an empty bin stays finite;
- the score difference shadow - production: quantiles (linear interpolation, numpy's default),
  mean, largest magnitude and a histogram;
- latency side by side (p50, p99, mean of each server on the same requests).

The verdict uses the canary's anytime-valid machinery (console/rollout/sequential.py), so `mrc shadow
status` may be read every second without inflating false alarms: the disagreement rate against
1 - min_agreement (one-sample band), the shadow's error rate against production's + max_error_delta
on the same requests (the error test's normal band), and the paired log-latency difference against
log(latency_ratio). Each test runs at alpha / 3 (Bonferroni) so the whole verdict keeps alpha.
PSI above max_psi is a plain threshold (a distribution shift, not a sampling question).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from console.rollout.sequential import CONTINUE, ERROR_TAUS, LATENCY_TAUS, REJECT, SAFE, _judge, _no_data, error_rate_test

PSI_EPS = 1e-4  # as console/evaluate/stats.py: floor of a bin's share
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
PASS, FAIL = "pass", "fail"


@dataclass
class ShadowComparison:
    version: str  # the shadow (candidate) version
    production: str  # the version(s) that served, comma-joined
    requests: int  # mirrored requests in the log
    shadow_errors: int  # requests the shadow did not answer
    production_errors: int
    rows: int  # rows both answered: what the numbers below are computed on
    agreement: float | None
    psi: float | None
    psi_bins: dict[str, list[float]] = field(default_factory=dict)  # edges, production, shadow counts
    diff_quantiles: dict[str, float] = field(default_factory=dict)
    diff_mean: float | None = None
    diff_max_abs: float | None = None
    diff_histogram: dict[str, list[float]] = field(default_factory=dict)  # edges, counts
    latency: dict[str, dict[str, float | None]] = field(default_factory=dict)
    tests: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = CONTINUE
    reason: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantile(sorted_values: list[float], q: float) -> float | None:
    """numpy's default ("linear") quantile of an already sorted list."""
    if not sorted_values:
        return None
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def psi(production_counts: list[int], shadow_counts: list[int], eps: float = PSI_EPS) -> float | None:
    n_p, n_s = sum(production_counts), sum(shadow_counts)
    if not n_p or not n_s:
        return None
    total = 0.0
    for cp, cs in zip(production_counts, shadow_counts):
        a, b = max(cp / n_p, eps), max(cs / n_s, eps)
        total += (b - a) * math.log(b / a)
    return total


def score_edges(production: list[float], task: str, bins: int) -> list[float]:
    """Bin edges of the score distribution: [0, 1] in equal widths for probabilities, else
    production's quantiles (so each bin holds about as much of production)."""
    if task != "regression":
        return [i / bins for i in range(bins + 1)]
    ordered = sorted(production)
    return [quantile(ordered, i / bins) for i in range(bins + 1)]  # type: ignore[misc]


def bin_counts(values: Iterable[float], edges: list[float]) -> list[int]:
    """Counts per bin; the inner edges decide (a value on an edge goes right, as numpy's
    searchsorted(side="right")), the outer bins take everything beyond the ends."""
    inner = edges[1:-1]
    counts = [0] * (len(edges) - 1)
    for v in values:
        counts[bisect_right(inner, v)] += 1
    return counts


def diff_histogram(diffs: list[float], bins: int = 21) -> dict[str, list[float]]:
    """A histogram symmetric around 0 wide enough for the largest difference."""
    top = max((abs(d) for d in diffs), default=0.0) or 1e-9
    edges = [-top + 2 * top * i / bins for i in range(bins + 1)]
    counts = [0] * bins
    for d in diffs:
        counts[min(bins - 1, max(0, int((d + top) / (2 * top) * bins)))] += 1
    return {"edges": edges, "counts": counts}


def _summary(latencies: list[float]) -> dict[str, float | None]:
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50": quantile(ordered, 0.5), "p99": quantile(ordered, 0.99),
            "mean": (sum(ordered) / len(ordered)) if ordered else None}


def proportion_test(metric: str, events: int, n: int, margin: float, alpha: float, min_n: int):
    """Is the rate of an event above margin? The canary judge's anytime-valid band, one sample."""
    if n < min_n:
        return _no_data(metric, margin, alpha, n, n, min_n)
    p = (events + 0.5) / (n + 1.0)  # smoothed: no event seen must not mean no uncertainty
    return _judge(metric, events / n, p * (1 - p) / n, margin, alpha, ERROR_TAUS, n, n, "")


def paired_latency_test(production_ms: list[float], shadow_ms: list[float], margin_ratio: float, alpha: float,
                        min_n: int):
    """Is the shadow slower than production by more than margin_ratio, request by request
    (mean of log(1 + shadow ms) - log(1 + production ms))?"""
    margin = math.log(margin_ratio)
    n = len(production_ms)
    if n < min_n:
        return _no_data("log_latency", margin, alpha, n, n, min_n)
    diffs = [math.log1p(max(0.0, s)) - math.log1p(max(0.0, p)) for p, s in zip(production_ms, shadow_ms)]
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return _judge("log_latency", mean, max(var, 1e-6) / n, margin, alpha, LATENCY_TAUS, n, n, "")


def select(records: Iterable[dict[str, Any]], version: str | None = None, since: float | None = None) -> list[dict]:
    """The mirrored-request records of one shadow run: this shadow version, from `since` on."""
    out = []
    for r in records:
        if not isinstance(r, dict) or r.get("type") != "shadow":
            continue
        if version is not None and r.get("sv") != version:
            continue
        if since is not None and float(r.get("t") or 0.0) < since:
            continue
        out.append(r)
    return out


def _numbers(values) -> list[float] | None:
    if not isinstance(values, list):
        return None
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def _class_pairs(p, s, labels: dict) -> tuple[list[float] | None, list[float] | None, list[float]]:
    """A multi-class record's predictions as class codes (the argmax of a probability vector,
    else the label itself, numbered in order of appearance) plus, per row, how far apart the
    two answers are: the total-variation distance of two vectors, else 0/1 disagreement."""
    def codes(values):
        if not isinstance(values, list):
            return None
        out = []
        for v in values:
            key = ("argmax", max(range(len(v)), key=v.__getitem__)) if isinstance(v, list) and v else ("label", str(v))
            out.append(float(labels.setdefault(key, len(labels))))
        return out

    cp, cs = codes(p), codes(s)
    diffs: list[float] = []
    if cp is not None and cs is not None and len(cp) == len(cs):
        for a, b, x, y in zip(p, s, cp, cs):
            if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
                diffs.append(0.5 * sum(abs(float(u) - float(w)) for u, w in zip(a, b)))
            else:
                diffs.append(float(x != y))
    return cp, cs, diffs


def compare(records: list[dict[str, Any]], *, task: str = "binary", threshold: float = 0.5, tolerance: float = 0.1,
            min_agreement: float = 0.95, max_psi: float = 0.2, latency_ratio: float = 1.25,
            max_error_delta: float = 0.01, alpha: float = 0.05, min_pairs: int = 30, bins: int = 10) -> ShadowComparison:
    """The comparison of one shadow run (records from `select`)."""
    production_scores: list[float] = []
    shadow_scores: list[float] = []
    production_ms: list[float] = []
    shadow_ms: list[float] = []
    shadow_errors = production_errors = 0
    versions: list[str] = []
    shadow_version = ""
    class_codes: dict = {}
    class_diffs: list[float] = []
    for r in records:
        shadow_version = str(r.get("sv") or shadow_version)
        if r.get("v") and r["v"] not in versions:
            versions.append(str(r["v"]))
        if task == "multiclass":  # agreement = the same class; PSI over the predicted classes
            p, s, row_diffs = _class_pairs(r.get("p"), r.get("sp"), class_codes)
        else:
            p, s, row_diffs = _numbers(r.get("p")), _numbers(r.get("sp")), []
        p_ok = r.get("status") == 200 and p is not None
        s_ok = r.get("sstatus") == 200 and s is not None
        production_errors += not p_ok
        shadow_errors += not s_ok
        if not (p_ok and s_ok) or len(p) != len(s):  # type: ignore[arg-type]
            continue
        class_diffs += row_diffs
        production_scores += p  # type: ignore[arg-type]
        shadow_scores += s  # type: ignore[arg-type]
        production_ms.append(float(r.get("ms") or 0.0))
        shadow_ms.append(float(r.get("sms") or 0.0))

    rows = len(production_scores)
    if task == "regression":
        agree = sum(abs(s - p) <= tolerance for p, s in zip(production_scores, shadow_scores))
    elif task == "multiclass":
        agree = sum(p == s for p, s in zip(production_scores, shadow_scores))
    else:
        agree = sum((p >= threshold) == (s >= threshold) for p, s in zip(production_scores, shadow_scores))
    if task == "multiclass":  # per row: total-variation distance of the probability vectors (or 0/1)
        diffs = sorted(class_diffs)
        edges = [i - 0.5 for i in range(len(class_codes) + 1)] if rows else []
    else:
        diffs = sorted(s - p for p, s in zip(production_scores, shadow_scores))
        edges = score_edges(production_scores, task, bins) if rows else []
    prod_counts = bin_counts(production_scores, edges) if rows else []
    shadow_counts = bin_counts(shadow_scores, edges) if rows else []

    each = alpha / 3
    tests = [
        proportion_test("disagreement", rows - agree, rows, 1.0 - min_agreement, each, min_pairs),
        error_rate_test(shadow_errors, len(records), production_errors, len(records), alpha=each,
                        margin=max_error_delta, min_n=min_pairs, metric="error_rate"),
        paired_latency_test(production_ms, shadow_ms, latency_ratio, each, min_pairs),
    ]
    for t in tests:  # the canary's words, said of a shadow
        t.detail = t.detail.replace("canary - stable", "shadow - production").replace("canary requests",
                                                                                      "mirrored requests")
    value_psi = psi(prod_counts, shadow_counts) if rows else None
    failed = [t for t in tests if t.decision == REJECT]
    psi_failed = value_psi is not None and rows >= min_pairs and value_psi > max_psi
    if failed or psi_failed:
        verdict = FAIL
        reasons = [t.detail for t in failed] + ([f"prediction PSI {value_psi:.3f} > {max_psi:g}"] if psi_failed else [])
        reason = "; ".join(reasons)
    elif all(t.decision == SAFE for t in tests):
        verdict = PASS
        reason = (f"agreement {agree / rows:.1%} on {rows} rows, PSI {value_psi:.3f}, no more errors and no slower "
                  f"than production beyond the margins")
    else:
        verdict = CONTINUE
        waiting = [t for t in tests if t.decision != SAFE]
        reason = "; ".join(t.detail for t in waiting)

    return ShadowComparison(
        version=shadow_version, production=",".join(versions), requests=len(records), shadow_errors=shadow_errors,
        production_errors=production_errors, rows=rows, agreement=(agree / rows) if rows else None, psi=value_psi,
        psi_bins={"edges": edges, "production": prod_counts, "shadow": shadow_counts},
        diff_quantiles={f"p{round(q * 100):02d}": quantile(diffs, q) for q in QUANTILES} if diffs else {},
        diff_mean=(sum(diffs) / rows) if rows else None, diff_max_abs=max((abs(d) for d in diffs), default=None),
        diff_histogram=diff_histogram(diffs) if diffs else {"edges": [], "counts": []},
        latency={"production": _summary(production_ms), "shadow": _summary(shadow_ms)},
        tests=[t.to_dict() for t in tests], verdict=verdict, reason=reason,
        settings={"task": task, "threshold": threshold, "tolerance": tolerance, "min_agreement": min_agreement,
                  "max_psi": max_psi, "latency_ratio": latency_ratio, "max_error_delta": max_error_delta, "alpha": alpha, "min_pairs": min_pairs,
                  "bins": bins})


def summary_lines(c: ShadowComparison, counters: dict[str, int] | None = None) -> list[str]:
    """The comparison as a few lines of text (the CLI's output; the screen draws its own)."""
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = [f"shadow {c.version} vs production {c.production or '-'} · {c.requests} mirrored requests, "
             f"{c.rows} rows compared · verdict {c.verdict.upper()}"]
    if counters:
        lines.append("  mirror: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    lines.append(f"  agreement {num(c.agreement, '.2%')} · prediction PSI {num(c.psi, '.4f')} · "
                 f"errors shadow {c.shadow_errors} / production {c.production_errors}")
    if c.diff_quantiles:
        lines.append("  score diff (shadow - production): " + " ".join(
            f"{k} {v:+.4f}" for k, v in c.diff_quantiles.items()) + f" · mean {c.diff_mean:+.4f}")
    lp, ls = c.latency.get("production", {}), c.latency.get("shadow", {})
    lines.append(f"  latency ms   production p50 {num(lp.get('p50'), '.2f')} p99 {num(lp.get('p99'), '.2f')}"
                 f"   shadow p50 {num(ls.get('p50'), '.2f')} p99 {num(ls.get('p99'), '.2f')}")
    for t in c.tests:
        lines.append(f"  {t.get('detail', '')}")
    if c.reason:
        lines.append(f"  reason: {c.reason}")
    return lines
