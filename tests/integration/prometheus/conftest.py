"""Metrics read from a real Prometheus (preloaded by backfill, or scraping a live exporter)."""

from tests.support.prometheus import preloaded_prometheus, scraping_prometheus  # noqa: F401  (fixtures)
from tests.support.canary import controllers, load, served_ws  # noqa: F401  (fixtures)
