"""The embedded registry: SQLite (mrc.db) + the content-addressed artifact store.

Versions, models and approvals go through SQLModel. Pointer reads and moves use the stdlib
sqlite3 module on the same tables: the rollback path must not wait on importing SQLAlchemy and
pydantic (≈ 0.4 s), and a pointer move is one conditional UPDATE either way.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from backends.base import (
    PRODUCTION,
    Approval,
    Artifact,
    BadInputError,
    ConflictError,
    IntegrityError,
    Lineage,
    ModelOverview,
    ModelSummary,
    ModelVersion,
    NotFoundError,
    PointerMove,
    check_name,
)
from backends.local.artifacts import ArtifactStore, sha256_file
from backends.support.dbfile import connect_db
from backends.support.timeutil import now_iso

VERSION_COLUMNS = ("model", "version", "created_at", "artifact_uri", "artifact_sha256", "artifact_size",
                   "artifact_format", "metrics_json", "lineage_json", "description", "approval_status", "approval_by",
                   "approval_at", "approval_reason", "approval_gate_sha256", "approval_override")


# Called inside the write transaction with (connection, PointerMove | Approval): the caller's
# audit append shares the commit. The registry knows nothing of the audit log's format.
AuditHook = Callable[[sqlite3.Connection, Any], None]

def _now() -> str:
    return now_iso()


class LocalRegistry:
    # move_pointer / set_approval take `audit=`: the event commits in the registry's own transaction
    audit_in_transaction = True

    def __init__(self, root: str | Path, config: dict[str, Any] | None = None):
        self.root = Path(root)
        self.db_path = str(self.root / "mrc.db")
        self.store = ArtifactStore(self.root / "artifacts")
        self.config = config or {}
        self._read_engine = None
        self._write_engine = None
        self._checked = False

    # -- plumbing --------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        from backends.local.tables import create_all  # sqlmodel + sqlalchemy: ~0.5 s, off the rollback path

        create_all(self.db_path)

    def _require_db(self) -> None:
        if self._checked:
            return
        if not Path(self.db_path).exists():
            raise NotFoundError(f"{self.db_path}: no registry here yet (run `mrc demo` or `mrc init`)")
        try:  # read-only probe: a garbage or unreadable file is bad input, not a traceback
            # a plain connection, not mode=ro: only a writable one removes the WAL files on close
            conn = connect_db(self.db_path, timeout=30)
            try:
                conn.execute("SELECT 1 FROM versions LIMIT 1").fetchall()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise BadInputError(f"{self.db_path}: not a readable mrc registry ({exc})") from None
        self._checked = True

    def _sqlite(self) -> sqlite3.Connection:
        self._require_db()
        conn = connect_db(self.db_path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def _session(self, *, write: bool):
        from sqlmodel import Session  # sqlmodel: ~0.4 s

        from backends.local.tables import make_engine  # sqlmodel tables: the rollback path reads with sqlite3

        self._require_db()
        if write:
            if self._write_engine is None:
                self._write_engine = make_engine(self.db_path, immediate=True)
            return Session(self._write_engine)
        if self._read_engine is None:
            self._read_engine = make_engine(self.db_path, immediate=False)
        return Session(self._read_engine)

    def close(self) -> None:
        for engine in (self._read_engine, self._write_engine):
            if engine is not None:
                engine.dispose()
        self._read_engine = self._write_engine = None

    def caller_identity(self) -> str | None:
        """The OS user this process runs as: all a local SQLite file can know of its caller. From
        the effective uid, never $USER/$LOGNAME (getpass reads those: anyone can set them)."""
        import os
        import pwd

        try:
            return pwd.getpwuid(os.geteuid()).pw_name
        except (KeyError, OSError):
            return None

    # -- models and versions ---------------------------------------------------------------
    def list_models(self) -> list[ModelSummary]:
        conn = self._sqlite()
        try:
            rows = conn.execute(
                "SELECT m.name, (SELECT COUNT(*) FROM versions v WHERE v.model = m.name),"
                " COALESCE((SELECT MAX(at) FROM pointer_moves p WHERE p.model = m.name), m.created_at)"
                " FROM models m ORDER BY m.name"
            ).fetchall()
            pointers: dict[str, dict[str, str]] = {}
            for model, alias, version in conn.execute("SELECT model, alias, version FROM pointers"):
                if version is not None:
                    pointers.setdefault(model, {})[alias] = version
        finally:
            conn.close()
        return [ModelSummary(name, count, pointers.get(name, {}), updated) for name, count, updated in rows]

    def model_overviews(self) -> list[ModelOverview]:
        """Every model's summary, production history and pointed-at versions in one read
        transaction on one connection (home used to open two or three connections per model).
        console/overview.py builds the same records from the per-model reads; a test keeps
        the two equal."""
        conn = self._sqlite()
        try:
            conn.execute("BEGIN")  # one snapshot: a move landing mid-read cannot tear a row
            models = conn.execute(
                "SELECT m.name, (SELECT COUNT(*) FROM versions v WHERE v.model = m.name),"
                " COALESCE((SELECT MAX(at) FROM pointer_moves p WHERE p.model = m.name), m.created_at)"
                " FROM models m ORDER BY m.name"
            ).fetchall()
            pointers = conn.execute("SELECT model, alias, version FROM pointers WHERE version IS NOT NULL"
                                    " ORDER BY model, alias").fetchall()
            moves = conn.execute(
                "SELECT model, alias, from_version, to_version, actor, at, reason, seq FROM pointer_moves"
                " WHERE alias = ? ORDER BY seq", (PRODUCTION,)).fetchall()
            rows = conn.execute(
                "WITH wanted(model, version) AS ("
                " SELECT model, version FROM pointers WHERE version IS NOT NULL"
                " UNION SELECT model, to_version FROM pointer_moves WHERE alias = ? AND to_version IS NOT NULL)"
                f" SELECT {', '.join('v.' + c for c in VERSION_COLUMNS)} FROM wanted w"
                " JOIN versions v ON v.model = w.model AND v.version = w.version ORDER BY v.id", (PRODUCTION,)
            ).fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()
        by_model: dict[str, dict[str, str]] = {}
        aliases: dict[tuple[str, str], list[str]] = {}
        for model, alias, version in pointers:
            by_model.setdefault(model, {})[alias] = version
            aliases.setdefault((model, version), []).append(alias)
        history: dict[str, list[PointerMove]] = {}
        for row in moves:
            history.setdefault(row[0], []).append(PointerMove(*row))
        versions: dict[str, dict[str, ModelVersion]] = {}
        for row in rows:
            mv = self._to_version(SimpleNamespace(**dict(zip(VERSION_COLUMNS, row))))
            mv.aliases = aliases.get((mv.model, mv.version), [])
            versions.setdefault(mv.model, {})[mv.version] = mv
        return [ModelOverview(ModelSummary(name, count, by_model.get(name, {}), updated),
                              history.get(name, []), versions.get(name, {}))
                for name, count, updated in models]

    def list_all_versions(self) -> dict[str, list[ModelVersion]]:
        """Every model's list_versions() in one query on one connection (home's version list;
        model by model it was one connection each)."""
        conn = self._sqlite()
        try:
            conn.execute("BEGIN")
            rows = conn.execute(f"SELECT {', '.join('v.' + c for c in VERSION_COLUMNS)} FROM versions v"
                                " JOIN models m ON m.name = v.model ORDER BY v.model, v.id").fetchall()
            pointers = conn.execute("SELECT model, alias, version FROM pointers WHERE version IS NOT NULL"
                                    " ORDER BY model, alias").fetchall()
            models = [name for (name,) in conn.execute("SELECT name FROM models ORDER BY name")]
            conn.execute("COMMIT")
        finally:
            conn.close()
        aliases: dict[tuple[str, str], list[str]] = {}
        for model, alias, version in pointers:
            aliases.setdefault((model, version), []).append(alias)
        out: dict[str, list[ModelVersion]] = {name: [] for name in models}
        for row in rows:
            mv = self._to_version(SimpleNamespace(**dict(zip(VERSION_COLUMNS, row))))
            mv.aliases = aliases.get((mv.model, mv.version), [])
            out[mv.model].append(mv)
        return out

    def _require_model(self, conn: sqlite3.Connection, model: str) -> None:
        check_name(model, "model")
        if conn.execute("SELECT 1 FROM models WHERE name = ?", (model,)).fetchone() is None:
            raise NotFoundError(f"unknown model {model!r}")

    def list_versions(self, model: str) -> list[ModelVersion]:
        check_name(model, "model")
        return self._read_versions(model, None)

    def get_version(self, model: str, version: str) -> ModelVersion:
        """One row through stdlib sqlite3: the rollback path checks approvals and artifacts with it."""
        check_name(model, "model")
        check_name(version, "version")
        found = self._read_versions(model, version)
        if not found:
            raise NotFoundError(f"unknown version {version!r} of model {model!r}")
        return found[0]

    def _read_versions(self, model: str, version: str | None) -> list[ModelVersion]:
        """Plain sqlite3, as the other reads: the console's home and review never import the ORM."""
        conn = self._sqlite()
        try:
            self._require_model(conn, model)
            sql = f"SELECT {', '.join(VERSION_COLUMNS)} FROM versions WHERE model = ?"
            args: list[Any] = [model]
            if version is not None:
                sql += " AND version = ?"
                args.append(version)
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
            pointers = conn.execute("SELECT alias, version FROM pointers WHERE model = ? ORDER BY alias", (model,)).fetchall()
        finally:
            conn.close()
        aliases: dict[str, list[str]] = {}
        for alias, pointed in pointers:
            if pointed is not None:
                aliases.setdefault(pointed, []).append(alias)
        versions = [self._to_version(SimpleNamespace(**dict(zip(VERSION_COLUMNS, row)))) for row in rows]
        for v in versions:
            v.aliases = aliases.get(v.version, [])
        return versions

    def _aliases_by_version(self, model: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for alias, version in self.get_pointers(model).items():
            out.setdefault(version, []).append(alias)
        return out

    def _to_version(self, row) -> ModelVersion:
        # stored relative to the workspace, so a copied or moved workspace still finds its bytes
        uri = (self.root / row.artifact_uri).as_uri() if not row.artifact_uri.startswith("file:") else row.artifact_uri
        return ModelVersion(
            model=row.model,
            version=row.version,
            created_at=row.created_at,
            artifact=Artifact(uri, row.artifact_sha256, row.artifact_size, row.artifact_format),
            metrics=json.loads(row.metrics_json),
            lineage=Lineage.from_dict(json.loads(row.lineage_json)),
            approval=Approval(
                row.approval_status, row.approval_by, row.approval_at, row.approval_reason,
                row.approval_gate_sha256, bool(row.approval_override),
            ),
            description=row.description,
        )

    def register_version(
        self,
        model: str,
        artifact_path: str,
        *,
        metrics: dict[str, float],
        lineage: Lineage,
        version: str | None = None,
        description: str = "",
        artifact_format: str = "torch-mlp-v1",
    ) -> ModelVersion:
        check_name(model, "model")
        if version is not None:
            check_name(version, "version")
        if not Path(artifact_path).is_file():
            raise BadInputError(f"{artifact_path}: artifact file does not exist")
        for key, value in metrics.items():
            if not isinstance(value, (int, float)) or value != value:
                raise BadInputError(f"metrics.{key}: must be a number, got {value!r}")
        from sqlalchemy import func  # sqlalchemy: ~0.4 s
        from sqlmodel import select

        from backends.local.tables import ModelRow, VersionRow  # sqlmodel tables, deferred with sqlmodel

        sha, size, stored = self.store.put(artifact_path)
        now = _now()
        with self._session(write=True) as session:
            if session.get(ModelRow, model) is None:
                session.add(ModelRow(name=model, created_at=now))
            if version is None:
                count = session.exec(select(func.count()).select_from(VersionRow).where(VersionRow.model == model)).one()
                version = str(count + 1)
                while session.exec(
                    select(VersionRow).where(VersionRow.model == model, VersionRow.version == version)
                ).first():
                    version = str(int(version) + 1)
            elif session.exec(select(VersionRow).where(VersionRow.model == model, VersionRow.version == version)).first():
                raise BadInputError(f"version {version!r} of model {model!r} already exists (versions are immutable)")
            row = VersionRow(
                model=model, version=version, created_at=now,
                artifact_uri=str(stored.relative_to(self.root)), artifact_sha256=sha, artifact_size=size, artifact_format=artifact_format,
                metrics_json=json.dumps({k: float(v) for k, v in metrics.items()}, sort_keys=True),
                lineage_json=json.dumps(lineage.to_dict(), sort_keys=True), description=description,
            )
            session.add(row)
            session.commit()
            session.refresh(row)
            return self._to_version(row)

    def set_approval(self, model: str, version: str, approval: Approval, *, expected_status: str | None,
                     audit: AuditHook | None = None) -> Approval:
        """Compare-and-swap on the status the caller saw. `audit(conn, approval)` runs inside the
        same transaction, so the approval and its audit event commit together or not at all."""
        check_name(model, "model")
        check_name(version, "version")
        stored = Approval(approval.status, approval.by, approval.at or _now(), approval.reason,
                          approval.gate_report_sha256, bool(approval.override))

        def write(conn: sqlite3.Connection) -> Approval:
            row = conn.execute("SELECT approval_status FROM versions WHERE model = ? AND version = ?",
                               (model, version)).fetchone()
            if row is None:
                raise NotFoundError(f"unknown version {version!r} of model {model!r}")
            if expected_status is not None and row[0] != expected_status:
                raise ConflictError(
                    f"{model} {version}: approval is {row[0]!r} now, not {expected_status!r}",
                    expected=expected_status, actual=row[0],
                )
            conn.execute(
                "UPDATE versions SET approval_status = ?, approval_by = ?, approval_at = ?, approval_reason = ?,"
                " approval_gate_sha256 = ?, approval_override = ? WHERE model = ? AND version = ?",
                (stored.status, stored.by, stored.at, stored.reason, stored.gate_report_sha256,
                 int(stored.override), model, version),
            )
            if audit is not None:
                audit(conn, stored)
            return stored

        return self._write(model, write)

    def fetch_artifact(self, model: str, version: str, dest_dir: str | None = None) -> str:
        mv = self.get_version(model, version)
        path = self.store.verified_path(mv.artifact.sha256)
        if dest_dir is None:
            return str(path)
        dest = Path(dest_dir) / f"{model}-{version}.pt"
        shutil.copyfile(path, dest)
        return str(dest)

    def verify_artifact(self, model: str, version: str, *, read: ModelVersion | None = None) -> Artifact:
        """The bytes where the version records them still hash to its sha256 (IntegrityError if not).
        `read` (capabilities.VerifiesArtifacts): unused, the file is hashed where it lies."""
        mv = self.get_version(model, version)
        uri = mv.artifact.uri
        if not uri.startswith("file:"):
            self.store.verified_path(mv.artifact.sha256)
            return mv.artifact
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(uri).path))
        if not path.is_file():
            raise IntegrityError(f"{model} {version}: artifact {path} is missing")
        actual, _ = sha256_file(path)
        if actual != mv.artifact.sha256:
            raise IntegrityError(f"{model} {version}: artifact {path} hashes to {actual[:12]}…, "
                                 f"recorded {mv.artifact.sha256[:12]}… (corrupted)")
        return mv.artifact

    # -- pointers: stdlib sqlite3 only (the rollback path) ---------------------------------
    def get_pointers(self, model: str) -> dict[str, str]:
        conn = self._sqlite()
        try:
            self._require_model(conn, model)
            rows = conn.execute("SELECT alias, version FROM pointers WHERE model = ?", (model,)).fetchall()
        finally:
            conn.close()
        return {alias: version for alias, version in rows if version is not None}

    def move_pointer(self, model: str, alias: str, *, expected: str | None, new: str | None,
                     actor: str, reason: str = "", audit: AuditHook | None = None,
                     approval: Approval | None = None) -> PointerMove:
        """Compare-and-swap on `expected`. `audit(conn, move)` runs inside the same transaction,
        so the move and its audit event commit together or not at all. With `approval` (what the
        caller judged), `new`'s approval row is re-read in that transaction too: one CAS."""
        check_name(alias, "alias")
        if new is not None:
            check_name(new, "version")

        def write(conn: sqlite3.Connection) -> PointerMove:
            if new is not None and conn.execute(
                "SELECT 1 FROM versions WHERE model = ? AND version = ?", (model, new)
            ).fetchone() is None:
                raise NotFoundError(f"unknown version {new!r} of model {model!r}")
            if approval is not None and new is not None:
                _check_approval(conn, model, new, approval)  # same transaction as the move: one CAS
            row = conn.execute("SELECT version FROM pointers WHERE model = ? AND alias = ?", (model, alias)).fetchone()
            current = row[0] if row else None
            if current != expected:
                raise ConflictError(
                    f"{model}: {alias} points at {current or 'nothing'} now, not {expected or 'nothing'}"
                    " (someone else moved it first)",
                    expected=expected, actual=current,
                )
            at = _now()
            conn.execute(
                "INSERT INTO pointers (model, alias, version, revision, updated_at) VALUES (?,?,?,1,?)"
                " ON CONFLICT(model, alias) DO UPDATE SET version = excluded.version,"
                " revision = pointers.revision + 1, updated_at = excluded.updated_at",
                (model, alias, new, at),
            )
            cur = conn.execute(
                "INSERT INTO pointer_moves (model, alias, from_version, to_version, actor, at, reason)"
                " VALUES (?,?,?,?,?,?,?)",
                (model, alias, current, new, actor, at, reason),
            )
            move = PointerMove(model, alias, current, new, actor, at, reason, cur.lastrowid)
            if audit is not None:
                audit(conn, move)
            return move

        return self._write(model, write)

    def _write(self, model: str, write: Callable[[sqlite3.Connection], Any]) -> Any:
        """One `BEGIN IMMEDIATE` transaction around `write(conn)`, retried with backoff while locked."""
        for attempt in range(6):
            conn = self._sqlite()
            try:
                conn.execute("BEGIN IMMEDIATE")
                self._require_model(conn, model)
                result = write(conn)
                conn.execute("COMMIT")
                return result
            except sqlite3.OperationalError:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if attempt == 5:
                    raise
                time.sleep(0.05 * 2**attempt)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                conn.close()
        raise RuntimeError("unreachable")

    def pointer_history(self, model: str, alias: str | None = None) -> list[PointerMove]:
        conn = self._sqlite()
        try:
            self._require_model(conn, model)
            sql = "SELECT model, alias, from_version, to_version, actor, at, reason, seq FROM pointer_moves WHERE model = ?"
            args: list[Any] = [model]
            if alias:
                sql += " AND alias = ?"
                args.append(alias)
            rows = conn.execute(sql + " ORDER BY seq", args).fetchall()
        finally:
            conn.close()
        return [PointerMove(*r) for r in rows]


def _check_approval(conn: sqlite3.Connection, model: str, version: str, seen: Approval) -> None:
    """ConflictError unless the version's approval row is still the one the caller judged."""
    row = conn.execute(
        "SELECT approval_status, approval_by, approval_at, approval_gate_sha256, approval_override"
        " FROM versions WHERE model = ? AND version = ?", (model, version)).fetchone()
    now = (row[0], row[1], row[2], row[3], bool(row[4]))
    if now != (seen.status, seen.by, seen.at, seen.gate_report_sha256, bool(seen.override)):
        raise ConflictError(
            f"{model} {version}: approval changed since it was read ({seen.status} -> {row[0]} by {row[1] or '?'});"
            " the move was not made", expected=seen.status, actual=row[0])
