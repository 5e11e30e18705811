"""Fixtures of the console tests: apps on real workspaces, a stable workspace for snapshots."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support.once import exclusive
from tests.support.workspaces import release_workspace

FIXED_NOW = datetime(2026, 1, 9, 12, 0, tzinfo=timezone.utc)
# Snapshots show the workspace path in the title bar: keep it the same on every run.
SNAPSHOT_WS = Path(tempfile.gettempdir()) / "mrc-tui-snapshot" / "ws"


def make_app(ws_path, *, read_only: bool = False, actor: str = "tester", clock=None):
    from console.app import ReleaseConsole
    from console.workspace import Workspace

    return ReleaseConsole(Workspace.open(ws_path), read_only=read_only, actor=actor, poll_s=0,
                          clock=clock or (lambda: FIXED_NOW))


async def settle(app, pilot, rounds: int = 3) -> None:
    """Wait until every worker is done and the messages they posted are handled."""
    for _ in range(rounds):
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def release_ws() -> Path:
    """A small fixed registry (two models, five versions) at a fixed path, one test at a time
    (xdist workers share the machine's temp folder)."""
    with exclusive(SNAPSHOT_WS):
        if SNAPSHOT_WS.parent.exists():
            shutil.rmtree(SNAPSHOT_WS.parent)
        SNAPSHOT_WS.parent.mkdir(parents=True)
        release_workspace(SNAPSHOT_WS)
        yield SNAPSHOT_WS
        shutil.rmtree(SNAPSHOT_WS.parent, ignore_errors=True)


@pytest.fixture
def empty_ws(tmp_path, mrc) -> Path:
    root = tmp_path / "empty"
    result = mrc("init", "--workspace", str(root))
    assert result.returncode == 0, result.stderr
    return root


def keys(text: str) -> list[str]:
    return ["space" if c == " " else c for c in text]
