"""A KServe canary judged from Prometheus: a two-version workspace and the controller it runs
(shared by the emulator's integration test and the real control plane's e2e test)."""

from __future__ import annotations

import pytest

from backends.base import Lineage
from console.domain import CanaryPlan

MODEL = "breast-cancer"


@pytest.fixture
def two_version_ws(tmp_path):
    """A workspace whose registry has production = 1 and an approved version 2 (artifacts are plain bytes)."""
    from console.release.actions import decide, promote
    from console.workspace import Workspace

    root = tmp_path / "ws"
    Workspace.init(root)
    ws = Workspace.open(root)
    registry, audit = ws.registry(), ws.audit()
    registry.ensure_schema()
    audit.ensure_schema()
    for version in ("1", "2"):
        artifact = tmp_path / f"model-{version}.pt"
        artifact.write_bytes(f"model {version}".encode())
        registry.register_version(MODEL, str(artifact), metrics={"auc_roc": 0.9}, version=version,
                                  lineage=Lineage(code_commit="c" * 40, data_version="d@v1", training_run=f"run{version}"))
        decide(registry, audit, MODEL, version, status="approved", actor="tester", reason="e2e")
    promote(registry, audit, MODEL, "1", actor="tester")
    return ws


def controller_for(ws, traffic, metrics):
    from console.rollout.controller import Controller

    return Controller(ws, MODEL, actor="tester", traffic=traffic, metrics=metrics)


PLAN = CanaryPlan(steps=[10, 50, 100], hold_s=60, interval_s=2.0, judge="threshold", consecutive_failures=2,
                  min_requests=20, max_error_rate_delta=0.02)
