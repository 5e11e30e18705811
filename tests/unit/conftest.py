"""The unit tier: pure cores, no subprocess, no server, no Pilot; the whole tier runs in well under a minute."""

from __future__ import annotations

from tests.support.tiers import mark_folder


def pytest_collection_modifyitems(items):
    mark_folder(items, __file__, "unit")
