"""Session artefacts built once per test run, also under pytest-xdist, and paths only one test
at a time may use.

Under xdist every worker runs its own session, so a session fixture runs once per worker. What
is expensive (the real demo: torch training, ~20-60 s on 2 cores) is built by whichever worker
asks first, into the run's base temp that all workers share, while the others wait on a file
lock; then every worker reads the same copy.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock


def run_root(tmp_path_factory) -> Path:
    """The base temp of this run: shared by every xdist worker (each worker's own is a child)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """Run build(folder) once per test run and return the folder; callers copy, never write it."""
    root = run_root(tmp_path_factory)
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            if folder.exists():  # a build that failed half-way in another worker
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            build(folder)
            done.write_text("built\n")
    return folder


@contextmanager
def exclusive(path: Path) -> Iterator[Path]:
    """Hold a lock beside `path` (a fixed path, e.g. the snapshots' workspace) while a test uses it."""
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.parent.parent / f"{path.parent.name}.lock")):
        yield path
