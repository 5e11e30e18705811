"""Two rollbacks racing a third operator's move, as real processes: the first rollback is held
(stall point `rollback:history-read`) right after it read production's history; meanwhile a
second rollback moves 2 → 1 (2 is bad) and a third operator promotes 5. Released, the first
must decide on one snapshot: never put production back on 2, the version a rollback left.
Nothing here is decided by a clock: the stall point is released by a file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import REPO, mrc_env, run_mrc

pytestmark = pytest.mark.integration

MODEL = "breast-cancer"  # the demo: production 1 → 2, version 5 the candidate


def production_moves(ws: Path) -> list[tuple[str | None, str | None, str]]:
    conn = sqlite3.connect(ws / "mrc.db")
    try:
        return conn.execute("SELECT from_version, to_version, actor FROM pointer_moves WHERE model = ? "
                            "AND alias = 'production' ORDER BY seq", (MODEL,)).fetchall()
    finally:
        conn.close()


def wait_reached_or_exit(proc: subprocess.Popen, reached: Path) -> None:
    """Until the held process says it reached its stall point, or exits (then the test fails)."""
    while not reached.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the first rollback never reached rollback:history-read (exit {proc.returncode}): "
                                 f"{err.strip()}")
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass


def test_a_held_rollback_decides_on_one_snapshot_not_on_a_stale_history(demo_ws, tmp_path):
    ws = ["--workspace", str(demo_ws)]
    approved = run_mrc("approve", MODEL, "5", "--reason", "next release", "--no-gates", "--override", *ws)
    assert approved.returncode == 0, approved.stderr
    assert production_moves(demo_ws)[-1][:2] == ("1", "2")

    release = tmp_path / "release-first"
    first = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "rollback", MODEL, "--reason", "first on-call", "--actor", "ann", *ws],
        cwd=str(REPO), env=mrc_env({"MRC_STALL_AT": "rollback:history-read", "MRC_STALL_FILE": str(release)}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_reached_or_exit(first, Path(f"{release}.reached"))
        second = run_mrc("rollback", MODEL, "--reason", "second on-call", "--actor", "bob", *ws)
        assert second.returncode == 0, second.stderr  # 2 → 1: 2 is bad
        third = run_mrc("promote", MODEL, "5", "--reason", "release 5", "--actor", "carol", *ws)
        assert third.returncode == 0, third.stderr  # 1 → 5
        release.write_text("go")
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()

    moves = production_moves(demo_ws)
    production = moves[-1][1]
    assert production != "2", f"production back on the version a rollback left: {moves}"
    # the first rollback either rolled back from what production was when it decided (5, to the
    # newest fit version, 1) or refused with exit 3; it never acted on the history it read first
    if first.returncode == 0:
        assert moves[-1] == ("5", "1", "ann"), moves
    else:
        assert first.returncode == 3 and production == "5", (first.returncode, err, moves)
    assert run_mrc("audit", "verify", *ws).returncode == 0
