"""A team whose MLflow alias is literally `production` (mrc maps production to `champion` by
default), set with the plain MlflowClient on a real `mlflow server`: mrc reads and writes that
alias — never reads one and writes another — and says "already rolled back" only when the
alias agrees. A model holding both `production` and `champion` is refused with one line."""

from __future__ import annotations

import pytest

from tests.support.cli import run_mrc
from tests.support.remote import remote_env, unique

pytestmark = pytest.mark.integration


def test_the_teams_own_production_alias_is_read_and_written(mlflow_server, mlflow_workspace):
    from mlflow.tracking import MlflowClient

    root, _ = mlflow_workspace
    client = MlflowClient(mlflow_server.url)
    model = unique("team-alias")
    client.create_registered_model(model)
    for _ in range(3):  # registered by the team's own tooling: approval as a version tag
        client.create_model_version(model, "s3://elsewhere/model", tags={"mrc.approval.status": "approved"})
    client.set_registered_model_alias(model, "production", "1")

    def mrc(*args: str):
        return run_mrc(*args, "--workspace", str(root), "--actor", "oncall", env=remote_env())

    def aliases() -> dict[str, str]:
        return {k: str(v) for k, v in client.get_registered_model(model).aliases.items()}

    models = mrc("models", "--json")
    assert models.returncode == 0, models.stderr
    assert {m["name"]: m for m in models.json()["models"]}[model]["production"] == "1"

    promoted = mrc("promote", model, "2", "--reason", "release 2")
    assert promoted.returncode == 0, promoted.stderr  # today: exit 3 after setting `champion`
    assert aliases() == {"production": "2"}  # the team's alias moved; no `champion` appeared

    rolled = mrc("rollback", model, "--reason", "2 is bad")
    assert rolled.returncode == 0, rolled.stderr
    assert aliases() == {"production": "1"}
    again = mrc("rollback", model, "--reason", "2 is bad", "--json")
    assert again.returncode == 0, again.stderr
    assert again.json()["already_rolled_back"] is True and aliases() == {"production": "1"}
    # the team's approvals and its first alias were set outside mrc (verify names those), but the
    # pointer is where mrc's last audited move put it
    problems = mrc("audit", "verify", "--json").json()["problems"]
    assert not [p for p in problems if "points at" in p or "rewritten" in p], problems

    # both aliases on one model: which one is production? refused at load, nothing moved
    client.set_registered_model_alias(model, "champion", "3")
    for args in (("models",), ("promote", model, "3", "--reason", "x"), ("rollback", model, "--reason", "x")):
        refused = mrc(*args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert refused.stderr.strip().count("\n") == 0 and "'production'" in refused.stderr \
            and "'champion'" in refused.stderr and "production_alias" in refused.stderr, refused.stderr
    assert aliases() == {"production": "1", "champion": "3"}
