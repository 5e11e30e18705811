"""Shadow traffic through mrc's real router and model servers."""

from tests.support.shadow import cancer, models, served  # noqa: F401  (fixtures)
