"""Read commands leave the workspace exactly as they found it: no schema created on read, and no
mrc.db-wal / mrc.db-shm left behind by a connection that was never closed (the demo's mrc.db is in
WAL mode, where any open connection keeps both files beside the database)."""

from __future__ import annotations

import pytest

from tests.support.cli import tree_digest

READ_COMMANDS = [
    ("canary", "status", "breast-cancer"),
    ("canary", "status", "breast-cancer", "--json", "--read-only"),
    ("models",),
    ("models", "--json", "--read-only"),
    ("versions", "breast-cancer"),
    ("versions", "breast-cancer", "--json"),
    ("audit",),
    ("audit", "verify", "--read-only"),
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_read_command_leaves_workspace_byte_for_byte_unchanged(demo_ws, mrc, args):
    before = tree_digest(demo_ws)
    assert not [name for name in before if name.startswith("mrc.db-")], before  # the demo closes cleanly too
    result = mrc(*args, "--workspace", str(demo_ws))
    if args[:2] == ("canary", "status"):  # the demo never ran a canary: says so, and creates no table for it
        assert result.returncode == 2 and "no canary" in result.stderr, result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip()
    assert tree_digest(demo_ws) == before


@pytest.mark.parametrize("args", [("canary", "status", "breast-cancer", "--json"), ("models", "--json")], ids=" ".join)
def test_reads_of_a_recorded_canary_write_nothing(demo_ws, mrc, args):
    from console.rollout.controller import CanaryStore
    from console.domain import CanaryState

    CanaryStore(demo_ws / "mrc.db").insert(CanaryState(model="breast-cancer", stable="2", candidate="5", id="c-1",
                                                       status="rolled_back", reason="drill"))
    before = tree_digest(demo_ws)
    assert not [name for name in before if name.startswith("mrc.db-")], before  # the store closed its connection
    result = mrc(*args, "--workspace", str(demo_ws))
    assert result.returncode == 0, result.stderr
    if args[0] == "canary":
        assert result.json()["status"] == "rolled_back"
    assert tree_digest(demo_ws) == before
