"""`mrc watch` retrains with real torch training on drifted data."""

from tests.support.watch import production_ws, story  # noqa: F401  (fixtures)
