"""Markers by folder: each tier's conftest.py marks every test collected under it, so a new file
cannot forget its marker (`pytest -m unit`, `pytest -m "not integration and not e2e"`)."""

from __future__ import annotations

from pathlib import Path

import pytest


def mark_folder(items: list[pytest.Item], conftest_file: str, marker: str) -> None:
    """Add `marker` to the items whose file lies under the folder of `conftest_file`.
    (pytest_collection_modifyitems sees every item of the session, not only this folder's.)"""
    folder = Path(conftest_file).resolve().parent
    mark = getattr(pytest.mark, marker)
    for item in items:
        if folder in Path(str(item.path)).resolve().parents:
            item.add_marker(mark)
