"""An append-only, hash-chained audit log in the workspace's SQLite file.

Each event's hash covers its own fields and the previous event's hash, so changing, inserting
or deleting a row in the middle breaks the chain at that row. stdlib only: the rollback path
appends here.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable

from backends.dbfile import connect_db
from console.domain import AuditEvent
from console.timeutil import now_iso

GENESIS = "0" * 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)
"""


def event_hash(seq: int, at: str, actor: str, action: str, model: str, version: str,
               details: dict[str, Any], prev_hash: str) -> str:
    body = json.dumps(
        [seq, at, actor, action, model, version, details, prev_hash],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class ChainCheck:
    ok: bool
    events: int
    first_broken: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "first_broken": self.first_broken, "reason": self.reason}


def verify_chain(events: Iterable[AuditEvent]) -> ChainCheck:
    """Pure: recompute every hash in order; name the first event that does not fit."""
    prev = GENESIS
    expected_seq = None
    count = 0
    for ev in events:
        count += 1
        if expected_seq is not None and ev.seq != expected_seq:
            return ChainCheck(False, count, ev.seq, f"event {ev.seq} follows {expected_seq - 1}: a row is missing")
        if ev.prev_hash != prev:
            return ChainCheck(False, count, ev.seq, f"event {ev.seq}: prev_hash does not match event {ev.seq - 1}")
        if event_hash(ev.seq, ev.at, ev.actor, ev.action, ev.model, ev.version, ev.details, ev.prev_hash) != ev.hash:
            return ChainCheck(False, count, ev.seq, f"event {ev.seq}: content does not match its hash")
        prev = ev.hash
        expected_seq = ev.seq + 1
    return ChainCheck(True, count)


def connect(db_path: str, *, timeout: float = 30.0) -> sqlite3.Connection:
    conn = connect_db(db_path, timeout=timeout, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


class AuditLog:
    def __init__(self, db_path: str):
        self.db_path = db_path

    def ensure_schema(self) -> None:
        conn = connect(self.db_path)
        try:
            conn.execute(SCHEMA)
        finally:
            conn.close()

    def append(self, actor: str, action: str, model: str = "", version: str = "",
               details: dict[str, Any] | None = None) -> AuditEvent:
        from console.redact import redact_obj

        details = details or {}
        # Round-trip through JSON so the hashed form is the stored form; a URL credential in a
        # detail (an endpoint in an error, a git remote) is masked before it is stored for good.
        details = redact_obj(json.loads(json.dumps(details, sort_keys=True, default=str)))
        for attempt in range(8):
            conn = connect(self.db_path)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(SCHEMA)  # a workspace whose registry lives elsewhere may not have it yet
                row = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
                at = now_iso()
                digest = event_hash(seq, at, actor, action, model, version, details, prev)
                conn.execute(
                    "INSERT INTO audit_events (seq, at, actor, action, model, version, details, prev_hash, hash)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (seq, at, actor, action, model, version, json.dumps(details, sort_keys=True), prev, digest),
                )
                conn.execute("COMMIT")
                return AuditEvent(seq, at, actor, action, model, version, details, prev, digest)
            except sqlite3.OperationalError as exc:  # locked past busy_timeout: back off and retry
                conn.execute("ROLLBACK") if conn.in_transaction else None
                if attempt == 7:
                    raise
                time.sleep(0.05 * 2**attempt)
            finally:
                conn.close()
        raise RuntimeError("unreachable")

    def events(self, *, model: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        import os

        if not os.path.exists(self.db_path):
            return []  # no audit log yet; a read must not create the database
        # not mode=ro: a read-only connection cannot clean up the WAL files when it closes
        conn = connect(self.db_path)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_events'").fetchone() is None:
                return []
            sql = "SELECT seq, at, actor, action, model, version, details, prev_hash, hash FROM audit_events"
            args: list[Any] = []
            if model:
                sql += " WHERE model = ?"
                args.append(model)
            sql += " ORDER BY seq"
            rows = conn.execute(sql, args).fetchall()
        finally:
            conn.close()
        events = [
            AuditEvent(r[0], r[1], r[2], r[3], r[4], r[5], _loads(r[6]), r[7], r[8]) for r in rows
        ]
        return events[-limit:] if limit else events

    def verify(self) -> ChainCheck:
        return verify_chain(self.events())


def _loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"__unparseable__": text}
    return value if isinstance(value, dict) else {"__value__": value}
