"""Bad [policy.<alias>] values: one line naming mrc.toml and the field, exit 2, nothing written."""

from __future__ import annotations

import pytest

from tests.support.cli import tree_digest
from tests.support.policy import MODEL, protect, production_of
from tests.support.remote import _remote_credentials  # noqa: F401  (autouse: sentinel credentials, as in its old folder)


@pytest.mark.parametrize("body,field", [
    ("required_approvals = 0", "policy.production.required_approvals"),
    ('required_approvals = "two"', "policy.production.required_approvals"),
    ("required_approvals = true", "policy.production.required_approvals"),
    ('distinct_from_trainer = "yes"', "policy.production.distinct_from_trainer"),
    ("approvers = []", "policy.production.approvers"),
    ('approvers = "bob"', "policy.production.approvers"),
    ('required_approvals = 3\napprovers = ["bob", "carol"]', "policy.production.approvers"),
    ('rollback = "everyone"', "policy.production.rollback"),
    ("rollback = [1, 2]", "policy.production.rollback"),
    ('identity = "strict"', "policy.production.identity"),
    ("required_aprovals = 2", "policy.production.required_aprovals"),
])
def test_bad_policy_value_is_one_line_naming_the_file_and_field(local_ws, mrc, body, field):
    protect(local_ws, body)
    before = tree_digest(local_ws)
    for argv in (("approve", MODEL, "2", "--reason", "ok", "--no-gates", "--override"), ("versions", MODEL),
                 ("promote", MODEL, "2", "--reason", "ok")):
        result = mrc(*argv, "--workspace", str(local_ws), "--actor", "bob")
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert str(local_ws / "mrc.toml") in result.stderr and field in result.stderr, result.stderr
    assert tree_digest(local_ws) == before


def test_policy_must_be_a_table_of_tables(local_ws, mrc):
    with open(local_ws / "mrc.toml", "a") as fh:
        fh.write('\n[policy]\nproduction = "two-person"\n')
    result = mrc("versions", MODEL, "--workspace", str(local_ws))
    assert result.returncode == 2 and "policy.production: must be a table" in result.stderr


def _two_productions(root, mrc) -> None:
    for version in ("1", "2"):
        ws = ("--workspace", str(root), "--actor", "bob")
        assert mrc("approve", MODEL, version, "--reason", "ok", "--no-gates", "--override", *ws).returncode == 0
        assert mrc("promote", MODEL, version, *ws).returncode == 0


@pytest.mark.parametrize("body,field", [
    ("required_aprovals = 2", "policy.production.required_aprovals"),
    ('rollback = "everyone"', "policy.production.rollback"),
])
def test_a_malformed_policy_never_blocks_a_rollback(local_ws, mrc, body, field):
    _two_productions(local_ws, mrc)
    protect(local_ws, body)
    back = mrc("rollback", MODEL, "--reason", "pager", "--workspace", str(local_ws), "--actor", "night-oncall")
    assert back.returncode == 0, back.stderr
    warning = [line for line in back.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and str(local_ws / "mrc.toml") in warning[0] and field in warning[0], back.stderr
    assert production_of(local_ws) == "1"


def test_a_malformed_policy_still_honours_a_well_formed_rollback_list(local_ws, mrc):
    _two_productions(local_ws, mrc)
    protect(local_ws, 'required_approvals = "two"\nrollback = ["sre-1"]')
    refused = mrc("rollback", MODEL, "--reason", "pager", "--workspace", str(local_ws), "--actor", "bob")
    assert refused.returncode == 1 and "bob may not roll back" in refused.stderr, refused.stderr
    assert production_of(local_ws) == "2"
    back = mrc("rollback", MODEL, "--reason", "pager", "--workspace", str(local_ws), "--actor", "sre-1")
    assert back.returncode == 0, back.stderr
    assert production_of(local_ws) == "1"
