"""A write lock held by another process: mrc says so on stderr while it waits, names the holder,
gives up after the configured wait and exits 4 (a backend unavailable), not 2 (bad input)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support.cli import REPO, mrc_env


@pytest.fixture
def held_lock(tmp_path, mrc):
    ws = tmp_path / "ws"
    assert mrc("init", "--workspace", str(ws)).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys
        conn = sqlite3.connect({str(ws / "mrc.db")!r}, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        print("held", flush=True)
        sys.stdin.read()  # hold it until the test closes stdin
        conn.execute("ROLLBACK")
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    try:
        yield ws, holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


@pytest.mark.parametrize("args", [["rollback", "m"], ["promote", "m", "1", "--reason", "r"],
                                  ["alias", "m", "archived", "1"], ["canary", "abort", "m"]], ids=" ".join)
def test_held_lock_waits_with_progress_then_exits_4_naming_the_holder(held_lock, mrc, args):
    ws, holder = held_lock
    result = mrc(*args, "--workspace", str(ws), env={"MRC_LOCK_TIMEOUT": "1.5"}, timeout=120)
    assert result.returncode == 4, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"waiting for the workspace lock held by pid {holder.pid}"), lines
    assert lines[-1].startswith("mrc: busy: ") and f"pid {holder.pid}" in lines[-1] and "1.5 s" in lines[-1]
    assert "database is locked" not in result.stderr


def test_wait_comes_from_mrc_toml_and_the_environment_wins(held_lock, mrc):
    ws, holder = held_lock
    with open(ws / "mrc.toml", "a") as fh:
        fh.write("\n[workspace]\nlock_timeout_s = 0.5\n")
    from_toml = mrc("rollback", "m", "--workspace", str(ws), timeout=120)
    assert from_toml.returncode == 4 and "gave up after 0.5 s" in from_toml.stderr, from_toml.stderr
    from_env = mrc("rollback", "m", "--workspace", str(ws), env={"MRC_LOCK_TIMEOUT": "0.2"}, timeout=120)
    assert from_env.returncode == 4 and "gave up after 0.2 s" in from_env.stderr, from_env.stderr


def test_released_lock_lets_the_write_through(held_lock, mrc):
    """The waiting process goes on as soon as the holder lets go: started while the lock is held,
    it ends with the write's own verdict (here: no such model, exit 2), never "busy"."""
    ws, holder = held_lock
    waiting = subprocess.Popen([sys.executable, "-m", "console.cli", "rollback", "m", "--workspace", str(ws)],
                               cwd=REPO, env=mrc_env({"MRC_LOCK_TIMEOUT": "600"}), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first = waiting.stderr.readline()  # it is waiting now, and says so
    assert first.startswith(f"waiting for the workspace lock held by pid {holder.pid}"), first
    holder.stdin.close()
    holder.wait(timeout=60)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 2, err
    assert "busy" not in err and "m" in err


def test_read_commands_do_not_wait_for_the_lock(held_lock, mrc):
    ws, holder = held_lock
    result = mrc("audit", "--workspace", str(ws), env={"MRC_LOCK_TIMEOUT": "600"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "waiting" not in result.stderr
