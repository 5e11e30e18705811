"""Backend identity on a real S3 API (SeaweedFS on 127.0.0.1): it knows the caller by the access key
the requests are signed with (no STS there), recorded beside the claimed actor, and with
identity = "require" a claimed actor that is not it is refused."""

from __future__ import annotations

import pickle
from pathlib import Path

from tests.support.cli import tree_digest
from tests.support.policy import MODEL, TRAINER, ws_args
from tests.support import servers
from tests.support.remote import s3_toml, unique, write_workspace
from tests.support.policy import policy_s3_ws  # noqa: F401

KEY_ID = servers.ACCESS_KEY


def test_mismatched_s3_identity_is_refused_and_the_matching_one_recorded(tmp_path, s3_server, mrc):
    root = policy_s3_ws(tmp_path, s3_server, 'required_approvals = 1\nidentity = "require"')
    version = mrc("versions", MODEL, "--json", *ws_args(root, "bob")).json()["versions"][0]["version"]
    approve = ("approve", MODEL, version, "--reason", "reviewed", "--no-gates", "--override", "--json")

    before = tree_digest(root)
    refused = mrc(*approve, *ws_args(root, "bob"))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"the registry knows this caller as {KEY_ID!r}, not 'bob'" in refused.stderr
    assert tree_digest(root) == before
    assert mrc("versions", MODEL, "--json", *ws_args(root, "bob")).json()["versions"][0]["approval"]["status"] == "pending"

    ok = mrc(*approve, *ws_args(root, KEY_ID))
    assert ok.returncode == 0, ok.stderr
    promote_refused = mrc("promote", MODEL, version, *ws_args(root, "bob"))
    assert promote_refused.returncode == 1 and f"knows this caller as {KEY_ID!r}" in promote_refused.stderr
    promoted = mrc("promote", MODEL, version, "--reason", "ship", "--json", *ws_args(root, KEY_ID))
    assert promoted.returncode == 0, promoted.stderr
    assert mrc("models", "--json", *ws_args(root, KEY_ID)).json()["models"][0]["production"] == version

    events = mrc("audit", "--json", *ws_args(root, KEY_ID)).json()["events"]
    approval = [e for e in events if e["action"] == "approve"][-1]
    assert approval["details"]["identity"] == {"claimed": KEY_ID, "backend": KEY_ID}
    move = [e for e in events if e["action"] == "promote"][-1]
    assert move["details"]["identity"] == {"claimed": KEY_ID, "backend": KEY_ID}
    assert move["details"]["policy"]["checked"] == "right before the compare-and-swap"


def test_two_person_rule_on_s3_records_identity_and_counts_before_the_cas(tmp_path, s3_server, mrc):
    # one access key plays both approvers here: counted by claimed name only because the team opts in
    root = policy_s3_ws(tmp_path, s3_server, 'required_approvals = 2\nidentity = "claims"')
    version = mrc("versions", MODEL, "--json", *ws_args(root, "bob")).json()["versions"][0]["version"]
    approve = ("approve", MODEL, version, "--reason", "reviewed", "--no-gates", "--override", "--json")

    assert mrc(*approve, *ws_args(root, TRAINER)).returncode == 1  # the trainer, whatever the backend
    first = mrc(*approve, *ws_args(root, "bob"))
    assert first.returncode == 0, first.stderr
    assert first.json()["policy"]["summary"].startswith("1 of 2 approvals: needs 1 more")
    assert mrc("promote", MODEL, version, *ws_args(root, "bob")).returncode == 1
    assert mrc(*approve, *ws_args(root, "carol")).returncode == 0
    promoted = mrc("promote", MODEL, version, "--reason", "two approvals", *ws_args(root, "dave"))
    assert promoted.returncode == 0, promoted.stderr

    events = mrc("audit", "--json", *ws_args(root, "dave")).json()["events"]
    approvals = [e for e in events if e["action"] == "approve"]
    assert [e["details"]["identity"] for e in approvals] == [{"claimed": "bob", "backend": KEY_ID},
                                                            {"claimed": "carol", "backend": KEY_ID}]
    move = [e for e in events if e["action"] == "promote"][-1]
    assert move["details"]["policy"]["approved_by"] == ["bob", "carol"]


def test_by_default_two_claims_from_one_s3_key_count_once(tmp_path, s3_server, mrc):
    root = policy_s3_ws(tmp_path, s3_server, "required_approvals = 2")
    version = mrc("versions", MODEL, "--json", *ws_args(root, "bob")).json()["versions"][0]["version"]
    approve = ("approve", MODEL, version, "--reason", "reviewed", "--no-gates", "--override", "--json")
    assert mrc(*approve, *ws_args(root, "bob")).returncode == 0
    carol = mrc(*approve, *ws_args(root, "carol"))
    assert carol.returncode == 0, carol.stderr
    policy = carol.json()["policy"]
    assert policy["approved_by"] == ["bob"] and policy["met"] is False
    assert policy["shared_identity"] == [{"approver": "carol", "why": f"same identity as bob: {KEY_ID.casefold()}"}]
    refused = mrc("promote", MODEL, version, "--reason", "two approvals?", *ws_args(root, "dave"))
    assert refused.returncode == 1 and "1 of 2 approvals" in refused.stderr, refused.stderr
