"""Canaries on real processes: model servers, router, load generator and the controller."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.canary import CANDIDATE, MODEL, STABLE
from tests.support.cli import run_mrc

pytestmark = pytest.mark.integration


def _split(ws) -> dict[str, int]:
    from backends.local.traffic import LocalTraffic

    return {v: w for v, w in LocalTraffic(ws).get_split(MODEL).weights.items() if w}


def _state(ws):
    from console.rollout.controller import current_state
    from console.workspace import Workspace

    return current_state(Workspace.open(ws), MODEL)


def _audit(ws) -> list[dict]:
    result = run_mrc("audit", "--json", "--workspace", str(ws))
    assert result.returncode == 0, result.stderr
    return result.json()["events"]


def _pointers(ws) -> dict[str, str]:
    from backends.local.registry import LocalRegistry

    return LocalRegistry(ws).get_pointers(MODEL)


def _wait(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_drilled_canary_is_rolled_back_automatically(served_ws, load, controllers):
    drill = run_mrc("drill", MODEL, CANDIDATE, "--error-rate", "0.2", "--workspace", str(served_ws))
    assert drill.returncode == 0, drill.stderr
    proc = controllers.start()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, err  # rolled back: exit 1
    state = json.loads(out)
    assert state["status"] == "rolled_back" and state["weight"] == 0 and state["pending"] is None
    assert "error_rate" in state["reason"]
    assert _split(served_ws) == {STABLE: 100}
    assert _pointers(served_ws).get("production") == STABLE
    rollback = [e for e in _audit(served_ws) if e["action"] == "canary-rollback"]
    assert len(rollback) == 1 and rollback[0]["version"] == CANDIDATE
    why = rollback[0]["details"]
    assert "error_rate" in why["reason"]
    seq = {r["metric"]: r for r in why["analysis"]["sequential"]}
    # The router's log carries user keys, so users are the unit (issue 20): the user-level band decides
    # and its lower bound is recorded above the margin.
    assert seq["error_rate"]["decision"] == "reject" and seq["error_rate"]["estimate"] > 0
    assert seq["error_rate"]["lower"] > seq["error_rate"]["margin"] and "users as the unit" in why["reason"]


def test_healthy_canary_reaches_100_percent(served_ws, load, controllers):
    proc = controllers.start()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    state = json.loads(out)
    assert state["status"] == "promoted" and state["weight"] == 100
    assert [e["kind"] for e in state["events"] if e["kind"] in ("step", "promote")] == ["step", "step", "promote"]
    assert _split(served_ws) == {CANDIDATE: 100}
    assert _pointers(served_ws).get("production") == CANDIDATE
    actions = [e["action"] for e in _audit(served_ws)]
    assert actions.count("canary-step") == 2 and "canary-promote" in actions and "promote" in actions
    # Every analysis saw both variants and online accuracy arrived with the labels.
    assert any(a["canary"]["labelled"] for a in state["analyses"])


# kill -9 at every crash point: tests/integration/canary/test_fail_closed.py (one test per MRC_CANARY_CRASH hook).


def test_mrc_rollback_during_a_live_canary_sends_traffic_to_stable(served_ws, load, controllers):
    proc = controllers.start("--hold", "60")
    _wait(lambda: (_state(served_ws) or None) and _state(served_ws).weight > 0, what="first step")
    assert _split(served_ws) == {CANDIDATE: 25, STABLE: 75}
    result = run_mrc("rollback", MODEL, "--reason", "3 AM page", "--workspace", str(served_ws), "--json")
    assert result.returncode == 0, result.stderr
    assert _split(served_ws) == {STABLE: 100}
    out, err = proc.communicate(timeout=30)
    assert json.loads(out)["status"] == "rolled_back"
    events = [e for e in _audit(served_ws) if e["action"] == "canary-rollback"]
    assert events and events[-1]["actor"] == "tester" and "3 AM page" in events[-1]["details"]["reason"]


def test_pause_stops_stepping_and_abort_restores_stable(served_ws, load, controllers):
    proc = controllers.start("--hold", "1")
    _wait(lambda: (_state(served_ws) or None) and _state(served_ws).weight == 25, what="first step")
    assert run_mrc("canary", "pause", MODEL, "--workspace", str(served_ws)).returncode == 0
    time.sleep(2.0)  # longer than the hold: a progressing canary would have stepped
    assert _state(served_ws).status == "paused" and _split(served_ws) == {CANDIDATE: 25, STABLE: 75}
    status = run_mrc("canary", "status", MODEL, "--json", "--workspace", str(served_ws))
    assert status.returncode == 0 and status.json()["status"] == "paused"
    assert run_mrc("canary", "abort", MODEL, "--reason", "enough", "--workspace", str(served_ws)).returncode == 0
    out, _ = proc.communicate(timeout=30)
    assert json.loads(out)["status"] == "aborted"
    assert _split(served_ws) == {STABLE: 100}
    actions = [e["action"] for e in _audit(served_ws)]
    assert "canary-pause" in actions and "canary-abort" in actions


@pytest.mark.parametrize("args, words", [
    (["canary", "start", MODEL, CANDIDATE, "--plan", "5,abc"], "--plan"),
    (["canary", "start", MODEL, CANDIDATE, "--plan", "50,25,100"], "--plan"),
    (["canary", "start", "../etc", CANDIDATE], "model '../etc'"),
    (["canary", "start", MODEL, CANDIDATE, "--no-data-timeout", "0"], "--no-data-timeout"),
    (["canary", "status", MODEL], "no canary yet"),
    (["drill", MODEL, CANDIDATE, "--error-rate", "2"], "--error-rate"),
    (["canary", "pause", MODEL], "no canary"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(demo_ws, args, words):
    from tests.support.cli import tree_digest

    before = tree_digest(demo_ws)
    result = run_mrc(*args, "--workspace", str(demo_ws))
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert tree_digest(demo_ws) == before
