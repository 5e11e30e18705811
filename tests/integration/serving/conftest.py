"""Model servers and the router as real processes, on models mrc did and did not make."""

from tests.support.serving import cancer, cleanup_serving, spawn  # noqa: F401  (fixtures)
from tests.support.remote import _remote_credentials, mlflow_server, mlflow_workspace, s3_server, s3_workspace  # noqa: F401  (fixtures)
