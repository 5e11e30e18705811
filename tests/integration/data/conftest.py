"""Test, golden and reference data where teams keep it (files, S3, MLflow), and the gates on it."""

from tests.support.datagates import format_plugin  # noqa: F401  (fixtures)
from tests.support.remote import _remote_credentials, mlflow_server, s3_server  # noqa: F401  (fixtures)
