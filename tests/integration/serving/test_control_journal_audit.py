"""Issue 13 item 1, last gap: the state changes the router and model servers accept reach the
hash-chained audit log. Real router and model servers (the demo workspace's versions 2 and 5),
changed through mrc's own client (LocalTraffic), then `mrc audit` / `mrc audit verify` as real
subprocesses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.cli import run_mrc

MODEL = "breast-cancer"


@pytest.fixture(scope="module")
def served(demo_template, tmp_path_factory):
    from backends.local.traffic import LocalTraffic

    ws = tmp_path_factory.mktemp("journal") / "ws"
    shutil.copytree(demo_template, ws)
    traffic = LocalTraffic(ws)
    try:
        traffic.ensure_serving(MODEL, ["2", "5"])
        yield ws, traffic
    finally:
        traffic.stop_serving(MODEL)


def control_events(ws: Path) -> list[dict]:
    result = run_mrc("audit", "--workspace", str(ws), "--json")
    assert result.returncode == 0, result.stderr
    return [e for e in result.json()["events"] if e["action"] in ("router-control", "server-control")]


def split_events(events: list[dict], weights: list) -> list[dict]:
    return [e for e in events if e["details"]["entry"]["route"] == "PUT /control/split"
            and e["details"]["entry"]["body"]["weights"] == weights]


def test_a_split_change_is_in_the_audit_log_exactly_once_after_two_runs(served, monkeypatch):
    ws, traffic = served
    monkeypatch.setenv("MRC_ACTOR", "carol")
    split = traffic.get_split(MODEL)
    traffic.set_split(MODEL, {"5": 10, "2": 90}, expected_revision=split.revision)

    first = control_events(ws)
    found = split_events(first, [["5", 10], ["2", 90]])
    assert len(found) == 1, found
    event = found[0]
    assert event["actor"] == "carol via router" and event["model"] == MODEL
    assert event["details"]["journal"] == f"serving/{MODEL}/control.jsonl"

    traffic.fault(MODEL, "5", latency_ms=1.0)  # a model server's change, made between the two runs
    second = control_events(ws)
    assert len(split_events(second, [["5", 10], ["2", 90]])) == 1  # not ingested twice
    assert [e["seq"] for e in second[:len(first)]] == [e["seq"] for e in first]
    new = second[len(first):]
    assert [(e["action"], e["actor"], e["version"]) for e in new] == [("server-control", "carol via model server", "5")]
    # every journal line is in the log once, and the chain still verifies
    lines = (ws / "serving" / MODEL / "control.jsonl").read_text().splitlines()
    assert len(second) == len(lines)
    verify = run_mrc("audit", "verify", "--workspace", str(ws), "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    traffic.fault(MODEL, "5")  # healthy again: a line not yet ingested
    pending = run_mrc("audit", "verify", "--read-only", "--workspace", str(ws), "--json")
    assert pending.returncode == 0, pending.stdout + pending.stderr  # pending after the last ingested line, not missing
    assert len(control_events(ws)) == len(lines) + 1


def test_audit_checkpoint_ingests_the_journal_before_it_anchors(served, monkeypatch):
    """A router change made just before `mrc audit checkpoint` is inside the anchor, not
    appended after it by the next `mrc audit`."""
    ws, traffic = served
    monkeypatch.setenv("MRC_ACTOR", "dave")
    split = traffic.get_split(MODEL)
    traffic.set_split(MODEL, {"5": 20, "2": 80}, expected_revision=split.revision)
    refused = run_mrc("audit", "checkpoint", "--read-only", "--workspace", str(ws), "--json")
    assert refused.returncode == 2  # a read-only run ingests nothing either
    logged = run_mrc("audit", "--read-only", "--workspace", str(ws), "--json").json()["events"]
    logged = [e for e in logged if e["action"] in ("router-control", "server-control")]
    assert logged and not split_events(logged, [["5", 20], ["2", 80]])

    made = run_mrc("audit", "checkpoint", "--workspace", str(ws), "--json")
    assert made.returncode == 0, made.stdout + made.stderr
    head = made.json()["checkpoint"]
    found = split_events(control_events(ws), [["5", 20], ["2", 80]])
    assert len(found) == 1 and found[0]["actor"] == "dave via router"
    assert found[0]["seq"] <= head["seq"], (found[0]["seq"], head)  # anchored, not appended after it
    verify = run_mrc("audit", "verify", "--workspace", str(ws), "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_journal_line_deleted_after_ingestion_is_named_by_verify(served, monkeypatch):
    ws, traffic = served
    monkeypatch.setenv("MRC_ACTOR", "mallory")
    split = traffic.get_split(MODEL)
    traffic.set_split(MODEL, {"5": 30, "2": 70}, expected_revision=split.revision)
    before = control_events(ws)  # ingests it
    assert len(split_events(before, [["5", 30], ["2", 70]])) == 1
    traffic.rollback(MODEL, "2")  # a line after the one to be deleted, ingested too
    ingested = control_events(ws)

    journal = ws / "serving" / MODEL / "control.jsonl"
    kept = [line for line in journal.read_text().splitlines(keepends=True)
            if not ('"PUT /control/split"' in line and '[["5",30],["2",70]]' in line)]
    assert len(kept) == len(ingested) - 1
    journal.write_text("".join(kept))

    verify = run_mrc("audit", "verify", "--workspace", str(ws), "--json")
    assert verify.returncode == 1, verify.stdout + verify.stderr
    deleted = split_events(ingested, [["5", 30], ["2", 70]])[0]
    problems = [p for p in verify.json()["problems"] if "control.jsonl" in p]
    assert problems == [f"serving/{MODEL}/control.jsonl: line of event {deleted['seq']} "
                        f"(PUT /control/split by mallory) is missing from the journal"], verify.json()["problems"]
    assert verify.json()["chain_ok"] is True  # the log itself is intact: it is the journal that lost a line

    # a rewritten journal is reported, never ingested again
    again = run_mrc("audit", "--workspace", str(ws), "--json")
    assert again.returncode == 0, again.stderr
    assert "truncated or rewritten" in again.stderr and f"serving/{MODEL}/control.jsonl" in again.stderr
    assert len([e for e in again.json()["events"] if e["action"] in ("router-control", "server-control")]) == len(ingested)
