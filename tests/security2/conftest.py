from tests.remote.fixtures import _remote_credentials, mlflow_server, s3_server  # noqa: F401  (fixtures)
