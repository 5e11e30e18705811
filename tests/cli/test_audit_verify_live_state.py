"""`mrc audit verify` checks the live state against the log, and `mrc models` says when they
disagree: a pointer edited in SQLite, a rewritten actor (consistent chain), a removed checkpoint
file while the workspace holds a key, a binary checkpoint file, a `.mrc-key` folder. mrc in process."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

MODEL = "breast-cancer"


def mrc(capsys, ws: Path, *args: str) -> tuple[int, str, str]:
    from console.cli import main

    capsys.readouterr()
    code = main([*args, "--workspace", str(ws), "--actor", "oncall"])
    out = capsys.readouterr()
    return code, out.out, out.err


def verify(capsys, ws: Path) -> tuple[int, dict, str]:
    code, out, err = mrc(capsys, ws, "audit", "verify", "--json")
    return code, (json.loads(out) if out.strip() else {}), err


def sql(db: Path, statement: str, *params) -> None:
    conn = sqlite3.connect(db)
    conn.execute(statement, params)
    conn.commit()
    conn.close()


def rechain(db: Path, change) -> None:
    """Apply `change(row) -> row` to audit events and recompute every hash: a consistent forgery."""
    from console.release.audit import GENESIS, event_hash

    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT seq, at, actor, action, model, version, details FROM audit_events ORDER BY seq").fetchall()
    prev = GENESIS
    for row in rows:
        seq, at, actor, action, model, version, details = change(row)
        digest = event_hash(seq, at, actor, action, model, version, json.loads(details), prev)
        conn.execute("UPDATE audit_events SET actor = ?, details = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                     (actor, details, prev, digest, seq))
        prev = digest
    conn.commit()
    conn.close()


def last_promote_seq(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT max(seq) FROM audit_events WHERE action = 'promote' AND model = ?",
                            (MODEL,)).fetchone()[0]
    finally:
        conn.close()


def test_a_pointer_edited_in_sqlite_fails_verify_and_mrc_models_says_so(demo_ws, capsys):
    code, out, _ = verify(capsys, demo_ws)
    assert code == 0 and out["ok"], out
    # production put on the rejected version 3 behind mrc's back: the history still ends at 2
    sql(demo_ws / "mrc.db", "UPDATE pointers SET version = '3' WHERE model = ? AND alias = 'production'", MODEL)

    code, out, _ = verify(capsys, demo_ws)
    assert code == 1 and out["chain_ok"] is True
    named = [p for p in out["problems"] if p.startswith(f"{MODEL}: production points at 3")]
    assert len(named) == 1 and "set it to 2" in named[0], out["problems"]

    code, text, _ = mrc(capsys, demo_ws, "models")
    assert code == 0
    assert f"DISAGREES: {MODEL}: production points at 3" in text
    code, text, _ = mrc(capsys, demo_ws, "models", "--json")
    row = next(r for r in json.loads(text)["models"] if r["name"] == MODEL)
    assert any("production points at 3" in d for d in row["disagreements"])


def test_a_rewritten_actor_is_detected_even_with_a_consistent_chain(demo_ws, capsys):
    db = demo_ws / "mrc.db"
    target = last_promote_seq(db)
    rechain(db, lambda row: (row[0], row[1], "mallory" if row[0] == target else row[2], *row[3:]))
    code, out, _ = verify(capsys, demo_ws)
    assert code == 1 and out["chain_ok"] is True
    assert any(f"audit event {target} says 'mallory'" in p and "actor was rewritten" in p for p in out["problems"]), \
        out["problems"]


def test_an_actor_rewritten_in_the_registry_is_detected(demo_ws, capsys):
    sql(demo_ws / "mrc.db", "UPDATE pointer_moves SET actor = 'mallory' WHERE model = ? AND alias = 'production' "
        "AND seq = (SELECT max(seq) FROM pointer_moves WHERE model = ? AND alias = 'production')", MODEL, MODEL)
    code, out, _ = verify(capsys, demo_ws)
    assert code == 1
    assert any("was made by 'mallory'" in p and "actor was rewritten" in p for p in out["problems"]), out["problems"]


def test_removing_the_checkpoint_file_after_a_consistent_rewrite_fails_while_a_key_exists(demo_ws, capsys):
    code, _, err = mrc(capsys, demo_ws, "audit", "checkpoint")
    assert code == 0, err
    assert (demo_ws / ".mrc-key").is_file()

    def reword(row):
        seq, at, actor, action, model, version, details = row
        if seq == 1:
            details = json.dumps({**json.loads(details), "reason": "rewritten"}, sort_keys=True)
        return seq, at, actor, action, model, version, details

    rechain(demo_ws / "mrc.db", reword)
    (demo_ws / "audit-checkpoints.jsonl").unlink()
    code, out, _ = verify(capsys, demo_ws)
    assert code == 1 and out["chain_ok"] is True
    assert any("checkpoints were removed" in p for p in out["problems"]), out["problems"]


def test_a_binary_checkpoint_file_is_one_problem_line_not_a_crash(demo_ws, capsys):
    assert mrc(capsys, demo_ws, "audit", "checkpoint")[0] == 0
    (demo_ws / "audit-checkpoints.jsonl").write_bytes(b"\x00\xff\xfe\x80binary\n\x89PNG\r\n")
    code, out, err = verify(capsys, demo_ws)
    assert code == 1 and "Traceback" not in err
    assert any("signature does not match" in p for p in out["problems"]), out["problems"]


def test_a_key_folder_is_one_line_not_a_crash(demo_ws, capsys):
    (demo_ws / ".mrc-key").mkdir()
    code, out, err = mrc(capsys, demo_ws, "audit", "verify")
    assert code == 2 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and ".mrc-key" in err and "must be a file" in err
    code, out, err = mrc(capsys, demo_ws, "audit", "checkpoint")
    assert code == 2 and err.strip().count("\n") == 0 and "must be a file" in err
