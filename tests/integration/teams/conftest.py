"""Any team's model, released through `mrc` alone (real subprocesses, real servers)."""

from tests.support.teams import _mlflow_build, background, mlflow_team, mlflow_ws, s3_team, s3_ws, team_data  # noqa: F401  (fixtures)
from tests.support.remote import _remote_credentials, mlflow_server, s3_server  # noqa: F401  (fixtures)
from tests.support.tiers import group_folder  # noqa: E402


def pytest_collection_modifyitems(items):
    group_folder(items, __file__, "team-registries")  # the teams' MLflow and S3 registries are built once (MLflow logs four models)
from tests.support.task_team import task_team, task_ws  # noqa: E402,F401  (fixtures: regression, 3-class, mixed types)
