"""The console tier: Textual's Pilot on real workspaces, and one snapshot per screen and critical state."""

from __future__ import annotations

from tests.support.tiers import mark_folder
from tests.support.pilot import empty_ws, release_ws  # noqa: F401  (fixtures)


def pytest_collection_modifyitems(items):
    mark_folder(items, __file__, "tui")
