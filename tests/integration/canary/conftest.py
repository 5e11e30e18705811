"""Canaries on real processes: model servers, the router, the load generator, the controller."""

from tests.support.canary import controllers, load, served_ws  # noqa: F401  (fixtures)
from tests.support.pilot import empty_ws, release_ws  # noqa: F401  (fixtures)
