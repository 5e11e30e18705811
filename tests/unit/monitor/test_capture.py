"""The router's feature capture: sampled by id hash, bounded (drops counted, never blocking), in
segments rotated by size and age, pruned by total size; the router source reads each line once."""

from __future__ import annotations

import json
import threading

from backends.base import FieldMapping
from backends.local.monitor_source import RouterLogSource
from backends.local.serving.capture import FeatureCapture, SegmentLog, sampled, segment_paths


def test_the_sample_is_deterministic_by_id_and_close_to_its_rate():
    ids = [f"req-{i}" for i in range(20_000)]
    chosen = [i for i in ids if sampled(i, 0.1)]
    assert 0.09 < len(chosen) / len(ids) < 0.11
    assert chosen == [i for i in ids if sampled(i, 0.1)]
    assert all(sampled(i, 1.0) for i in ids[:10]) and not any(sampled(i, 0.0) for i in ids[:10])


def test_segments_rotate_by_size_and_age_and_old_ones_are_pruned(tmp_path):
    clock = {"now": 1000.0}
    log = SegmentLog(tmp_path / "capture", max_bytes=1000, max_age_s=60, keep_bytes=3500, clock=lambda: clock["now"])
    for i in range(80):
        log.write([json.dumps({"i": i, "pad": "x" * 80}).encode() + b"\n"])
    assert log.rotations >= 2 and log.deleted >= 1
    total = sum(p.stat().st_size for p in segment_paths(tmp_path / "capture"))
    assert total <= 3500 + 1000
    log.write([b'{"i":99}\n'])
    before = log.rotations
    clock["now"] += 61  # age: the next write opens a new segment
    log.write([b'{"i":100}\n'])
    assert log.rotations == before + 1
    log.close()


def test_a_full_queue_drops_and_counts_and_offer_never_blocks(tmp_path):
    capture = FeatureCapture(tmp_path / "capture", sample=1.0, capacity=4)
    gate = threading.Event()
    original = capture.log.write
    capture.log.write = lambda lines: (gate.wait(10), original(lines))  # a stalled disk
    for i in range(50):
        capture.offer(f"r{i}", "user", "1", [[1.0, 2.0]], ["a", "b"], 200, [0.5], 1.0 + i)
    counts = capture.snapshot()["counters"]
    assert counts["offered"] == 50 and counts["dropped"] > 0
    assert counts["queued"] + counts["dropped"] == 50
    gate.set()


def test_the_router_source_reads_each_line_once_across_segments(tmp_path):
    folder = tmp_path / "serving" / "m" / "capture"
    log = SegmentLog(folder, max_bytes=400)
    source = RouterLogSource()
    source.open(str(tmp_path), "m", FieldMapping(), {})
    seen = []
    cursor = None
    for i in range(40):
        log.write([json.dumps({"t": float(i), "id": f"r{i}", "v": "1", "k": "u", "x": {"a": float(i)},
                               "p": 0.5}).encode() + b"\n"])
        if i % 7 == 0:
            batch = source.read(cursor)
            seen += batch.ids.tolist()
            cursor = batch.cursor
    with open(sorted(folder.iterdir())[-1], "ab") as fh:
        fh.write(b'{"t":99.0,"id":"partial"')  # a line being written: left for the next read
    batch = source.read(cursor)
    seen += batch.ids.tolist()
    assert seen == [f"r{i}" for i in range(40)]
    assert not batch.bad
