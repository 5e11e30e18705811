"""The canary fails closed: errors, NaN and silence are failed checks; a start that cannot judge
starts nothing; an error in the loop rolls back; kill -9 at every crash point ends consistent.

Real router and model servers (tests/support/canary.py) carry the traffic; only the metrics
backend is swapped, for a tiny class that raises or rewrites the real windows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time

import pytest

from tests.support.canary import CANDIDATE, MODEL, STABLE, stop_everything
from tests.support.cli import REPO, mrc_env, run_mrc

pytestmark = pytest.mark.integration

# Steps fast enough for a loaded 2-core machine, slow enough to be judged (80 req/s of load).
# a few dozen requests: the power-aware wait for evidence is off (tests/unit/rollout/test_sequential_* test it)
PLAN = dict(steps=[25, 50, 100], hold_s=1, interval_s=0.4, min_requests=10, min_detectable_error_ratio=None,
            min_detectable_tail_ratio=None)


class Unreachable:
    """A metrics backend whose server is down."""

    def __init__(self):
        self.calls = 0

    def health(self, model, version, start, end):
        self.calls += 1
        raise ConnectionRefusedError("[Errno 111] Connection refused (127.0.0.1:9)")


class NaNPredictions:
    """The real router-log metrics, with the canary's predictions turned into NaN."""

    def __init__(self, real, version):
        self.real, self.version = real, version

    def health(self, model, version, start, end):
        window = self.real.health(model, version, start, end)
        if version == self.version:
            window = dataclasses.replace(window, predictions=[math.nan] * max(1, len(window.predictions)))
        return window


class BrokenSplit:
    """Real local traffic whose second step fails with an error nobody planned for."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def set_split(self, model, weights, *, expected_revision):
        if weights.get(CANDIDATE) == 50:
            raise RuntimeError("router answered garbage")
        return self.real.set_split(model, weights, expected_revision=expected_revision)


def _controller(ws_root, **roles):
    from console.rollout.controller import Controller
    from console.workspace import Workspace

    return Controller(Workspace.open(ws_root), MODEL, actor="tester", **roles)


def _plan(**extra):
    from console.domain import CanaryPlan

    return CanaryPlan(**{**PLAN, **extra})


def _split(ws_root) -> dict[str, int]:
    from backends.local.traffic import LocalTraffic

    return {v: w for v, w in LocalTraffic(ws_root).get_split(MODEL).weights.items() if w}


def _production(ws_root) -> str | None:
    from backends.local.registry import LocalRegistry

    return LocalRegistry(ws_root).get_pointers(MODEL).get("production")


def _audit(ws_root, action: str) -> list:
    from console.release.audit import AuditLog

    return [e for e in AuditLog(str(ws_root / "mrc.db")).events(model=MODEL) if e.action == action]


def _rolled_back_with(ws_root, state, words: str, check: str | None = None) -> None:
    assert state.status == "rolled_back" and state.weight == 0 and state.pending is None
    assert words in state.reason, state.reason
    assert _split(ws_root) == {STABLE: 100} and _production(ws_root) == STABLE
    event = _audit(ws_root, "canary-rollback")[-1]
    assert words in event.details["reason"]
    if check is not None:  # the failed check is in the analysis the audit keeps
        assert check in [c["name"] for c in event.details["analysis"]["checks"] if c["passed"] is False]


# -- failed checks ---------------------------------------------------------------------------

def test_a_metrics_backend_that_raises_counts_as_failed_checks_and_rolls_back(served_ws, load):
    metrics = Unreachable()
    controller = _controller(served_ws)
    state = controller.start(CANDIDATE, _plan())  # the probe sees the real backend: it starts
    controller._metrics = metrics  # then Prometheus goes down
    state = controller.run(state, max_seconds=120)
    _rolled_back_with(served_ws, state, "metrics backend: ConnectionRefusedError", "metrics")
    assert "3 consecutive failing windows" in state.reason
    assert [a["window_verdict"] for a in state.analyses[-3:]] == ["fail"] * 3
    assert metrics.calls >= 3


def test_nan_predictions_count_as_failed_checks_and_roll_back(served_ws, load):
    from console.workspace import Workspace

    controller = _controller(served_ws, metrics=NaNPredictions(Workspace.open(served_ws).metrics(), CANDIDATE))
    state = controller.run(controller.start(CANDIDATE, _plan()), max_seconds=120)
    _rolled_back_with(served_ws, state, "NaN/inf prediction", "finite")
    json.dumps(state.to_dict(), allow_nan=False)  # no NaN leaked into the stored state


def test_windows_without_requests_count_as_failed_checks_and_roll_back(served_ws):
    # the threshold rule (the seed's): silence is a failed check; the sequential judge holds instead
    # and its no-data timeout ends the canary as inconclusive (next test, and tests/unit/rollout)
    controller = _controller(served_ws)  # real servers and router, nobody sends a request
    state = controller.run(controller.start(CANDIDATE, _plan(no_data_timeout_s=600, judge="threshold")),
                           max_seconds=120)
    _rolled_back_with(served_ws, state, "no requests reached", "no_data")
    assert "3 consecutive failing windows" in state.reason


def test_the_no_data_timeout_rolls_back_even_when_failures_never_reach_the_limit(served_ws):
    controller = _controller(served_ws)
    plan = _plan(consecutive_failures=1000, no_data_timeout_s=2, inconclusive="rollback")
    state = controller.run(controller.start(CANDIDATE, plan), max_seconds=120)
    _rolled_back_with(served_ws, state, "no-data timeout 2 s")
    assert "inconclusive, rolled back by policy" in state.reason and state.sequential["outcome"] == "inconclusive"
    assert state.failures < 1000


def test_an_error_inside_the_loop_rolls_back_and_records_why(served_ws, load):
    from console.workspace import Workspace

    controller = _controller(served_ws, traffic=BrokenSplit(Workspace.open(served_ws).traffic()))
    state = controller.run(controller.start(CANDIDATE, _plan()), max_seconds=120)
    _rolled_back_with(served_ws, state, "controller error, failing closed: RuntimeError: router answered garbage")


# -- a start that cannot judge starts nothing ---------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return open(f"/proc/{pid}/stat").read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_start_with_an_unreachable_metrics_backend_exits_4_with_nothing_live_or_running(demo_ws):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = demo_ws / "mrc.toml"
    text = config.read_text()
    assert '[metrics]\nbackend = "local"\n' in text
    config.write_text(text.replace('[metrics]\nbackend = "local"\n', '[metrics]\nbackend = "prometheus"\n'
                                   f'url = "http://127.0.0.1:{port}"\ntimeout_s = 1\nretries = 1\n'))
    assert run_mrc("approve", MODEL, CANDIDATE, "--reason", "t", "--no-gates", "--override",
                   "--workspace", str(demo_ws)).returncode == 0
    try:
        result = run_mrc("canary", "start", MODEL, CANDIDATE, "--workspace", str(demo_ws), timeout=120)
        assert result.returncode == 4, result.stderr
        assert "metrics backend unreachable" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        procs = demo_ws / "serving" / MODEL / "processes.json"
        if procs.exists():  # nothing may have been started (or, if recorded, nothing left running)
            data = json.loads(procs.read_text())
            pids = [s["pid"] for s in data.get("servers", {}).values()] + ([data["router"]["pid"]] if data.get("router") else [])
            assert not [p for p in pids if _alive(p)]
        from console.rollout.controller import current_state
        from console.workspace import Workspace

        assert current_state(Workspace.open(demo_ws), MODEL) is None
        assert not _audit(demo_ws, "canary-start")
    finally:
        stop_everything(demo_ws)


def test_start_probes_metrics_before_serving_or_moving_anything(served_ws):
    from console.workspace import Workspace
    from backends.base import BackendError

    class Counting:
        def __init__(self, real):
            self.real, self.ensured = real, 0

        def __getattr__(self, name):
            return getattr(self.real, name)

        def ensure_serving(self, model, versions):
            self.ensured += 1
            return self.real.ensure_serving(model, versions)

    traffic = Counting(Workspace.open(served_ws).traffic())
    metrics = Unreachable()
    with pytest.raises(BackendError, match="metrics backend unreachable"):
        _controller(served_ws, traffic=traffic, metrics=metrics).start(CANDIDATE, _plan())
    assert metrics.calls == 1 and traffic.ensured == 0
    assert _split(served_ws) == {STABLE: 100}


# -- kill -9 at every crash point ----------------------------------------------------------------

def _state(ws_root):
    from console.rollout.controller import current_state
    from console.workspace import Workspace

    return current_state(Workspace.open(ws_root), MODEL)


def _wait(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _crash_ids():
    from console.rollout.controller import CRASH_POINTS

    return list(CRASH_POINTS)


def test_every_crash_hook_in_the_controller_is_listed_and_tested():
    import re

    from console.rollout.controller import CRASH_POINTS

    source = (REPO / "console" / "rollout" / "controller.py").read_text()
    literal = set(re.findall(r'_crash_point\("(\w+)", "(\w+)"\)', source))
    assert {f"{a}:{p}" for a, p in literal} <= set(CRASH_POINTS)
    phases = set(re.findall(r'_crash_point\(\w+(?:\.action)?, "(\w+)"\)', source))
    assert phases == {"intent", "effect", "split"}
    assert set(CRASH_POINTS) == set(CRASH_CASES)


CRASH_CASES = {
    "start:serving": "promoted", "start:state": "promoted",
    "step:intent": "promoted", "step:split": "promoted", "step:effect": "promoted",
    "promote:intent": "promoted", "promote:split": "promoted", "promote:effect": "promoted",
    "rollback:effect": "rolled_back", "abort:effect": "rolled_back",
}


@pytest.mark.parametrize("crash", list(CRASH_CASES))
def test_kill_9_at_each_crash_point_then_restart_ends_consistent(served_ws, load, controllers, crash):
    action = crash.split(":")[0]
    if action == "rollback":
        assert run_mrc("drill", MODEL, CANDIDATE, "--error-rate", "0.3", "--workspace", str(served_ws)).returncode == 0
    if action == "abort":
        first = controllers.start("--hold", "600")
        _wait(lambda: (_state(served_ws) or None) and _state(served_ws).weight == 25, what="first step")
        first.kill()  # the controller is gone; a person aborts, and is killed mid-abort
        first.communicate(timeout=30)
        killed = subprocess.run([sys.executable, "-m", "console.cli", "canary", "abort", MODEL, "--workspace",
                                 str(served_ws)], cwd=str(REPO), env=mrc_env({"MRC_CANARY_CRASH": crash}),
                                capture_output=True, text=True, timeout=120)
        assert killed.returncode == -9, killed.stderr
    else:
        proc = controllers.start(env={"MRC_CANARY_CRASH": crash})
        proc.communicate(timeout=120)
        assert proc.returncode == -9, f"controller was not killed at {crash}"
    crashed = _state(served_ws)
    if crash == "start:serving":
        assert crashed is None  # servers up, no canary yet
    else:
        assert crashed.active  # the record still says live: the restart must finish it
    if crash == "promote:effect":
        assert _production(served_ws) == CANDIDATE and crashed.pending["action"] == "promote"
    proc = controllers.start()  # restart: a controller while nobody runs resumes it
    out, err = proc.communicate(timeout=120)
    state = json.loads(out)
    expected = CRASH_CASES[crash]
    assert state["status"] == expected, err
    assert state["pending"] is None and state["weight"] == (100 if expected == "promoted" else 0)
    winner = CANDIDATE if expected == "promoted" else STABLE
    # registry, router and canary state agree
    assert _split(served_ws) == {winner: 100}
    assert _production(served_ws) == winner
    assert _state(served_ws).status == expected
    if crash != "start:serving":
        assert _audit(served_ws, "canary-resume")
    assert run_mrc("audit", "verify", "--workspace", str(served_ws)).returncode == 0
