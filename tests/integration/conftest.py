"""The integration tier: real servers and processes on 127.0.0.1, one folder per area."""

from __future__ import annotations

from tests.support.tiers import mark_folder


def pytest_collection_modifyitems(items):
    mark_folder(items, __file__, "integration")
