"""The CLI tier: exit codes, --json shapes, one-line errors and read-only digests of `mrc` commands."""

from __future__ import annotations

from tests.support.tiers import mark_folder
from tests.support.policy import local_ws  # noqa: F401  (fixtures)
from tests.support.pilot import empty_ws, release_ws  # noqa: F401  (fixtures)


def pytest_collection_modifyitems(items):
    mark_folder(items, __file__, "cli")
