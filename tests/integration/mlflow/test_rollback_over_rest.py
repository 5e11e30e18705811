"""`mrc rollback` on MLflow goes over the REST API: no mlflow import, same compare-and-swap.

Real `mlflow server` (tests/support/servers.py); models made with the plain MlflowClient."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from backends.base import PRODUCTION
from tests.support.cli import REPO, mrc_env
from tests.support.remote import remote_env

pytestmark = pytest.mark.integration  # starts a real mlflow server on 127.0.0.1

PROBE = """
import json, sys
import console.cli
rc = console.cli.main({argv!r})
print(json.dumps({{"rc": rc, "mlflow": sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow')}}))
"""


def _probe(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                          env=mrc_env(remote_env()), cwd=str(REPO), timeout=300)
    assert proc.stdout.strip(), proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["stderr"] = proc.stderr
    return out


def _model_with_production(url: str) -> str:
    """Two versions made by plain MLflow; production moved 1 -> 2 through mrc's ledger."""
    from mlflow.tracking import MlflowClient

    from backends.mlflow.registry import MlflowRegistry

    client = MlflowClient(url)
    model = f"speed-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(model)
    for _ in range(2):
        client.create_model_version(model, "s3://elsewhere/model", tags={"mrc.approval.status": "approved"})
    registry = MlflowRegistry(url)
    registry.move_pointer(model, PRODUCTION, expected=None, new="1", actor="setup")
    registry.move_pointer(model, PRODUCTION, expected="1", new="2", actor="setup")
    return model


def test_rollback_on_mlflow_imports_no_mlflow_and_moves_production(mlflow_server, mlflow_workspace):
    from mlflow.tracking import MlflowClient

    from backends.mlflow.registry import MlflowRegistry

    root, _ = mlflow_workspace
    model = _model_with_production(mlflow_server.url)
    out = _probe(["rollback", model, "--expect", "2", "--to", "1", "--reason", "speed", "--workspace", str(root)])
    assert out["rc"] == 0, out["stderr"]
    assert out["mlflow"] == []
    assert MlflowClient(mlflow_server.url).get_registered_model(model).aliases == {"champion": "1"}
    moves = [(m.from_version, m.to_version, m.reason) for m in MlflowRegistry(mlflow_server.url)
             .pointer_history(model, PRODUCTION) if m.seq]
    assert moves[-1] == ("2", "1", "rollback: speed")  # the ledger entry the REST path claimed, read by the usual path
    assert len(moves) == 3


def test_stale_rollback_over_rest_is_a_conflict_and_writes_nothing(mlflow_server, mlflow_workspace):
    from mlflow.tracking import MlflowClient

    from backends.mlflow.registry import MlflowRegistry

    root, _ = mlflow_workspace
    model = _model_with_production(mlflow_server.url)
    out = _probe(["rollback", model, "--expect", "1", "--to", "1", "--workspace", str(root)])
    assert out["rc"] == 3, out["stderr"]
    assert out["mlflow"] == []
    assert out["stderr"].count("\n") == 1 and model in out["stderr"]
    assert MlflowClient(mlflow_server.url).get_registered_model(model).aliases == {"champion": "2"}
    assert len([m for m in MlflowRegistry(mlflow_server.url).pointer_history(model, PRODUCTION) if m.seq]) == 2


def test_ledger_claim_over_rest_loses_to_an_entry_the_plain_client_made(mlflow_server):
    """RESOURCE_ALREADY_EXISTS reaches the registry as a conflict: the CAS is the server's unique name."""
    from mlflow.tracking import MlflowClient

    from backends.base import ConflictError
    from backends.mlflow.registry import LEDGER, SEQ_WIDTH, MlflowRegistry

    model = _model_with_production(mlflow_server.url)
    MlflowClient(mlflow_server.url).create_experiment(
        f"{LEDGER}/{model}/{PRODUCTION}/{3:0{SEQ_WIDTH}d}",
        tags={"mrc.alias": PRODUCTION, "mrc.from": "2", "mrc.to": "1", "mrc.actor": "racer", "mrc.move_id": "x"})
    registry = MlflowRegistry(mlflow_server.url)
    with pytest.raises(ConflictError):
        # the racer's entry is pending (alias not yet written): the registry rolls it forward first,
        # so production is 1 now and "expected 2" is stale
        registry.move_pointer(model, PRODUCTION, expected="2", new="1", actor="b")
    assert type(registry.client).__module__ == "backends.mlflow.rest"
    assert MlflowClient(mlflow_server.url).get_registered_model(model).aliases == {"champion": "1"}


def test_rest_client_answers_like_the_mlflow_client(mlflow_server):
    from mlflow.tracking import MlflowClient

    from backends.mlflow.rest import RestClient, RestError

    model = _model_with_production(mlflow_server.url)
    plain, rest = MlflowClient(mlflow_server.url), RestClient(mlflow_server.url)
    assert rest.get_registered_model(model).aliases == plain.get_registered_model(model).aliases
    a, b = rest.get_model_version(model, "2"), plain.get_model_version(model, "2")
    assert (a.name, a.version, a.source, a.tags, a.run_id) == (b.name, str(b.version), b.source, b.tags, b.run_id)
    name = f"speed-exp-{uuid.uuid4().hex[:8]}"
    exp_id = rest.create_experiment(name, tags={"k": "v"})
    assert plain.get_experiment(exp_id).tags["k"] == "v"
    with pytest.raises(RestError) as err:
        rest.create_experiment(name)
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert rest.get_experiment_by_name(name + "-missing") is None
    found = rest.search_experiments(view_type=3, filter_string=f"name LIKE '{name}%'")
    assert [e.experiment_id for e in found] == [exp_id] and found.token is None
    rest.close()


TEAM_LOG = """
import sys, mlflow, mlflow.sklearn, numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
mlflow.set_tracking_uri(sys.argv[1]); mlflow.set_experiment(sys.argv[2] + "-training")
rng = np.random.RandomState(3); X = pd.DataFrame(rng.rand(120, 3), columns=["a", "b", "c"]); y = (X.a > 0.5).astype(int)
for c in (0.5, 2.0):
    with mlflow.start_run():
        mlflow.log_param("C", c); mlflow.log_metric("auc_roc", 0.8 + c / 100)
        mlflow.set_tag("mlflow.source.git.commit", "abc123")
        mlflow.log_input(mlflow.data.from_pandas(X.assign(y=y), source="s3://team/data/v7.csv", name="team-data@v7"),
                         context="training")
        mlflow.sklearn.log_model(LogisticRegression(C=c).fit(X, y), name="model", registered_model_name=sys.argv[2],
                                 pip_requirements=["scikit-learn"])
"""


def test_a_team_logged_version_reads_the_same_over_rest_and_its_rollback_imports_no_mlflow(mlflow_server,
                                                                                           mlflow_workspace):
    """Versions a team logged with log_model carry a run and (MLflow 3) a LoggedModel: the registry
    reads both over REST, with what MlflowClient would have given, so the default-target rollback of
    such a model still imports no mlflow."""
    from mlflow.tracking import MlflowClient

    from backends.mlflow.registry import MlflowRegistry

    root, _ = mlflow_workspace
    model = f"team-{uuid.uuid4().hex[:8]}"
    built = subprocess.run([sys.executable, "-c", TEAM_LOG, mlflow_server.url, model], capture_output=True, text=True,
                           env=mrc_env(remote_env()), timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    rest = MlflowRegistry(mlflow_server.url)
    plain = MlflowRegistry(mlflow_server.url)
    plain._client = MlflowClient(mlflow_server.url)  # the heavy client, as the reference
    for version in ("1", "2"):
        a, b = rest.get_version(model, version), plain.get_version(model, version)
        assert a.metrics == b.metrics and a.metrics["auc_roc"] > 0.8
        assert a.lineage.to_dict() == b.lineage.to_dict()
        assert a.lineage.code_commit == "abc123" and a.lineage.data_version == "team-data@v7"
        assert a.lineage.params == {"C": "0.5" if version == "1" else "2.0"} and a.lineage.trained_by
    assert type(rest.client).__module__ == "backends.mlflow.rest" and rest.client._heavy is None
    rest.move_pointer(model, PRODUCTION, expected=None, new="1", actor="setup")
    rest.move_pointer(model, PRODUCTION, expected="1", new="2", actor="setup")

    out = _probe(["rollback", model, "--reason", "3 AM", "--workspace", str(root)])  # the default target
    assert out["rc"] == 0, out["stderr"]
    assert out["mlflow"] == []
    assert MlflowClient(mlflow_server.url).get_registered_model(model).aliases == {"champion": "1"}
