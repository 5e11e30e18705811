"""`mrc audit checkpoint` anchors the chain: a signed head that a truncated, rewritten or
emptied log no longer matches — cases the hash chain alone calls "intact"."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

MODEL = "breast-cancer"


def _ws(path: Path) -> list[str]:
    return ["--workspace", str(path)]


def _rewrite_from(db: Path, k: int) -> None:
    """Change event k and recompute every hash after it: a consistent forgery."""
    from console.release.audit import GENESIS, event_hash

    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT seq, at, actor, action, model, version, details FROM audit_events ORDER BY seq").fetchall()
    prev = GENESIS
    for seq, at, actor, action, model, version, details in rows:
        if seq == k:
            actor = "mallory"
        if seq >= k:
            h = event_hash(seq, at, actor, action, model, version, json.loads(details), prev)
            conn.execute("UPDATE audit_events SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?", (actor, prev, h, seq))
            prev = h
        else:
            prev = conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (seq,)).fetchone()[0]
    conn.commit()
    conn.close()


def _sql(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql)
    conn.commit()
    conn.close()


TAMPER = {
    "truncate tail": lambda db: _sql(db, "DELETE FROM audit_events WHERE seq > 9"),
    "rewrite from row 4": lambda db: _rewrite_from(db, 4),
    "empty the table": lambda db: _sql(db, "DELETE FROM audit_events"),
    "drop the table": lambda db: _sql(db, "DROP TABLE audit_events"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_without_a_checkpoint_the_chain_alone_misses_it(demo_ws, mrc, case):
    db = demo_ws / "mrc.db"
    # the same tampering on a log with no checkpoint: the chain check alone does not see it
    TAMPER[case](db)
    blind = mrc("audit", "verify", "--json", *_ws(demo_ws)).json()
    assert blind["chain_ok"] is True and not [p for p in blind["problems"] if "checkpoint" in p]


@pytest.mark.parametrize("case", list(TAMPER))
def test_tampering_below_a_checkpoint_is_caught(demo_ws, mrc, case):
    ws = _ws(demo_ws)
    made = mrc("audit", "checkpoint", "--json", *ws)
    assert made.returncode == 0, made.stderr
    head = made.json()["checkpoint"]
    assert head["seq"] == 13 and len(head["mac"]) == 64
    key = demo_ws / ".mrc-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # more writes after the checkpoint still verify
    assert mrc("rollback", MODEL, "--reason", "page", *ws).returncode == 0
    assert mrc("audit", "verify", *ws).returncode == 0

    TAMPER[case](demo_ws / "mrc.db")
    result = mrc("audit", "verify", "--json", *ws)
    assert result.returncode == 1
    out = result.json()
    assert out["chain_ok"] is True  # consistent: only the anchor shows it
    mine = [p for p in out["problems"] if p.startswith("checkpoint 1")]
    assert len(mine) == 1, out["problems"]
    assert ("rewritten" if case.startswith("rewrite") else "truncated or emptied") in mine[0]
    assert "PROBLEM: checkpoint 1" in mrc("audit", "verify", *ws).stdout


def test_a_forged_or_removed_checkpoint_is_caught(demo_ws, mrc):
    ws = _ws(demo_ws)
    assert mrc("audit", "checkpoint", *ws).returncode == 0
    assert mrc("rollback", MODEL, "--reason", "page", *ws).returncode == 0
    assert mrc("audit", "checkpoint", *ws).returncode == 0
    path = demo_ws / "audit-checkpoints.jsonl"
    lines = path.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [13, 14]

    forged = json.loads(lines[1])
    forged["seq"] = 13  # claim the log ended earlier, to cover a truncation
    path.write_text(lines[0] + "\n" + json.dumps(forged) + "\n")
    out = mrc("audit", "verify", "--json", *ws).json()
    assert any("checkpoint 2: signature does not match" in p for p in out["problems"])

    path.write_text(lines[1] + "\n")  # the first checkpoint removed
    out = mrc("audit", "verify", "--json", *ws).json()
    assert any("checkpoint 2: does not follow" in p for p in out["problems"])

    path.write_text("\n".join(lines) + "\n")
    assert mrc("audit", "verify", *ws).returncode == 0
    other_key = mrc("audit", "verify", "--json", *ws, env={"MRC_AUDIT_KEY": "not the workspace key"}).json()
    assert not other_key["ok"] and "signature does not match" in other_key["problems"][0]


def test_checkpoint_refuses_to_anchor_a_broken_chain(demo_ws, mrc):
    _sql(demo_ws / "mrc.db", "UPDATE audit_events SET actor = 'x' WHERE seq = 5")
    result = mrc("audit", "checkpoint", *_ws(demo_ws))
    assert result.returncode == 1 and "refused" in result.stdout
    assert not (demo_ws / "audit-checkpoints.jsonl").exists()
    assert mrc("audit", "checkpoint", "--read-only", *_ws(demo_ws)).returncode == 2


def test_pure_checkpoint_checks():
    from console.release.audit import GENESIS, event_hash
    from console.release.audit_checks import _mac, check_checkpoints
    from console.domain import AuditEvent

    events, prev = [], GENESIS
    for seq in (1, 2, 3):
        h = event_hash(seq, "t", "a", "promote", "m", "1", {}, prev)
        events.append(AuditEvent(seq, "t", "a", "promote", "m", "1", {}, prev, h))
        prev = h
    body = {"n": 1, "at": "t", "seq": 2, "hash": events[1].hash, "prev_mac": ""}
    cp = {**body, "mac": _mac(b"k", body)}
    assert check_checkpoints([cp], events, b"k") == []
    assert "truncated" in check_checkpoints([cp], events[:1], b"k")[0]
    assert "signature" in check_checkpoints([cp], events, b"other")[0]
    assert "no key" in check_checkpoints([cp], events, None)[0]
    assert os.environ.get("MRC_AUDIT_KEY") is None
