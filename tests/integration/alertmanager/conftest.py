"""Alerts in a real Alertmanager and webhook receivers, from real canaries and `mrc watch`."""

from tests.support.alerts import alertmanager, webhook  # noqa: F401  (fixtures)
from tests.support.canary import controllers, load, served_ws  # noqa: F401  (fixtures)
from tests.support.watch import production_ws, story  # noqa: F401  (fixtures)
