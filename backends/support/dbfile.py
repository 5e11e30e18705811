"""Opening the workspace's SQLite file, also where the folder cannot be written.

A WAL database needs its `-shm` and `-wal` files to be read; in a folder the user cannot write
(a read-only mount, `chmod -w`) SQLite cannot create them and even a read fails with "unable to
open database file". There the file is opened read-only: with `mode=ro` when both files are
already there, else as immutable (no WAL file means nothing waits to be checkpointed, and nobody
without write access to the folder can start one). stdlib only: the rollback path opens it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote


def writable_folder(db_path: str | os.PathLike) -> bool:
    return os.access(Path(db_path).parent, os.W_OK)


def connect_db(db_path: str | os.PathLike, **kwargs) -> sqlite3.Connection:
    """sqlite3.connect(db_path, **kwargs), read-only where the database's folder is not writable."""
    path = str(db_path)
    if writable_folder(path) or not os.path.exists(path):
        return sqlite3.connect(path, **kwargs)
    mode = "ro" if os.path.exists(f"{path}-wal") and os.path.exists(f"{path}-shm") else "ro&immutable=1"
    return sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode={mode}", uri=True, **kwargs)
