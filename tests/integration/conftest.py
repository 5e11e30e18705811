"""The integration tier: real servers and processes on 127.0.0.1, one folder per area."""

from __future__ import annotations

import pytest

from tests.support.cli import run_process
from tests.support.tiers import mark_folder


def pytest_collection_modifyitems(items):
    mark_folder(items, __file__, "integration")


@pytest.fixture
def mrc():
    """mrc(...) -> Result as a real `python -m console.cli` process: this tier runs real processes."""
    return run_process
