"""The speed tests use the real servers of tests/remote (one per session, stopped at the end)."""

from tests.remote.fixtures import _remote_credentials, mlflow_server, mlflow_workspace  # noqa: F401  (fixtures)
from tests.tui.conftest import release_ws  # noqa: F401,E402  (fixture)
