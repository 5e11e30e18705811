"""shadow.jsonl is rotated at a size (whole lines, N generations) and the shadow report reads the
rotated generations too.

The first tests drive the router's log writer and the report's reader directly on files; the
last one runs mrc's real router and model servers with a tiny rotation size set in mrc.toml and
checks that `mrc shadow status` counts every mirrored request the router counted.
"""

from __future__ import annotations

import json
import os
import threading

import pytest

from backends.local.serving.router import RotatingLog, generation
from console.rollout.shadow_report import read_records


def record(i: int, version: str = "2", t: float | None = None) -> str:
    return json.dumps({"type": "shadow", "t": float(i) if t is None else t, "id": f"r-{i}", "v": "1", "sv": version,
                       "status": 200, "sstatus": 200, "p": [0.25], "sp": [0.5], "ms": 1.0, "sms": 1.0}) + "\n"


def lines_of(path) -> list[str]:
    return path.read_text().splitlines(keepends=True) if path.exists() else []


def test_rotation_keeps_whole_lines_and_drops_the_oldest_generation(tmp_path):
    path = tmp_path / "shadow.jsonl"
    size = len(record(100))
    log = RotatingLog(path, max_bytes=3 * size, keep=2)  # three lines a file
    written = [record(i) for i in range(100, 110)]
    for line in written:
        log.write(line)
    # 10 lines, 3 a file: .2 (dropped: 100-102), now .2 = 103-105, .1 = 106-108, live = 109
    assert lines_of(path) == written[9:]
    assert lines_of(generation(path, 1)) == written[6:9]
    assert lines_of(generation(path, 2)) == written[3:6]
    assert not generation(path, 3).exists() and log.rotations == 3
    assert [r["id"] for r in read_records(path, "2", None)] == [f"r-{i}" for i in range(103, 110)]


def test_one_generation_by_default_and_a_line_longer_than_the_limit_goes_whole_alone(tmp_path):
    path = tmp_path / "shadow.jsonl"
    log = RotatingLog(path, max_bytes=50)
    long_line = record(1)
    assert len(long_line) > 50
    log.write(long_line)
    assert lines_of(path) == [long_line] and log.rotations == 0  # an empty file is never rotated
    log.write(record(2))
    log.write(record(3))
    assert lines_of(generation(path, 1)) == [record(2)] and lines_of(path) == [record(3)]
    assert not generation(path, 2).exists()


def test_a_restarted_writer_counts_what_the_file_already_holds(tmp_path):
    path = tmp_path / "shadow.jsonl"
    size = len(record(1))
    RotatingLog(path, max_bytes=2 * size).write(record(1))
    log = RotatingLog(path, max_bytes=2 * size)  # a new router on the same folder
    log.write(record(2))
    log.write(record(3))
    assert lines_of(generation(path, 1)) == [record(1), record(2)] and lines_of(path) == [record(3)]


def test_concurrent_writers_lose_and_split_no_line(tmp_path):
    path = tmp_path / "shadow.jsonl"
    log = RotatingLog(path, max_bytes=4096, keep=1000)
    per_thread, threads = 300, 4

    def work(n):
        for i in range(per_thread):
            log.write(record(n * per_thread + i))

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    files = [path] + [generation(path, n) for n in range(1, log.rotations + 1)]
    assert log.rotations > 5 and all(f.exists() for f in files)
    ids = []
    for f in files:
        assert f.stat().st_size <= 4096
        for line in lines_of(f):
            assert line.endswith("\n")
            ids.append(json.loads(line)["id"])  # every line parses: none split across files
    assert sorted(ids) == sorted(f"r-{i}" for i in range(threads * per_thread))


def test_the_report_reads_generations_oldest_first_each_file_once(tmp_path):
    path = tmp_path / "shadow.jsonl"
    generation(path, 2).write_text(record(1, "old-run") + record(2))
    generation(path, 1).write_text(record(3) + '{"type": "shadow", "t": 4, "id": "to')  # a torn line
    path.write_text(record(5) + record(6, t=0.5))
    (tmp_path / "shadow.jsonl.bak").write_text(record(7))  # not a generation
    assert [r["id"] for r in read_records(path, "2", None)] == ["r-2", "r-3", "r-5", "r-6"]
    assert [r["id"] for r in read_records(path, "2", 2.5)] == ["r-3", "r-5"]
    # a rotation between opening the live file and the generations shows one file under two
    # names (the same inode): it is read once
    os.remove(generation(path, 1))
    os.link(path, generation(path, 1))
    assert [r["id"] for r in read_records(path, "2", None)] == ["r-2", "r-5", "r-6"]
    assert read_records(tmp_path / "none.jsonl", "2", None) == []


def test_a_bad_rotation_setting_is_refused_before_anything_starts(tmp_path):
    from backends.base import BadInputError
    from backends.local.traffic import LocalTraffic

    for key, value in (("shadow_log_max_bytes", 0), ("shadow_log_keep", "3"), ("shadow_log_max_bytes", True)):
        with pytest.raises(BadInputError, match=f"traffic.{key}"):
            LocalTraffic(tmp_path, {key: value}).ensure_serving("cancer", ["1"])
    assert not (tmp_path / "serving").exists()
    assert LocalTraffic(tmp_path, {"shadow_log_max_bytes": 4096, "shadow_log_keep": 3})._router_flags() == [
        "--shadow-log-max-bytes", "4096", "--shadow-log-keep", "3"]


@pytest.mark.integration
@pytest.mark.slow
def test_a_window_spanning_rotations_is_counted_whole_by_shadow_status(models, cancer, tmp_path_factory):
    """A tiny rotation size in mrc.toml, the real router and model servers: every request the
    router mirrored is in `mrc shadow status`, though the log was rotated under it."""
    from concurrent.futures import ThreadPoolExecutor

    from backends.local.traffic import LocalTraffic
    from tests.support.shadow import (CANDIDATE, MODEL, PRODUCTION, mrc_ws, post, stop_everything, wait_for,
                                       workspace_with)

    # ~250-350 bytes a 3-row record: 30 requests fill two to three 4 KiB files, all kept
    root = workspace_with(models, tmp_path_factory.mktemp("rotation") / "ws",
                          "shadow_log_max_bytes = 4096\nshadow_log_keep = 5\n")
    X, _ = cancer
    requests = 30
    try:
        served = mrc_ws(root, "serve-models", MODEL, "--versions", PRODUCTION)
        assert served.returncode == 0, served.stderr
        started = mrc_ws(root, "shadow", "start", MODEL, CANDIDATE, "--json")
        assert started.returncode == 0, started.stderr
        port = json.loads((root / "serving" / MODEL / "processes.json").read_text())["router"]["port"]

        def one(i):
            rows = X[3 * i:3 * i + 3].tolist()
            code, body = post(port, "/predict", {"rows": rows, "key": f"k-{i}", "id": f"r-{i}"})
            assert code == 200 and body["version"] == PRODUCTION, body

        with ThreadPoolExecutor(3) as pool:
            list(pool.map(one, range(requests)))

        def settled():
            result = mrc_ws(root, "shadow", "status", MODEL, "--json")
            assert result.returncode in (0, 1), result.stderr
            report = result.json()
            c = report["counters"]
            return report if c["offered"] == requests and c["completed"] + c["failed"] == c["queued"] else None

        report = wait_for(settled, "every mirrored copy answered")
        counters = report["counters"]
        assert counters["queued"] == requests and counters["dropped"] == 0

        log = root / "serving" / MODEL / "shadow.jsonl"
        files = [log] + sorted(log.parent.glob("shadow.jsonl.*"))
        live = LocalTraffic(root).get_shadow(MODEL)
        assert live["log"]["max_bytes"] == 4096 and live["log"]["keep"] == 5
        assert 1 <= live["log"]["rotations"] < 5, live["log"]  # rotated, and nothing dropped yet
        assert generation(log, 1).exists() and len(files) == live["log"]["rotations"] + 1
        ids = []
        for f in files:
            assert f.stat().st_size <= 4096
            ids += [json.loads(line)["id"] for line in f.read_text().splitlines()]  # whole lines only
        assert sorted(ids) == sorted(f"r-{i}" for i in range(requests))
        assert report["comparison"]["requests"] == counters["completed"] + counters["failed"] == requests
        assert report["comparison"]["rows"] == 3 * counters["completed"]
    finally:
        stop_everything(root)
