"""Fixtures every tier may use: `mrc` (the CLI) and the real demo workspace, built once per session.

Helpers live in tests/support/ (an importable package); area fixtures (servers: MLflow,
SeaweedFS, Prometheus, Alertmanager, model servers) are imported by the conftest.py of the folder
that needs them. Each tier's conftest.py marks what it collects (tests/support/tiers.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.cli import invoke, run_mrc
from tests.support.once import build_once
from tests.support.workspaces import release_workspace


@pytest.fixture
def mrc():
    """mrc("versions", "m", "--json") -> Result, in process (console.cli.main): the CLI's behaviour
    without an interpreter's start-up per call. tests/integration and tests/e2e override it with a
    real process; a test that needs one elsewhere calls tests.support.cli.run_process."""
    return invoke


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """The demo workspace, built once per test run (shared by xdist workers) by the real
    `mrc demo --no-tui`. Read it or copy it (demo_ws); never write to it."""

    def build(folder: Path) -> None:
        result = run_mrc("demo", "--no-tui", "--workspace", str(folder / "ws"), timeout=600)
        assert result.returncode == 0, result.stderr

    return build_once(tmp_path_factory, "demo-template", build) / "ws"


@pytest.fixture
def demo_ws(demo_template, tmp_path) -> Path:
    """A private copy of the demo workspace for one test."""
    dest = tmp_path / "ws"
    shutil.copytree(demo_template, dest)
    return dest


@pytest.fixture
def synthetic_ws(tmp_path) -> Path:
    """A small release registry built without torch in milliseconds (tests/support/workspaces.py):
    breast-cancer with production 2 and candidate 5 pending, trained by "tester", and churn.
    Use it wherever the behaviour under test does not depend on a really trained model."""
    return release_workspace(tmp_path / "ws", trained_by="tester")
