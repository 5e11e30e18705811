"""Co-signatures on a shared S3 registry (SeaweedFS on 127.0.0.1): two workspaces — two folders,
two mrc.db files, as two approvers' machines — pointing at one bucket and prefix see each other's
co-signatures, because they are stored in the bucket beside the model, not in mrc.db."""

from __future__ import annotations

from tests.support.policy import MODEL, ws_args
from tests.support.policy import policy_s3_ws
from tests.support.remote import mlflow_server, write_workspace  # noqa: F401  (fixture)

# bob and carol are played with one S3 access key: the team trusts claimed names (#23's default counts
# verified identities, which tests/integration/s3/test_identity.py covers)
CLAIMS_TWO = 'required_approvals = 2\nidentity = "claims"'


def test_approvers_on_two_machines_count_each_other(tmp_path, s3_server, mrc):
    first = policy_s3_ws(tmp_path, s3_server, CLAIMS_TWO)
    second = write_workspace(tmp_path / "second-machine", (first / "mrc.toml").read_text())
    assert (second / "mrc.db").exists() and not (second / "mrc.db").samefile(first / "mrc.db")
    version = mrc("versions", MODEL, "--json", *ws_args(first, "x")).json()["versions"][0]["version"]
    approve = ("approve", MODEL, version, "--reason", "reviewed", "--no-gates", "--override", "--json")

    bob = mrc(*approve, *ws_args(first, "bob"))
    assert bob.returncode == 0, bob.stderr
    carol = mrc(*approve, *ws_args(second, "carol"))  # co-signs from the other machine
    assert carol.returncode == 0, carol.stderr
    assert carol.json()["policy"]["approved_by"] == ["bob", "carol"]

    again = mrc(*approve, *ws_args(first, "carol"))  # the same person from the first machine: one approval
    assert again.returncode == 0 and again.json()["changed"] is False, again.stderr

    promoted = mrc("promote", MODEL, version, "--reason", "two approvals", "--json", *ws_args(first, "dave"))
    assert promoted.returncode == 0, promoted.stderr  # counted from the bucket, not from first's mrc.db
    events = mrc("audit", "--json", *ws_args(first, "x")).json()["events"]
    promote = [e for e in events if e["action"] == "promote"][-1]
    assert promote["details"]["policy"]["approved_by"] == ["bob", "carol"]
    cosign = [e for e in mrc("audit", "--json", *ws_args(second, "x")).json()["events"] if e["action"] == "approve"]
    assert cosign and cosign[-1]["details"]["stored"] == "registry"


def test_a_revoke_on_one_machine_is_seen_on_the_other(tmp_path, s3_server, mrc):
    first = policy_s3_ws(tmp_path, s3_server, CLAIMS_TWO)
    second = write_workspace(tmp_path / "second-machine", (first / "mrc.toml").read_text())
    version = mrc("versions", MODEL, "--json", *ws_args(first, "x")).json()["versions"][0]["version"]
    approve = ("approve", MODEL, version, "--reason", "reviewed", "--no-gates", "--override")
    assert mrc(*approve, *ws_args(first, "bob")).returncode == 0
    assert mrc(*approve, *ws_args(second, "carol")).returncode == 0
    revoked = mrc("revoke", MODEL, version, "--reason", "found a bug", *ws_args(second, "carol"))
    assert revoked.returncode == 0, revoked.stderr
    refused = mrc("promote", MODEL, version, "--reason", "ship", *ws_args(first, "dave"))
    assert refused.returncode == 1 and "1 of 2 approvals" in refused.stderr, refused.stderr
    assert mrc("models", "--json", *ws_args(first, "x")).json()["models"][0]["production"] is None


def test_on_mlflow_co_signatures_are_version_tags_both_machines_count(tmp_path, mlflow_server, mrc):
    import pickle

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from backends.base import Lineage
    from console.workspace import Workspace
    from tests.support.policy import TRAINER
    from tests.support.remote import mlflow_toml, unique

    toml = mlflow_toml(mlflow_server.url) + "\n[policy.production]\nrequired_approvals = 2\nidentity = \"claims\"\n"
    first = write_workspace(tmp_path / "first-machine", toml)
    second = write_workspace(tmp_path / "second-machine", toml)
    model = unique("fraud")
    rng = np.random.RandomState(5)
    X, y = rng.rand(80, 3), rng.randint(0, 2, 80)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression().fit(X, y)))
    version = Workspace.open(first).registry().register_version(
        model, str(path), metrics={"auc_roc": 0.8},
        lineage=Lineage(code_commit="c0ffee", data_version="tx@1", training_run="run-1", trained_by=TRAINER)).version
    approve = ("approve", model, version, "--reason", "reviewed", "--no-gates", "--override", "--json")
    assert mrc(*approve, *ws_args(first, "bob")).returncode == 0
    carol = mrc(*approve, *ws_args(second, "carol"))
    assert carol.returncode == 0, carol.stderr
    assert carol.json()["policy"]["approved_by"] == ["bob", "carol"]

    from mlflow.tracking import MlflowClient  # the plain client sees the tag mrc wrote

    tags = MlflowClient(tracking_uri=mlflow_server.url).get_model_version(model, version).tags
    assert '"approver":"carol"' in tags["mrc.cosign.carol"]

    promoted = mrc("promote", model, version, "--reason", "two approvals", *ws_args(first, "dave"))
    assert promoted.returncode == 0, promoted.stderr
    assert mrc("revoke", model, version, "--reason", "bug", *ws_args(second, "carol")).returncode == 0
    assert '"revoked_at"' in MlflowClient(tracking_uri=mlflow_server.url).get_model_version(model, version).tags[
        "mrc.cosign.carol"]
