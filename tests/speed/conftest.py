"""The speed tests use the real servers of tests/remote (one per session, stopped at the end)."""

from tests.remote.fixtures import _remote_credentials, mlflow_server, mlflow_workspace  # noqa: F401  (fixtures)
