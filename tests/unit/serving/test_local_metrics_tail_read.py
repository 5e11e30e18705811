"""LocalMetrics reads only the window's tail of requests.jsonl and answers exactly as a full scan.

The reference below is the straightforward reading the backend did before: parse every line,
join labels by id (the last label wins), filter requests by version and start <= t < end.
Logs are synthetic, written the way the router writes them (compact JSON, one line per write,
t stamped before the log lock so neighbours are slightly out of order), plus the damage a killed
router leaves: a torn line in the middle and a partly written last line.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from backends.local.metrics import LocalMetrics

MODEL = "fraud"
VERSIONS = ["1", "2", "3"]


def quantile(sorted_values, q):
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


_parsed: dict = {}


def full_scan(path: Path) -> tuple[list[dict], dict]:
    """Every request and the last label per id, parsed once per content of the file."""
    data = path.read_bytes() if path.exists() else b""
    if _parsed.get("data") != data:
        requests, labels = [], {}
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("type") == "label":
                labels[str(rec.get("id"))] = rec.get("label")
            else:
                requests.append(rec)
        _parsed.update(data=data, requests=requests, labels=labels)
    return _parsed["requests"], _parsed["labels"]


def reference(path: Path, version: str, start: float, end: float) -> dict:
    requests, labels = full_scan(path)
    rows = [r for r in requests if r.get("v") == version and start <= r.get("t", 0) < end]
    latencies = [float(r.get("ms", 0.0)) for r in rows]
    labelled = correct = 0
    for r in rows:
        label = labels.get(str(r.get("id")))
        if label is None or r.get("p") is None:
            continue
        labelled += 1
        correct += int((float(r["p"]) >= 0.5) == bool(label))
    return {"requests": len(rows), "errors": sum(1 for r in rows if int(r.get("status", 500)) >= 500),
            "latencies_ms": latencies, "latency_p50_ms": quantile(sorted(latencies), 0.5),
            "latency_p99_ms": quantile(sorted(latencies), 0.99),
            "predictions": [float(r["p"]) for r in rows if r.get("p") is not None],
            "labelled": labelled, "correct": correct}


def observed(metrics: LocalMetrics, version: str, start: float, end: float) -> dict:
    w = metrics.health(MODEL, version, start, end)
    return {"requests": w.requests, "errors": w.errors, "latencies_ms": w.latencies_ms,
            "latency_p50_ms": w.latency_p50_ms, "latency_p99_ms": w.latency_p99_ms,
            "predictions": w.predictions, "labelled": w.labelled, "correct": w.correct}


def synthetic_lines(rng: random.Random, n: int, t0: float, rate: float, first_id: int = 0) -> list[str]:
    """n requests at `rate`/s from t0, versions and statuses mixed, a fifth labelled (most labels
    after their request, some before it, some relabelled or labelled null)."""
    lines, t = [], t0
    pending: list[tuple[float, str]] = []
    for i in range(first_id, first_id + n):
        t += rng.expovariate(rate)
        stamp = t - rng.random() * 0.05 if rng.random() < 0.2 else t  # stamped before the lock
        rid = f"r{i}"
        if rng.random() < 0.02:  # a label posted before its request (the client chose the id)
            lines.append(json.dumps({"type": "label", "t": stamp, "id": rid, "label": rng.random() < 0.5},
                                    separators=(",", ":")))
        status = rng.choice([200] * 18 + [500, 503, 502, 400])
        pred = round(rng.random(), 4) if status == 200 else None
        lines.append(json.dumps({"type": "request", "t": stamp, "id": rid, "key": f"k{i % 97}",
                                 "v": rng.choice(VERSIONS + ["1"]), "status": status,
                                 "ms": round(rng.lognormvariate(1.5, 0.6), 3), "p": pred}, separators=(",", ":")))
        if rng.random() < 0.2:
            pending.append((t + rng.uniform(0.5, 40.0), rid))
        while pending and pending[0][0] <= t:
            due, label_id = pending.pop(0)
            label = None if rng.random() < 0.05 else rng.random() < 0.5
            lines.append(json.dumps({"type": "label", "t": t, "id": label_id, "label": label},
                                    separators=(",", ":")))
        if rng.random() < 0.003:  # relabel an earlier request
            lines.append(json.dumps({"type": "label", "t": t, "id": f"r{rng.randrange(first_id, i + 1)}",
                                     "label": rng.random() < 0.5}, separators=(",", ":")))
    return lines


def windows(rng: random.Random, t0: float, t1: float, count: int) -> list[tuple[float, float]]:
    span = t1 - t0
    out = [(0, t1 + 60), (t1 - 60, t1 + 1), (t1 - 10, t1), (t0 - 100, t0 + 5), (t1 + 10, t1 + 20),
           (t1 - 5, t1 - 5), (t1 - 5, t1 - 30)]
    for _ in range(count):
        start = t0 + rng.uniform(-10, span + 10)
        out.append((start, start + rng.choice([1, 5, 10, 30, 60, 300, 1200])))
    return out


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "serving" / MODEL / "requests.jsonl"
    path.parent.mkdir(parents=True)
    return tmp_path, path


def assert_same(ws: Path, path: Path, cases, fresh_each: bool = True) -> None:
    shared = LocalMetrics(ws)
    for start, end in cases:
        metrics = LocalMetrics(ws) if fresh_each else shared  # fresh: the first read of a window
        for version in VERSIONS + ["9"]:
            assert observed(metrics, version, start, end) == reference(path, version, start, end), \
                (version, start, end)


@pytest.mark.parametrize("layouts", ["router", "mixed"])
def test_equivalent_to_a_full_scan_for_many_windows(log, layouts):
    ws, path = log
    rng = random.Random(7)
    t0 = 1_800_000_000.0
    lines = synthetic_lines(rng, 20_000, t0, rate=20.0)
    # labels posted long before their requests (ids the client chose), far outside any tail read
    # (the router's layout is read by a regex, any other one parsed), some overridden later
    early = [json.dumps({"type": "label", "t": t0 + 1, "id": f"r{i}", "label": rng.random() < 0.5},
                        separators=(",", ":") if layouts == "router" or i % 2 else None) for i in rng.sample(range(18_000, 20_000), 600)]
    lines[10:10] = early
    # the damage a killed router leaves: a torn write, then the next router's lines after it
    torn = len(lines) // 2
    lines[torn] = lines[torn][: len(lines[torn]) // 2]
    text = "\n".join(lines) + "\n" + '{"type":"request","t":'  # and a partly written last line
    path.write_text(text)
    t1 = json.loads(lines[-1])["t"]
    cases = windows(rng, t0, t1, 40)
    assert_same(ws, path, cases, fresh_each=True)
    shuffled = cases[:]
    rng.shuffle(shuffled)
    assert_same(ws, path, shuffled, fresh_each=False)  # one backend: later windows reach further back


def test_incremental_reads_as_the_log_grows(log):
    ws, path = log
    rng = random.Random(11)
    t0 = 1_800_000_000.0
    metrics = LocalMetrics(ws)
    first_id = 0
    t = t0
    with open(path, "a") as fh:
        for round_ in range(12):
            lines = synthetic_lines(rng, 1500, t, rate=30.0, first_id=first_id)
            first_id += 1500
            t = json.loads(next(line for line in reversed(lines) if '"request"' in line))["t"]
            body = "\n".join(lines) + "\n"
            cut = rng.randrange(len(body))  # the router mid-write: the rest lands before the next read
            fh.write(body[:cut])
            fh.flush()
            for version in VERSIONS:
                assert observed(metrics, version, t - 60, t + 1) == reference(path, version, t - 60, t + 1)
            fh.write(body[cut:])
            fh.flush()
            for start, end in [(t - 60, t + 1), (t - 10, t), (t0 + round_ * 30, t0 + round_ * 30 + 45)]:
                for version in VERSIONS:
                    assert observed(metrics, version, start, end) == reference(path, version, start, end)


def test_a_recent_window_on_a_long_log_parses_only_its_tail(log):
    ws, path = log
    rng = random.Random(3)
    t0 = 1_800_000_000.0
    lines = synthetic_lines(rng, 40_000, t0, rate=50.0)  # ≈ 800 s of traffic
    path.write_text("\n".join(lines) + "\n")
    t1 = json.loads(lines[-1])["t"]
    metrics = LocalMetrics(ws)
    assert observed(metrics, "1", t1 - 60, t1 + 1) == reference(path, "1", t1 - 60, t1 + 1)
    index = metrics._index(MODEL)
    held = sum(len(v.rows) for v in index.versions.values())
    # the window plus the disorder margin before it: ≈ 120 s of 800 s, never the whole log
    assert 0 < held < 40_000 * 0.25, held
    assert index.first > 0
    # an older window reaches back, still exactly
    assert observed(metrics, "2", t0 + 100, t0 + 160) == reference(path, "2", t0 + 100, t0 + 160)
    assert index.first < path.stat().st_size // 2


def test_disorder_beyond_the_margin_seen_in_the_tail_falls_back_to_reading_everything(log):
    ws, path = log
    rng = random.Random(5)
    t0 = 1_800_000_000.0
    before = synthetic_lines(rng, 8000, t0, rate=10.0)  # ≈ 800 s
    # the clock stepped back 10 minutes near the end of the log: lines before the step are
    # stamped later than the ones after it, so a bisect alone would start too late
    after = synthetic_lines(rng, 600, t0 + 790 - 600, rate=10.0, first_id=8000)
    path.write_text("\n".join(before + after) + "\n")
    t1 = json.loads(after[-1])["t"]
    cases = [(t1 - 60, t1 + 1), (t0 + 700, t0 + 760), (t0 + 150, t0 + 260)] + windows(rng, t0, t0 + 800, 10)
    assert_same(ws, path, cases, fresh_each=True)
    assert_same(ws, path, cases, fresh_each=False)
    metrics = LocalMetrics(ws)
    metrics.health(MODEL, "1", t1 - 60, t1 + 1)
    assert metrics._index(MODEL).whole
    # requests without t count as t = 0 (as before): a window from 0 finds them
    with open(path, "a") as fh:
        fh.write('{"type":"request","id":"no-t","v":"1","status":200,"ms":1.5,"p":0.9}\n')
    assert_same(ws, path, [(0, t1 + 60), (t1 - 60, t1 + 60)], fresh_each=True)


def test_crlf_and_carriage_returns_split_as_a_full_scan_does(log):
    ws, path = log
    rng = random.Random(9)
    t0 = 1_800_000_000.0
    lines = synthetic_lines(rng, 3000, t0, rate=5.0)
    body = "\n".join(lines[:1000]) + "\r\n" + "\r".join(lines[1000:2000]) + "\r\n" + "\n".join(lines[2000:]) + "\n"
    path.write_text(body, newline="")
    t1 = json.loads(lines[-1])["t"]
    assert_same(ws, path, windows(rng, t0, t1, 20), fresh_each=True)


def test_a_replaced_log_is_read_afresh(log):
    ws, path = log
    rng = random.Random(13)
    t0 = 1_800_000_000.0
    path.write_text("\n".join(synthetic_lines(rng, 2000, t0, rate=10.0)) + "\n")
    metrics = LocalMetrics(ws)
    observed(metrics, "1", 0, t0 + 1000)
    lines = synthetic_lines(rng, 500, t0 + 5000, rate=10.0)
    tmp = path.with_suffix(".new")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    for version in VERSIONS:
        assert observed(metrics, version, 0, t0 + 10_000) == reference(path, version, 0, t0 + 10_000)


def test_no_log_yet_is_an_empty_window(tmp_path):
    w = LocalMetrics(tmp_path).health(MODEL, "1", 0, 1e12)
    assert (w.requests, w.latency_p99_ms, w.predictions) == (0, None, [])



def test_windows_read_across_rotated_generations_as_one_log(log):
    """The router rotates requests.jsonl (to .1, .1 to .2 …): a window spanning a rotation, and a
    label written to the new file for a request in an old one, read as if the log were one file;
    an index built before a rotation is kept (the file is the same, renamed)."""
    from backends.local.serving.router import RotatingLog

    ws, path = log
    rng = random.Random(11)
    t0 = 1_800_000_000.0
    lines = synthetic_lines(rng, 12_000, t0, rate=20.0)
    whole = path.with_name("whole.jsonl")
    whole.write_text("\n".join(lines) + "\n")
    rotating = RotatingLog(path, max_bytes=200_000, keep=50)
    metrics = LocalMetrics(ws)
    t1 = json.loads(lines[-1])["t"]
    cases = windows(rng, t0, t1, 12)
    for i, line in enumerate(lines):
        rotating.write(line + "\n")
        if i in (3000, 7000):  # read part-way, so indexes exist before later rotations rename their files
            for start, end in cases[:4]:
                metrics.health(MODEL, "1", start, end)
    rotating.fh.close()
    assert rotating.rotations >= 5
    assert len(list(path.parent.glob("requests.jsonl.*"))) == rotating.rotations
    kept = dict(metrics._indexes)
    for start, end in cases:
        for version in VERSIONS + ["9"]:
            assert observed(metrics, version, start, end) == reference(whole, version, start, end), (version, start, end)
            assert observed(LocalMetrics(ws), version, start, end) == reference(whole, version, start, end)
    assert any(kept[k] is metrics._indexes.get(k) for k in kept)  # renamed files kept their indexes
