"""The shadow comparison and its presenters, without servers: console/rollout/shadow.py is pure."""

from __future__ import annotations

import random

import numpy as np
import pytest

from backends.local.serving.router import validate_shadow
from console.rollout.shadow import compare, quantile, select
from screens.shadow_screen import diff_lines, histogram_lines, latency_lines, limit_bars


def records(n: int, *, seed: int = 0, noise: float = 0.01, shift: float = 0.0, flip: float = 0.0,
            shadow_errors: float = 0.0, slower: float = 1.0, version: str = "2") -> list[dict]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        p = [r.random() for _ in range(2)]
        s = [min(1.0, max(0.0, x + shift + r.gauss(0, noise))) for x in p]
        if r.random() < flip:
            s = [1.0 - x for x in p]
        ms = 2.0 + r.random()
        failed = r.random() < shadow_errors
        out.append({"type": "shadow", "t": float(i), "id": str(i), "v": "1", "sv": version, "status": 200,
                    "sstatus": 502 if failed else 200, "p": p, "sp": None if failed else s, "ms": ms,
                    "sms": ms * slower * (1 + 0.05 * r.random())})
    return out


def test_a_faithful_shadow_passes_and_the_numbers_are_numpys():
    recs = records(1200)
    c = compare(recs)
    assert c.verdict == "pass", c.reason
    p = np.array([x for r in recs for x in r["p"]])
    s = np.array([x for r in recs for x in r["sp"]])
    assert c.rows == len(p) and c.agreement == pytest.approx(np.mean((p >= 0.5) == (s >= 0.5)))
    assert c.diff_quantiles["p95"] == pytest.approx(np.percentile(s - p, 95))
    assert c.psi is not None and c.psi < 0.01


@pytest.mark.parametrize("kwargs,metric", [
    ({"flip": 0.2}, "disagreement"),  # a fifth of the decisions turned over
    ({"shadow_errors": 0.1}, "error_rate"),  # the shadow fails one request in ten
    ({"slower": 2.0}, "log_latency"),  # twice as slow on the same requests
    ({"shift": 0.35, "noise": 0.0}, "PSI"),  # scores pushed up: the distribution moved
])
def test_each_regression_fails_the_shadow_and_names_its_test(kwargs, metric):
    c = compare(records(1200, **kwargs))
    assert c.verdict == "fail" and metric in c.reason


def test_too_few_requests_is_no_verdict_yet():
    c = compare(records(10))
    assert c.verdict == "continue" and c.rows == 20


def test_unanswered_and_malformed_records_are_counted_not_compared():
    recs = records(40)
    recs[0]["sp"] = recs[0]["sp"][:1]  # lengths differ
    recs[1]["status"], recs[1]["p"] = 502, None
    recs[2]["sp"] = ["x", "y"]
    c = compare(recs)
    assert c.requests == 40 and c.rows == 2 * 37
    assert (c.production_errors, c.shadow_errors) == (1, 1)


def test_select_keeps_one_run():
    recs = records(5, version="2") + records(5, version="3") + [{"type": "request"}, "junk"]
    assert len(select(recs, "2")) == 5 and len(select(recs, "3", since=3.0)) == 2


def test_quantile_is_numpys_linear():
    values = sorted(random.Random(3).random() for _ in range(101))
    for q in (0.0, 0.01, 0.37, 0.5, 0.99, 1.0):
        assert quantile(values, q) == pytest.approx(np.percentile(values, 100 * q))
    assert quantile([], 0.5) is None


def test_regression_models_are_binned_on_production_deciles():
    recs = records(300)
    for r in recs:
        r["p"] = [10 * x for x in r["p"]]
        r["sp"] = [10 * x + 3 for x in r["sp"]]
    c = compare(recs, task="regression", tolerance=0.5)
    assert c.agreement == 0.0 and c.psi > 1  # every row off by 3: no agreement, a big shift
    assert c.psi_bins["edges"][0] == pytest.approx(min(x for r in recs for x in r["p"]))


@pytest.mark.parametrize("body", [{"version": "9"}, {"version": "2", "sample": 0}, {"version": "2", "sample": 1.5},
                                  {"version": "2", "sample": True}, {"version": 2}, []])
def test_the_router_refuses_a_bad_shadow_setting(body):
    with pytest.raises(ValueError):
        validate_shadow(body, {"1": {}, "2": {}})


def test_the_router_takes_a_good_setting_and_null_stops():
    assert validate_shadow({"version": "2", "sample": 0.25}, {"2": {}}) == {"version": "2", "sample": 0.25}
    assert validate_shadow({"version": None}, {}) is None


def test_presenters_draw_the_histogram_and_bars():
    c = compare(records(200)).to_dict()
    lines = histogram_lines([1, 4, 2], height=2, width_per_bin=1)
    assert lines == [" █ ", "▄██"]  # eighth-row resolution; the tallest bin reaches the top
    assert histogram_lines([0, 0]) == ["(no data)"]
    # log scale: a tail of 3 rows beside a peak of 10,000 still stands a block high; an empty bin stays empty
    assert histogram_lines([3, 10_000, 0], height=2, width_per_bin=1, log=True) == [" █ ", "▂█ "]
    assert histogram_lines([1, 10_000], height=2, width_per_bin=1) == [" █", "▁█"]  # linear: seen all the same
    diff = diff_lines(c)
    assert diff[0].startswith("score difference") and "p50" in diff[-1]
    assert "agreement" in limit_bars(c) and "(at most 0.2" in limit_bars(c)
    assert [line.split()[0:2] for line in latency_lines(c)] == [["p50", "production"], ["p50", "shadow"],
                                                               ["p99", "production"], ["p99", "shadow"]]
