"""Shadow traffic through mrc's real router and model servers."""

from tests.support.shadow import cancer, models, served  # noqa: F401  (fixtures)
from tests.support.tiers import group_folder  # noqa: E402


def pytest_collection_modifyitems(items):
    group_folder(items, __file__, "shadow-servers")  # the module's served models start once, not once per worker
