"""Remote registries against real servers: one MLflow server and one SeaweedFS `weed mini` per
session on 127.0.0.1 (see servers.py), stopped at the end, also on failure."""

from tests.remote.fixtures import (  # noqa: F401  (fixtures)
    _remote_credentials,
    mlflow_server,
    mlflow_workspace,
    s3_server,
    s3_workspace,
)
