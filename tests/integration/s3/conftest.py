"""Remote registries and audit anchors on a real S3 API (SeaweedFS)."""

from tests.support.remote import _remote_credentials, mlflow_server, mlflow_workspace, s3_server, s3_workspace  # noqa: F401  (fixtures)
from tests.support.policy import local_ws, mlflow_auth_server  # noqa: F401  (fixtures)
