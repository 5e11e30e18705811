"""A content-addressed artifact store: artifacts/<sha256[:2]>/<sha256>. Immutable once written."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from backends.base import IntegrityError, NotFoundError
from backends.support.files import sha256_file



class ArtifactStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise IntegrityError(f"artifact sha256 {sha256!r} is not a sha256 digest")
        return self.root / sha256[:2] / sha256

    def put(self, source: str | os.PathLike) -> tuple[str, int, Path]:
        """Copy a file in; return (sha256, size, stored path). Idempotent for equal bytes."""
        sha, size = sha256_file(source)
        dest = self.path_for(sha)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
            os.close(fd)
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)  # atomic: readers never see half a file
        return sha, size, dest

    def verified_path(self, sha256: str) -> Path:
        """The stored file, after checking its bytes still hash to its name."""
        path = self.path_for(sha256)
        if not path.exists():
            raise NotFoundError(f"artifact {path}: missing from the store")
        actual, _ = sha256_file(path)
        if actual != sha256:
            raise IntegrityError(f"artifact {path}: sha256 is {actual[:12]}…, expected {sha256[:12]}… (corrupted)")
        return path
