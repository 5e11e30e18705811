"""The rollback path: no heavy import, and it works when drift, reports and plots are broken."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.support.canary import CANDIDATE, MODEL, STABLE
from tests.support.cli import REPO, mrc_env
from tests.support.canary import HEAVY, SCRIPT  # noqa: F401

pytestmark = pytest.mark.integration


def _run(ws):
    broken = list(HEAVY) + ["console.evaluate.drift", "console.evaluate.report", "console.reports", "console.plots", "console.evaluate.gates"]
    code = SCRIPT.format(broken=broken, model=MODEL, ws=str(ws), heavy=list(HEAVY))
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), env=mrc_env(), capture_output=True, text=True,
                          timeout=60)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return proc, report


def test_rollback_of_a_live_canary_imports_nothing_heavy(served_ws):
    from backends.local.traffic import LocalTraffic
    from console.rollout.controller import Controller, current_state
    from console.domain import CanaryPlan
    from console.workspace import Workspace

    ws = Workspace.open(served_ws)
    controller = Controller(ws, MODEL, actor="tester")
    state = controller.start(CANDIDATE, CanaryPlan(steps=[50, 100], hold_s=600, interval_s=600))
    controller.act("next")  # 50 % live, recorded; no controller loop runs
    assert LocalTraffic(served_ws).get_split(MODEL).weights == {CANDIDATE: 50, STABLE: 50}

    proc, report = _run(served_ws)
    assert proc.returncode == 0, proc.stderr
    assert report["heavy"] == []
    assert {v: w for v, w in LocalTraffic(served_ws).get_split(MODEL).weights.items() if w} == {STABLE: 100}
    assert current_state(ws, MODEL).status == "rolled_back" and state.id == current_state(ws, MODEL).id


def test_pointer_rollback_moves_a_live_split_too_without_heavy_imports(served_ws):
    from backends.local.registry import LocalRegistry
    from backends.local.traffic import LocalTraffic
    from console.release.audit import AuditLog

    registry = LocalRegistry(served_ws)
    from console.release.actions import promote

    promote(registry, AuditLog(str(served_ws / "mrc.db")), MODEL, CANDIDATE, actor="tester")
    traffic = LocalTraffic(served_ws)
    split = traffic.get_split(MODEL)
    traffic.set_split(MODEL, {CANDIDATE: 100}, expected_revision=split.revision)

    proc, report = _run(served_ws)
    assert proc.returncode == 0, proc.stderr
    assert report["heavy"] == []
    assert registry.get_pointers(MODEL)["production"] == STABLE
    assert {v: w for v, w in traffic.get_split(MODEL).weights.items() if w} == {STABLE: 100}
    out = json.loads(proc.stdout)
    assert out["traffic"] == {STABLE: 100}
