"""The canary controller's lease: a heartbeat row in mrc.db that the controller renews while it
judges. A live canary whose controller is gone (Ctrl-C, --max-seconds, a crash, kill -9) or has
stopped beating is UNJUDGED: traffic sits at a split nobody is watching. `unjudged_reason` is
the pure judgement; the rest is stdlib sqlite3 (the rollback path and `mrc models` read it).
"""

from __future__ import annotations

import sqlite3
import time

from backends.support.dbfile import connect_db

HEARTBEAT_S = 10.0  # the controller beats at least this often (its loop never sleeps longer)
LEASE_S = 60.0  # a lease not renewed for this long has lapsed: six missed beats, never a slow tick

SCHEMA = """
CREATE TABLE IF NOT EXISTS canary_leases (
    canary_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    heartbeat REAL NOT NULL
)
"""


def beat(db_path: str, canary_id: str, pid: int, now: float | None = None) -> None:
    """Renew the lease (best effort: a locked database is retried by the next beat)."""
    try:
        conn = connect_db(db_path, timeout=5, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        conn.execute(SCHEMA)
        conn.execute("INSERT INTO canary_leases (canary_id, pid, heartbeat) VALUES (?,?,?) ON CONFLICT(canary_id) "
                     "DO UPDATE SET pid = excluded.pid, heartbeat = excluded.heartbeat",
                     (canary_id, int(pid), time.time() if now is None else now))
    except sqlite3.Error:
        pass
    finally:
        conn.close()


def read_lease(db_path: str, canary_id: str) -> tuple[int, float] | None:
    """(pid, last heartbeat) of the canary's lease; None when it never had one."""
    try:
        conn = connect_db(db_path, timeout=5)
    except sqlite3.Error:
        return None
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'canary_leases'").fetchone() is None:
            return None
        row = conn.execute("SELECT pid, heartbeat FROM canary_leases WHERE canary_id = ?", (canary_id,)).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return (int(row[0]), float(row[1])) if row else None


def unjudged_reason(active: bool, controller_pid: int, controller_alive: bool, lease: tuple[int, float] | None,
                    now: float, lease_s: float = LEASE_S) -> str | None:
    """Pure: why a live canary has nobody judging it, or None when its controller holds the lease."""
    if not active:
        return None
    if not controller_alive:
        return f"its controller (pid {controller_pid or '?'}) is gone"
    if lease is None:
        return None  # a canary started before leases existed: its live pid is all there is to go on
    silent = now - lease[1]
    if silent > lease_s:
        return f"its controller (pid {controller_pid}) has not renewed its lease for {silent:.0f} s"
    return None
