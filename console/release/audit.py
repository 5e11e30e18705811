"""An append-only, hash-chained audit log in the workspace's SQLite file.

Each event's hash covers its own fields and the previous event's hash, so changing, inserting
or deleting a row in the middle breaks the chain at that row. stdlib only: the rollback path
appends here.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable

from backends.capabilities import shares_audit_transaction
from backends.support.dbfile import connect_db
from backends.support.redact import redact_obj
from backends.support.timeutil import now_iso
from console.domain import AuditEvent

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


CRASH_ENV = "MRC_CRASH_AT"


def crash_point(name: str) -> None:
    """Tests set MRC_CRASH_AT=<name> (e.g. move:after-write) to kill -9 this process exactly there."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


WAIT_ENV, WAIT_FILE_ENV = "MRC_WAIT_AT", "MRC_WAIT_FILE"


def wait_point(name: str) -> None:
    """Tests set MRC_WAIT_AT=<name> and MRC_WAIT_FILE=<path>: this process waits there until the
    file exists, so that racing processes all read before any of them writes."""
    if os.environ.get(WAIT_ENV) != name:
        return
    path = os.environ.get(WAIT_FILE_ENV, "")
    with open(f"{path}.{os.getpid()}.waiting", "w"):  # tells the test this process has arrived
        pass
    deadline = time.monotonic() + 300
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


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
        for attempt in range(8):
            conn = connect(self.db_path)
            try:
                conn.execute("BEGIN IMMEDIATE")
                event = self.append_in(conn, actor, action, model, version, details)
                conn.execute("COMMIT")
                return event
            except sqlite3.OperationalError as exc:  # locked past busy_timeout: back off and retry
                conn.execute("ROLLBACK") if conn.in_transaction else None
                if attempt == 7:
                    raise
                time.sleep(0.05 * 2**attempt)
            finally:
                conn.close()
        raise RuntimeError("unreachable")

    def append_in(self, conn: sqlite3.Connection, actor: str, action: str, model: str = "", version: str = "",
                  details: dict[str, Any] | None = None) -> AuditEvent:
        """Append inside the caller's open write transaction on this database (no BEGIN, no COMMIT):
        the event commits with whatever else that transaction wrote, or not at all."""
        # Round-trip through JSON so the hashed form is the stored form; a URL credential in a
        # detail (an endpoint in an error, a git remote) is masked before it is stored for good.
        details = redact_obj(json.loads(json.dumps(details or {}, sort_keys=True, default=str)))
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
        return AuditEvent(seq, at, actor, action, model, version, details, prev, digest)

    def shares_database_with(self, registry: Any) -> bool:
        """True when the registry writes in this log's SQLite file and takes `audit=` hooks."""
        if not shares_audit_transaction(registry):
            return False
        try:
            return os.path.samefile(str(registry.db_path), self.db_path)
        except OSError:
            return False

    def events(self, *, model: str | None = None, limit: int | None = None) -> list[AuditEvent]:
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


# ---------------------------------------------------------------------------------------------
# Intents: a write to a registry in another place (MLflow, S3) cannot share our transaction, so
# the intent is committed here first, the write is made, then the event commits with the intent
# marked done. An intent left open by a process that died is reconciled on the next run: the
# registry is asked whether the write happened (event appended, marked reconciled) or not
# (intent marked abandoned).

INTENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_intents (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    write TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'open',
    event_seq INTEGER,
    note TEXT NOT NULL DEFAULT ''
)
"""


@dataclass
class Intent:
    id: int
    at: str
    pid: int
    host: str
    actor: str
    action: str
    model: str
    version: str
    write: dict[str, Any]  # {"kind": "pointer", alias, expected, new, reason} | {"kind": "approval", status, by, at}
    details: dict[str, Any]
    state: str = "open"
    event_seq: int | None = None
    note: str = ""


def _host() -> str:
    return os.uname().nodename


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has finished: it will never complete its write
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _write_tx(db_path: str, fn):
    for attempt in range(8):
        conn = connect(db_path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except sqlite3.OperationalError:
            conn.execute("ROLLBACK") if conn.in_transaction else None
            if attempt == 7:
                raise
            time.sleep(0.05 * 2**attempt)
        except BaseException:
            conn.execute("ROLLBACK") if conn.in_transaction else None
            raise
        finally:
            conn.close()
    raise RuntimeError("unreachable")


def record_intent(log: AuditLog, actor: str, action: str, model: str, version: str,
                  write: dict[str, Any], details: dict[str, Any]) -> int:
    def insert(conn: sqlite3.Connection) -> int:
        conn.execute(INTENT_SCHEMA)
        cur = conn.execute(
            "INSERT INTO audit_intents (at, pid, host, actor, action, model, version, write, details)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (now_iso(), os.getpid(), _host(), actor, action, model, version,
             json.dumps(write, sort_keys=True), json.dumps(details, sort_keys=True, default=str)))
        return int(cur.lastrowid)

    return _write_tx(log.db_path, insert)


def commit_intent(log: AuditLog, intent_id: int, actor: str, action: str, model: str, version: str,
                  details: dict[str, Any], *, state: str = "committed") -> AuditEvent | None:
    """The event and the intent's new state in one transaction; None if it was settled already."""
    def finish(conn: sqlite3.Connection) -> AuditEvent | None:
        row = conn.execute("SELECT state FROM audit_intents WHERE id = ?", (intent_id,)).fetchone()
        if row is None or row[0] != "open":
            return None  # another run settled it first
        event = log.append_in(conn, actor, action, model, version, details)
        conn.execute("UPDATE audit_intents SET state = ?, event_seq = ? WHERE id = ? AND state = 'open'",
                     (state, event.seq, intent_id))
        return event

    return _write_tx(log.db_path, finish)


def abandon_intent(log: AuditLog, intent_id: int, note: str) -> None:
    _write_tx(log.db_path, lambda conn: conn.execute(
        "UPDATE audit_intents SET state = 'abandoned', note = ? WHERE id = ? AND state = 'open'", (note, intent_id)))


def intents(log: AuditLog, *, state: str | None = None) -> list[Intent]:
    """Read only: no table, no intents (a read never creates one)."""
    if not os.path.exists(log.db_path):
        return []
    conn = connect(log.db_path)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_intents'").fetchone() is None:
            return []
        sql = ("SELECT id, at, pid, host, actor, action, model, version, write, details, state, event_seq, note"
               " FROM audit_intents")
        rows = conn.execute(sql + (" WHERE state = ?" if state else "") + " ORDER BY id",
                            (state,) if state else ()).fetchall()
    finally:
        conn.close()
    return [Intent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _loads(r[8]), _loads(r[9]), r[10], r[11], r[12])
            for r in rows]


def _landed_move(registry, intent: Intent):
    """The registry's move that this intent asked for, if it happened."""
    w = intent.write
    for move in reversed(registry.pointer_history(intent.model, w["alias"])):
        if (move.from_version == w.get("expected") and move.to_version == w.get("new")
                and move.actor == intent.actor and (move.reason or "") == (w.get("reason") or "")
                and _not_before(move.at, intent.at)):
            return move
    return None


def _not_before(at: str, since: str) -> bool:
    from datetime import datetime

    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")) >= datetime.fromisoformat(since.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return True  # an unparseable stamp: the other fields decide


def reconcile(log: AuditLog, registry) -> list[dict[str, Any]]:
    """Settle every open intent whose process is gone: the write happened -> its event, marked
    reconciled; it did not -> the intent is abandoned. Intents of live processes are left alone."""
    settled = []
    for intent in intents(log, state="open"):
        if intent.host == _host() and _pid_running(intent.pid) and intent.pid != os.getpid():
            continue  # still in flight in another process
        details = dict(intent.details, reconciled=True, intent=intent.id)
        if intent.write.get("kind") == "pointer":
            move = _landed_move(registry, intent)
            landed = move is not None
            if move is not None:
                details.update({"alias": move.alias, "from": move.from_version, "to": move.to_version,
                                "move_seq": move.seq})
        else:
            approval = registry.get_version(intent.model, intent.version).approval
            landed = (approval.status, approval.by, approval.at) == (
                intent.write.get("status"), intent.write.get("by"), intent.write.get("at"))
        if landed:
            event = commit_intent(log, intent.id, intent.actor, intent.action, intent.model, intent.version, details,
                                  state="reconciled")
            if event is not None:
                settled.append({"intent": intent.id, "state": "reconciled", "event": event.seq})
        else:
            abandon_intent(log, intent.id, "the registry shows no such write")
            settled.append({"intent": intent.id, "state": "abandoned"})
    return settled
