"""Behaviour every registry backend must share, parametrised over local, MLflow and S3."""

from tests.support.remote import _remote_credentials, mlflow_server, s3_server  # noqa: F401  (fixtures)
