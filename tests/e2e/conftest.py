"""The end-to-end tier: the real demo build (torch training), the tmux walk-through, a real k8s control plane."""

from __future__ import annotations

import pytest

from tests.support.cli import run_process
from tests.support.tiers import mark_folder


def pytest_collection_modifyitems(items):
    mark_folder(items, __file__, "e2e")


@pytest.fixture
def mrc():
    """mrc(...) -> Result as a real `python -m console.cli` process: this tier runs real processes."""
    return run_process
