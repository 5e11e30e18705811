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


def group_folder(items: list[pytest.Item], conftest_file: str, group: str) -> None:
    """Send every test under this folder to one xdist worker (`--dist=loadgroup`): for folders whose
    session or module fixtures are expensive (a control plane, torch-trained stories, served models)
    and would otherwise be built once per worker."""
    folder = Path(conftest_file).resolve().parent
    for item in items:
        if folder in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.xdist_group(group))
