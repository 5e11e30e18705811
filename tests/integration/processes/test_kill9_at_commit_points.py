"""kill -9 at every commit point of a pointer move or an approval: the write and its audit event
are committed together or not at all (local registry: one SQLite transaction), and a write to a
registry in another place is reconciled from its intent on the next run."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.cli import REPO, mrc_env

MODEL = "breast-cancer"


def _state(ws: Path) -> tuple[str, str, int]:
    """(production, approval of 3, number of audit events)."""
    conn = sqlite3.connect(ws / "mrc.db")
    try:
        production = conn.execute("SELECT version FROM pointers WHERE model = ? AND alias = 'production'",
                                  (MODEL,)).fetchone()[0]
        approval = conn.execute("SELECT approval_status FROM versions WHERE model = ? AND version = '3'",
                                (MODEL,)).fetchone()[0]
        events = conn.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
    finally:
        conn.close()
    return production, approval, events


WRITES = {
    "move": (["rollback", MODEL, "--reason", "page"], lambda s: s[0] == "1"),
    # the worst case: a rejected version approved with no trace
    "approval": (["approve", MODEL, "3", "--reason", "override at 3am", "--no-gates", "--override"],
                 lambda s: s[1] == "approved"),
}


@pytest.mark.parametrize("point", ["after-write", "after-audit", "after-commit"])
@pytest.mark.parametrize("write", ["move", "approval"])
def test_kill_9_between_write_and_audit_leaves_both_or_neither(demo_ws, mrc, write, point):
    argv, written = WRITES[write]
    before = _state(demo_ws)
    killed = mrc(*argv, "--workspace", str(demo_ws), env={"MRC_CRASH_AT": f"{write}:{point}"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = _state(demo_ws)
    if point == "after-commit":  # both: the write and exactly one event
        assert written(after) and after[2] == before[2] + 1
    else:  # neither: the transaction died with the process
        assert after == before
    verify = mrc("audit", "verify", "--json", "--workspace", str(demo_ws))
    assert verify.returncode == 0, verify.stdout
    assert verify.json()["problems"] == []


def test_audit_verify_names_a_write_that_has_no_event(demo_ws, mrc):
    """What the transaction now prevents, done by hand: verify finds it."""
    conn = sqlite3.connect(demo_ws / "mrc.db")
    conn.execute("UPDATE versions SET approval_status = 'approved', approval_by = 'mallory' WHERE model = ? AND version = '3'",
                 (MODEL,))
    conn.execute("UPDATE pointers SET version = '3' WHERE model = ? AND alias = 'production'", (MODEL,))
    conn.execute("INSERT INTO pointer_moves (model, alias, from_version, to_version, actor, at, reason)"
                 " VALUES (?, 'production', '2', '3', 'mallory', '2026-12-01T03:00:00Z', '')", (MODEL,))
    conn.commit()
    conn.close()
    result = mrc("audit", "verify", "--json", "--workspace", str(demo_ws))
    assert result.returncode == 1
    problems = result.json()["problems"]
    assert any("production 2 → 3 by mallory" in p and "no audit event" in p for p in problems), problems
    assert any(p.startswith(f"{MODEL} 3: approved by mallory") for p in problems), problems
    assert result.json()["chain_ok"] is True  # the chain alone would have said "intact"


# -- a registry that cannot share our transaction: intent first, reconciled on the next run -----

SCRIPT = textwrap.dedent("""
    import sys
    from backends.local.registry import LocalRegistry
    from console.release.audit import AuditLog
    from console.release.actions import decide, rollback
    registry, log = LocalRegistry(sys.argv[1]), AuditLog(sys.argv[2])
    if sys.argv[3] == "move":
        rollback(registry, log, "breast-cancer", actor="oncall", reason="page")
    else:
        decide(registry, log, "breast-cancer", "3", status="approved", actor="oncall", reason="3am", override=True)
""")


@pytest.mark.parametrize("point", ["intent:after-record", "remote:after-write"])
@pytest.mark.parametrize("write", ["move", "approval"])
def test_remote_write_killed_midway_is_reconciled_from_its_intent(demo_ws, tmp_path, write, point):
    """The registry lives in another database than the audit log (as MLflow or S3 would)."""
    from backends.local.registry import LocalRegistry
    from console.release.audit import AuditLog, intents
    from console.release.audit_checks import unaudited_approvals, unaudited_moves
    from console.release.actions import settle_intents

    audit_db = tmp_path / "elsewhere" / "audit.db"
    audit_db.parent.mkdir()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(demo_ws), str(audit_db), write], cwd=str(REPO),
                          env=mrc_env({"MRC_CRASH_AT": point}), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    registry, log = LocalRegistry(demo_ws), AuditLog(str(audit_db))
    (intent,) = intents(log)
    assert intent.state == "open" and log.events() == []

    settled = settle_intents(registry, log)  # the next run: the dead process's intent is settled
    landed = point == "remote:after-write"
    assert [s["state"] for s in settled] == ["reconciled" if landed else "abandoned"]
    events = log.events()
    if write == "move":
        moves = registry.pointer_history(MODEL, "production")
        assert (moves[-1].to_version == "1") is landed
        if landed:
            assert unaudited_moves(moves[-1:], events) == [] and events[-1].details["reconciled"] is True
    else:
        mv = registry.get_version(MODEL, "3")
        assert (mv.approval.status == "approved") is landed
        if landed:
            assert unaudited_approvals([mv], events) == []
    assert len(events) == (1 if landed else 0) and log.verify().ok
    assert settle_intents(registry, log) == []  # settled once
    registry.close()
