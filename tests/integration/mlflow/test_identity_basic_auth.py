"""Backend identity on a real `mlflow server --app-name basic-auth` (tests/support/mlflow_auth.py).

The caller is who MLflow's auth app says it authenticated (users/current), recorded beside the
claimed --actor; with identity = "require" a claim the server does not back is refused, under
"record" it is kept. Models are logged by alice with the plain MLflow client; bob and carol
approve with their own credentials; what landed is read back from the server as its admin.
"""

from __future__ import annotations

import pytest

from tests.support.cli import tree_digest
from tests.support.policy import ws_args
from tests.support.remote import mlflow_toml, write_workspace

PROD = "champion"  # mrc's production alias on MLflow by default
NO_GATES = ("--reason", "reviewed", "--no-gates", "--override")
# pytest-timeout counts the session fixture's set-up (server start, models logged): minutes on a busy 2-core box
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(autouse=True)
def _no_token(_remote_credentials, monkeypatch):
    # the remote suites' sentinel bearer token would stand in for the basic-auth user
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)


def _ws(tmp_path, server, policy: str):
    return write_workspace(tmp_path / "ws", mlflow_toml(server.url) + "\n[policy.production]\n" + policy + "\n")


def _as(server, user: str, password: str | None = None) -> dict[str, str]:
    return {"MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": password if password is not None else server.passwords[user]}


def _events(mrc, root, server, action: str) -> list[dict]:
    audit = mrc("audit", "--json", *ws_args(root, "carol"), env=_as(server, "carol"))
    assert audit.returncode == 0, audit.stderr
    return [e for e in audit.json()["events"] if e["action"] == action]


def _one_line(result) -> None:
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def test_a_claim_the_server_does_not_back_is_refused_and_the_backed_one_recorded(tmp_path, mlflow_auth_server, mrc):
    server, model = mlflow_auth_server, "fraud-require"
    version = server.models[model][0]["version"]
    root = _ws(tmp_path, server, 'required_approvals = 1\nidentity = "require"')
    approve = ("approve", model, version, *NO_GATES)

    before = tree_digest(root)
    refused = mrc(*approve, *ws_args(root, "bob"), env=_as(server, "carol"))
    assert refused.returncode == 1, refused.stderr
    _one_line(refused)
    assert "knows this caller as 'carol', not 'bob'" in refused.stderr
    assert tree_digest(root) == before
    assert server.version_tags(model, version).get("mrc.approval.status", "pending") == "pending"

    ok = mrc(*approve, "--json", *ws_args(root, "carol"), env=_as(server, "carol"))
    assert ok.returncode == 0, ok.stderr
    assert server.version_tags(model, version)["mrc.approval.status"] == "approved"
    assert server.version_tags(model, version)["mrc.approval.by"] == "carol"

    promote_refused = mrc("promote", model, version, *ws_args(root, "bob"), env=_as(server, "carol"))
    assert promote_refused.returncode == 1 and "knows this caller as 'carol', not 'bob'" in promote_refused.stderr
    assert PROD not in server.aliases(model)
    promoted = mrc("promote", model, version, "--reason", "ship", *ws_args(root, "bob"), env=_as(server, "bob"))
    assert promoted.returncode == 0, promoted.stderr
    assert server.aliases(model)[PROD] == version

    assert [e["details"]["identity"] for e in _events(mrc, root, server, "approve")] == [
        {"claimed": "carol", "backend": "carol"}]
    move = _events(mrc, root, server, "promote")[-1]
    assert move["details"]["identity"] == {"claimed": "bob", "backend": "bob"}


def test_a_wrong_password_is_one_clear_line_and_changes_nothing(tmp_path, mlflow_auth_server, mrc):
    server, model = mlflow_auth_server, "fraud-require"
    version = server.models[model][0]["version"]
    root = _ws(tmp_path, server, 'required_approvals = 1\nidentity = "require"')
    wrong = "not-" + server.passwords["carol"]
    tags_before, before = server.version_tags(model, version), tree_digest(root)

    for command in (("approve", model, version, *NO_GATES), ("versions", model), ("rollback", model)):
        result = mrc(*command, *ws_args(root, "carol"), env=_as(server, "carol", wrong))
        assert result.returncode == 4, (command, result.stderr)
        _one_line(result)
        assert "does not accept MLFLOW_TRACKING_USERNAME 'carol' (401" in result.stderr
        assert wrong not in result.stderr + result.stdout
    assert server.version_tags(model, version) == tags_before
    assert tree_digest(root) == before


def test_two_distinct_authenticated_approvers_let_promote_through(tmp_path, mlflow_auth_server, mrc):
    server, model = mlflow_auth_server, "fraud-two"
    version = server.models[model][0]["version"]
    root = _ws(tmp_path, server, 'required_approvals = 2\nidentity = "require"')
    approve = ("approve", model, version, *NO_GATES, "--json")

    trainer = mrc(*approve, *ws_args(root, "alice"), env=_as(server, "alice"))  # logged the run herself
    assert trainer.returncode == 1 and "alice" in trainer.stderr, trainer.stderr
    first = mrc(*approve, *ws_args(root, "bob"), env=_as(server, "bob"))
    assert first.returncode == 0, first.stderr
    assert first.json()["policy"]["summary"].startswith("1 of 2 approvals: needs 1 more")
    again = mrc(*approve, *ws_args(root, "carol"), env=_as(server, "bob"))  # bob claiming to be carol
    assert again.returncode == 1 and "knows this caller as 'bob', not 'carol'" in again.stderr
    short = mrc("promote", model, version, *ws_args(root, "bob"), env=_as(server, "bob"))
    assert short.returncode == 1 and "1 of 2 approvals" in short.stderr, short.stderr
    assert PROD not in server.aliases(model)

    second = mrc(*approve, *ws_args(root, "carol"), env=_as(server, "carol"))
    assert second.returncode == 0, second.stderr
    promoted = mrc("promote", model, version, "--reason", "two approvals", "--json", *ws_args(root, "carol"),
                   env=_as(server, "carol"))
    assert promoted.returncode == 0, promoted.stderr
    assert server.aliases(model)[PROD] == version

    approvals = _events(mrc, root, server, "approve")
    assert [e["details"]["identity"] for e in approvals] == [{"claimed": "bob", "backend": "bob"},
                                                            {"claimed": "carol", "backend": "carol"}]
    move = _events(mrc, root, server, "promote")[-1]
    assert move["details"]["policy"]["approved_by"] == ["bob", "carol"]
    assert move["details"]["identity"] == {"claimed": "carol", "backend": "carol"}


def test_under_record_the_mismatch_is_kept_beside_the_claim(tmp_path, mlflow_auth_server, mrc):
    server, model = mlflow_auth_server, "fraud-record"
    version = server.models[model][0]["version"]
    root = _ws(tmp_path, server, 'required_approvals = 1\nidentity = "record"')

    ok = mrc("approve", model, version, *NO_GATES, *ws_args(root, "bob"), env=_as(server, "carol"))
    assert ok.returncode == 0, ok.stderr
    assert server.version_tags(model, version)["mrc.approval.by"] == "bob"
    assert [e["details"]["identity"] for e in _events(mrc, root, server, "approve")] == [
        {"claimed": "bob", "backend": "carol"}]


def test_rollback_goes_through_with_the_callers_credentials(tmp_path, mlflow_auth_server, mrc):
    server, model = mlflow_auth_server, "fraud-rollback"
    first, second = (v["version"] for v in server.models[model])
    # a restricted rollback rule is what asks the backend who is calling (the open one costs nothing)
    root = _ws(tmp_path, server, 'required_approvals = 1\nidentity = "require"\nrollback = ["bob", "carol"]')
    for version in (first, second):
        assert mrc("approve", model, version, *NO_GATES, *ws_args(root, "bob"), env=_as(server, "bob")).returncode == 0
        moved = mrc("promote", model, version, "--reason", "ship", *ws_args(root, "bob"), env=_as(server, "bob"))
        assert moved.returncode == 0, moved.stderr
    assert server.aliases(model)[PROD] == second

    claimed = mrc("rollback", model, "--reason", "3 AM", *ws_args(root, "bob"), env=_as(server, "carol"))
    assert claimed.returncode == 1 and "knows this caller as 'carol', not 'bob'" in claimed.stderr
    assert server.aliases(model)[PROD] == second
    back = mrc("rollback", model, "--reason", "3 AM", "--json", *ws_args(root, "carol"), env=_as(server, "carol"))
    assert back.returncode == 0, back.stderr
    assert back.json()["to"] == first and back.json()["move"]["actor"] == "carol"
    assert server.aliases(model)[PROD] == first
    ledger = server.call("POST", "/api/2.0/mlflow/experiments/search",
                         {"max_results": 100, "filter": f"name LIKE 'mrc-ledger/{model}/%'"})["experiments"]
    last = max(ledger, key=lambda e: e["name"])
    tags = {t["key"]: t["value"] for t in last.get("tags") or []}
    assert (tags["mrc.to"], tags["mrc.actor"]) == (first, "carol")


def test_a_missing_permission_is_one_line_naming_the_user(tmp_path, mlflow_auth_server, mrc):
    server, model = mlflow_auth_server, "fraud-record"
    version = server.models[model][0]["version"]
    root = _ws(tmp_path, server, 'required_approvals = 1\nidentity = "record"')
    server.call("POST", "/api/3.0/mlflow/users/permissions/revoke",
                {"username": "carol", "resource_type": "registered_model", "resource_id": model})
    try:
        tags_before = server.version_tags(model, version)
        refused = mrc("reject", model, version, "--reason", "second thoughts", *ws_args(root, "carol"),
                      env=_as(server, "carol"))
        assert refused.returncode == 4, refused.stderr
        _one_line(refused)
        assert "MLFLOW_TRACKING_USERNAME 'carol' lacks the permission to" in refused.stderr
        assert "(403 permission denied" in refused.stderr
        assert server.version_tags(model, version) == tags_before
    finally:
        server.grant("carol", model)
    # the refused decision is no pending write: once carol may write again, bob's approval is the
    # next decision, and nobody's run completes carol's refused "rejected" with its own permission
    approved = mrc("approve", model, version, *NO_GATES, *ws_args(root, "bob"), env=_as(server, "bob"))
    assert approved.returncode == 0, approved.stderr
    tags = server.version_tags(model, version)
    assert (tags["mrc.approval.status"], tags["mrc.approval.by"]) == ("approved", "bob")
    ledger = server.call("POST", "/api/2.0/mlflow/experiments/search",
                         {"max_results": 100, "view_type": "ALL",
                          "filter": f"name LIKE 'mrc-approvals/{model}/{version}/%'"})["experiments"]
    aborted = [{t["key"]: t["value"] for t in e.get("tags") or []} for e in ledger]
    aborted = [t for t in aborted if t.get("mrc.aborted")]
    assert [(t["mrc.status"], t["mrc.by"]) for t in aborted] == [("rejected", "carol")]
    assert "403 permission denied" in aborted[0]["mrc.aborted"]
