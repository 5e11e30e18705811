"""Versioned datasets in the workspace: data/<name>/<version>.csv, each with its sha256.

A dataset reference is "name@version". Files are immutable: a new version is a new file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends.base import BadInputError, NotFoundError, Record, check_name
from backends.support.dbfile import connect_db
from backends.support.files import sha256_file
from backends.support.stall import stall_point
from backends.support.timeutil import now_iso


def read_csv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """A numeric CSV with a header row -> (columns, 2-D float array)."""
    path = Path(path)
    try:
        with open(path) as fh:
            header = fh.readline().strip()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({exc.strerror})") from None
    if not header:
        raise BadInputError(f"{path}: empty file")
    columns = header.split(",")
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as exc:
        raise BadInputError(f"{path}: not a numeric CSV ({exc})") from None
    if data.shape[1] != len(columns):
        raise BadInputError(f"{path}: header has {len(columns)} columns, rows have {data.shape[1]}")
    return columns, data


def write_csv(path: str | os.PathLike, columns: list[str], data: np.ndarray) -> None:
    np.savetxt(path, data, delimiter=",", header=",".join(columns), comments="", fmt="%.10g")


def parse_ref(ref: str) -> tuple[str, str]:
    name, sep, version = ref.partition("@")
    if not sep:
        raise BadInputError(f"dataset {ref!r}: expected name@version")
    return check_name(name, "dataset"), check_name(version, "dataset version")


@dataclass
class Dataset(Record):
    name: str
    version: str
    sha256: str
    path: str
    rows: int
    columns: list[str]
    label: str
    created_at: str
    parent: str = ""
    note: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class DatasetStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.db_path = self.root / "mrc.db"

    def _conn(self) -> sqlite3.Connection:
        if not self.db_path.exists():
            raise NotFoundError(f"{self.db_path}: no workspace database")
        conn = connect_db(self.db_path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def add(self, name: str, version: str, columns: list[str], data: np.ndarray, *, label: str = "",
            parent: str = "", note: str = "", in_transaction=None) -> Dataset:
        """File then row, under the database's write lock: the row is what makes the version exist.
        A file with no row is an orphan of a run killed between the two (nothing can reference
        it): it is replaced, never a reason to refuse the name forever. `in_transaction(conn, ds)`
        (the audit event) commits with the row."""
        check_name(name, "dataset")
        check_name(version, "dataset version")
        folder = self.root / "data" / name
        path = folder / f"{version}.csv"
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")  # one writer from the check to the row: no other add races the orphan
            exists = conn.execute("SELECT 1 FROM datasets WHERE name = ? AND version = ?", (name, version)).fetchone()
            if exists:
                raise BadInputError(f"dataset {name}@{version} already exists (datasets are immutable)")
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{version}.csv.tmp"
            write_csv(tmp, columns, data)
            os.replace(tmp, path)  # over an orphan file, if a killed run left one
            sha, _ = sha256_file(path)
            ds = Dataset(name, version, sha, str(path.relative_to(self.root)), int(data.shape[0]), list(columns),
                         label, now_iso(), parent, note)

            stall_point("datasets:file-written")  # tests: killed here, the file has no row
            conn.execute(
                "INSERT INTO datasets (name, version, sha256, path, rows, columns_json, label, created_at, parent, note)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (name, version, sha, ds.path, ds.rows, json.dumps(columns), label, ds.created_at, parent, note),
            )
            if in_transaction is not None:
                in_transaction(conn, ds)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
        return ds

    def list(self) -> list[Dataset]:
        conn = self._conn()
        try:
            rows = conn.execute(
                "SELECT name, version, sha256, path, rows, columns_json, label, created_at, parent, note"
                " FROM datasets ORDER BY name, id"
            ).fetchall()
        finally:
            conn.close()
        return [Dataset(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9]) for r in rows]

    def get(self, ref: str) -> Dataset:
        name, version = parse_ref(ref)
        for ds in self.list():
            if ds.name == name and ds.version == version:
                return ds
        raise NotFoundError(f"unknown dataset {ref!r}")

    def verified_path(self, ref: str) -> Path:
        ds = self.get(ref)
        path = self.root / ds.path
        actual, _ = sha256_file(path)
        if actual != ds.sha256:
            raise BadInputError(f"dataset {path}: sha256 no longer matches the recorded one (changed on disk)")
        return path

    def load(self, ref: str) -> tuple[Dataset, list[str], np.ndarray]:
        ds = self.get(ref)
        columns, data = read_csv(self.verified_path(ref))
        return ds, columns, data
