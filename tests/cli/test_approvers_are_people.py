"""Approvers are people, through `mrc` in process on a local workspace built with sklearn: by
default an approval counts for the OS user the registry verifies, so one person claiming two
names is one approval; a team that trusts claimed names says so in [policy.production]."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd

import pytest

from tests.support.cli import tree_digest
from tests.support.policy import MODEL, NO_GATES, production_of, two_versions

ME = pwd.getpwuid(os.geteuid()).pw_name  # the identity the local registry verifies for this process


def mrc_in_process(*argv: str) -> tuple[int, str, str]:
    from console.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv("MRC_ACTOR", raising=False)
    monkeypatch.delenv("MRC_WORKSPACE", raising=False)
    return two_versions(tmp_path / "ws")


def _protect(root, body: str) -> None:
    with open(root / "mrc.toml", "a") as fh:
        fh.write("\n[policy.production]\n" + body + "\n")


def _approve(root, actor: str, version: str = "2"):
    code, out, err = mrc_in_process("approve", MODEL, version, "--reason", f"reviewed by {actor}", *NO_GATES,
                                    "--json", "--workspace", str(root), "--actor", actor)
    assert code == 0, err
    return json.loads(out)["policy"]


def test_two_claimed_names_from_one_os_user_are_one_approval_by_default(ws):
    _protect(ws, "required_approvals = 2")
    assert _approve(ws, "bob")["approved_by"] == ["bob"]
    carol = _approve(ws, "carol")
    assert carol["approved_by"] == ["bob"] and carol["met"] is False
    assert carol["counted_as"] == {"bob": ME}
    assert carol["shared_identity"] == [{"approver": "carol", "why": f"same identity as bob: {ME.casefold()}"}]
    assert f"not carol (same identity as bob: {ME.casefold()})" in carol["summary"]
    code, _, err = mrc_in_process("promote", MODEL, "2", "--reason", "two?", "--workspace", str(ws), "--actor", "dave")
    assert code == 1 and "1 of 2 approvals" in err and err.count("\n") == 1, err
    assert production_of(ws) is None
    # the claim is recorded beside the identity in the audit log
    code, out, _ = mrc_in_process("audit", "--json", "--workspace", str(ws))
    approvals = [e for e in json.loads(out)["events"] if e["action"] == "approve"]
    assert [e["details"]["identity"] for e in approvals] == [{"claimed": "bob", "backend": ME},
                                                            {"claimed": "carol", "backend": ME}]


@pytest.mark.parametrize("again", ["Bob", "bob ", "ＢＯＢ"])
def test_one_name_spelt_two_ways_counts_once_even_when_claims_are_trusted(ws, again):
    _protect(ws, 'required_approvals = 2\nidentity = "claims"')
    _approve(ws, "bob")
    assert _approve(ws, again)["approved_by"] == ["bob"]
    code, _, err = mrc_in_process("promote", MODEL, "2", "--workspace", str(ws), "--actor", "dave")
    assert code == 1 and "1 of 2 approvals" in err


def test_a_team_that_trusts_claims_opts_in_by_name(ws):
    _protect(ws, 'required_approvals = 2\nidentity = "claims"')
    _approve(ws, "bob")
    assert _approve(ws, "carol")["met"] is True
    code, _, err = mrc_in_process("promote", MODEL, "2", "--reason", "two", "--workspace", str(ws), "--actor", "dave")
    assert code == 0, err
    assert production_of(ws) == "2"


def test_a_refused_revoke_writes_nothing(ws):
    _protect(ws, "required_approvals = 2")
    _approve(ws, "bob")
    before = tree_digest(ws)
    code, _, err = mrc_in_process("revoke", MODEL, "2", "--reason", "not mine", "--workspace", str(ws),
                                  "--actor", "erin")
    assert code == 2 and err.count("\n") == 1 and "erin has no approval of this version to revoke" in err, err
    assert tree_digest(ws) == before


def test_the_first_approver_revoking_voids_the_approval(ws):
    _protect(ws, "required_approvals = 1")
    _approve(ws, "bob")
    code, _, err = mrc_in_process("revoke", MODEL, "2", "--reason", "found a leak", "--workspace", str(ws),
                                  "--actor", "Bob")
    assert code == 0, err
    code, _, err = mrc_in_process("promote", MODEL, "2", "--workspace", str(ws), "--actor", "dave")
    assert code == 1 and "0 of 1 approvals" in err, err  # the registry approval went back to pending


def test_control_calls_name_a_person_not_nobody(tmp_path, monkeypatch):
    from backends.local.serving.controlkey import auth_headers

    monkeypatch.delenv("MRC_ACTOR", raising=False)
    assert auth_headers(tmp_path)["X-MRC-Actor"] == ME  # was absent: the router wrote "(no actor stated)"
    seen = {}

    def spy(ctx):
        seen["actor"] = os.environ.get("MRC_ACTOR")
        return 0

    import console.commands.registry_cmds as registry_cmds

    monkeypatch.setattr(registry_cmds, "cmd_models", spy)
    code, _, err = mrc_in_process("models", "--actor", "carol", "--workspace", str(tmp_path / "none"))
    assert seen == {"actor": "carol"}, err  # --actor reaches the router's audit rows through the headers
    assert os.environ.get("MRC_ACTOR") is None
