"""`mrc watch` retrains with real torch training on drifted data."""

from tests.support.watch import production_ws, story  # noqa: F401  (fixtures)
from tests.support.tiers import group_folder  # noqa: E402


def pytest_collection_modifyitems(items):
    group_folder(items, __file__, "watch-story")  # the session's watch story trains torch three times: once per run
