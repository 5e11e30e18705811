"""SQLModel tables of the embedded registry (mrc.db), and the engine that opens them.

Writes go through `BEGIN IMMEDIATE` so that concurrent processes serialise on SQLite's write
lock instead of failing on a stale read snapshot.
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import UniqueConstraint, event
from sqlmodel import Field, SQLModel, create_engine

from backends.support.dbfile import connect_db


class ModelRow(SQLModel, table=True):
    __tablename__ = "models"
    name: str = Field(primary_key=True)
    created_at: str
    description: str = ""


class VersionRow(SQLModel, table=True):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model", "version"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    model: str = Field(index=True, foreign_key="models.name")
    version: str
    created_at: str
    artifact_uri: str
    artifact_sha256: str
    artifact_size: int
    artifact_format: str
    metrics_json: str = "{}"
    lineage_json: str = "{}"
    description: str = ""
    approval_status: str = "pending"
    approval_by: str = ""
    approval_at: str = ""
    approval_reason: str = ""
    approval_gate_sha256: str = ""
    approval_override: bool = False


class PointerRow(SQLModel, table=True):
    """alias -> version. `revision` grows by one on every move (what CAS compares on)."""

    __tablename__ = "pointers"
    model: str = Field(primary_key=True)
    alias: str = Field(primary_key=True)
    version: Optional[str] = None
    revision: int = 0
    updated_at: str = ""


class PointerMoveRow(SQLModel, table=True):
    __tablename__ = "pointer_moves"
    seq: Optional[int] = Field(default=None, primary_key=True)
    model: str = Field(index=True)
    alias: str
    from_version: Optional[str] = None
    to_version: Optional[str] = None
    actor: str
    at: str
    reason: str = ""


class DatasetRow(SQLModel, table=True):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    version: str
    sha256: str
    path: str  # relative to the workspace
    rows: int
    columns_json: str = "[]"
    label: str = ""
    created_at: str
    parent: str = ""
    note: str = ""


def make_engine(db_path: str, *, immediate: bool):
    from sqlalchemy.pool import NullPool  # sqlalchemy: ~0.4 s

    # NullPool: a session's connection closes with the session. A pooled idle connection would keep
    # mrc.db-wal / mrc.db-shm beside the database (a read-only session leaving files behind) until
    # the engine happens to be collected; opening a SQLite file costs microseconds.

    engine = create_engine(f"sqlite:///{db_path}", poolclass=NullPool,  # creator: read-only folders too
                           creator=lambda: connect_db(db_path, timeout=30, check_same_thread=False))

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # let us issue BEGIN ourselves
        dbapi_conn.execute("PRAGMA busy_timeout = 30000")
        dbapi_conn.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_all(db_path: str) -> None:
    import sqlite3

    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    engine = make_engine(db_path, immediate=True)
    SQLModel.metadata.create_all(engine)
    engine.dispose()
