"""One sha256 for an artifact that is a file or a folder (an MLflow model). stdlib only.

A folder's digest covers its sorted relative paths and their bytes, so the same tree gives the
same digest wherever it was downloaded, and a renamed or edited file changes it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20


def artifact_sha256(path: str | os.PathLike) -> tuple[str, int]:
    """(sha256 hex, total bytes) of a file, or of a folder's tree."""
    root = Path(path)
    if root.is_file():
        digest, size = hashlib.sha256(), 0
        with open(root, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size
    tree, size = hashlib.sha256(), 0
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        relative = file.relative_to(root).as_posix().encode()
        file_sha, file_size = artifact_sha256(file)
        tree.update(len(relative).to_bytes(4, "big") + relative + bytes.fromhex(file_sha))
        size += file_size
    return tree.hexdigest(), size
