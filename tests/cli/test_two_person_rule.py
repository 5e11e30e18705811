"""The two-person rule on production, through real `mrc` processes on a local workspace."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import REPO, mrc_env, tree_digest
from tests.support.policy import MODEL, protect, ws_args, production_of, NO_GATES
from tests.support.policy import stalled_promote, wait_for_stall  # noqa: F401
from tests.support.remote import _remote_credentials  # noqa: F401  (autouse: sentinel credentials, as in its old folder)

# These versions have no test set: approving them records the decision without a gate verdict
# (--no-gates --override), the same for every approver, so the gate digest binds them alike.


def _approve(mrc, root: Path, actor: str, version: str = "2"):
    return mrc("approve", MODEL, version, "--reason", f"reviewed by {actor}", *NO_GATES, "--json", *ws_args(root, actor))


def _events(mrc, root: Path) -> list[dict]:
    return mrc("audit", "--json", *ws_args(root, "auditor")).json()["events"]


def test_second_approver_required_before_promotion(local_ws, mrc):
    protect(local_ws, "required_approvals = 2")
    first = _approve(mrc, local_ws, "bob")
    assert first.returncode == 0, first.stderr
    assert first.json()["policy"]["summary"] == "1 of 2 approvals: needs 1 more, not alice (trainer), not bob (approved)"

    short = mrc("promote", MODEL, "2", "--reason", "ship", *ws_args(local_ws, "bob"))
    assert short.returncode == 1 and short.stderr.count("\n") == 1, short.stderr
    assert "1 of 2 approvals" in short.stderr and "production not moved" in short.stderr
    override = mrc("promote", MODEL, "2", "--override", "--reason", "urgent", *ws_args(local_ws, "bob"))
    assert override.returncode == 1 and "1 of 2 approvals" in override.stderr  # --override is no way around it
    assert production_of(local_ws) is None

    again = _approve(mrc, local_ws, "bob")  # the same person twice is still one approval
    assert again.returncode == 0 and again.json()["changed"] is False
    assert mrc("promote", MODEL, "2", *ws_args(local_ws, "bob")).returncode == 1

    second = _approve(mrc, local_ws, "carol")
    assert second.returncode == 0, second.stderr
    assert second.json()["policy"]["approved_by"] == ["bob", "carol"] and second.json()["policy"]["met"] is True
    done = mrc("promote", MODEL, "2", "--reason", "two approvals", "--json", *ws_args(local_ws, "dave"))
    assert done.returncode == 0, done.stderr
    assert production_of(local_ws) == "2"

    events = _events(mrc, local_ws)
    promote = [e for e in events if e["action"] == "promote"][-1]
    assert promote["details"]["policy"]["approved_by"] == ["bob", "carol"]
    assert promote["details"]["policy"]["checked"] == "in the move's transaction"
    assert promote["details"]["identity"]["claimed"] == "dave"
    requested = [e for e in events if e["action"] == "approval.requested"]
    assert len(requested) == 1 and requested[0]["details"]["needs"] == 1  # after bob, not after carol
    cosign = [e for e in events if e["action"] == "approve" and e["actor"] == "carol"]
    assert cosign and cosign[0]["details"]["co_signature"] is True
    assert mrc("audit", "verify", *ws_args(local_ws, "auditor")).returncode == 0


def test_self_approval_refused_with_one_line_and_nothing_written(local_ws, mrc):
    protect(local_ws, "required_approvals = 2")
    before = tree_digest(local_ws)
    refused = _approve(mrc, local_ws, "alice")  # alice trained version 2
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "alice trained this version and cannot approve it" in refused.stderr
    assert "distinct_from_trainer" in refused.stderr
    assert tree_digest(local_ws) == before


def test_trainer_may_approve_when_distinct_from_trainer_is_off(local_ws, mrc):
    protect(local_ws, "required_approvals = 1\ndistinct_from_trainer = false")
    assert _approve(mrc, local_ws, "alice").returncode == 0
    assert mrc("promote", MODEL, "2", *ws_args(local_ws, "alice")).returncode == 0
    assert production_of(local_ws) == "2"


def test_approver_not_on_the_allow_list_is_refused(local_ws, mrc):
    protect(local_ws, 'required_approvals = 2\napprovers = ["bob", "carol", "erin"]')
    before = tree_digest(local_ws)
    refused = _approve(mrc, local_ws, "mallory")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "mallory is not on policy.production.approvers (bob, carol, erin)" in refused.stderr
    assert tree_digest(local_ws) == before
    assert _approve(mrc, local_ws, "bob").returncode == 0
    assert "needs 1 more from carol, erin" in _approve(mrc, local_ws, "bob").json()["policy"]["summary"]


def test_a_reject_voids_the_co_signatures_of_the_approval_it_replaces(local_ws, mrc):
    protect(local_ws, "required_approvals = 2")
    assert _approve(mrc, local_ws, "bob").returncode == 0
    assert _approve(mrc, local_ws, "carol").returncode == 0
    assert mrc("reject", MODEL, "2", "--reason", "label leak", *ws_args(local_ws, "erin")).returncode == 0
    again = _approve(mrc, local_ws, "bob")  # a fresh approval: carol's signed the old one
    assert again.returncode == 0 and again.json()["policy"]["approved_by"] == ["bob"]
    assert mrc("promote", MODEL, "2", *ws_args(local_ws, "bob")).returncode == 1
    assert production_of(local_ws) is None


@pytest.mark.parametrize("change", ["revoke", "reject"])
def test_promotion_refused_when_an_approval_changes_between_its_read_and_the_move(local_ws, mrc, tmp_path, change):
    """The promote counts two approvals, then holds right before its move; meanwhile carol revokes
    hers (or erin rejects the version). The count inside the move's transaction refuses it."""
    protect(local_ws, "required_approvals = 2")
    assert _approve(mrc, local_ws, "bob").returncode == 0
    assert _approve(mrc, local_ws, "carol").returncode == 0
    stall = tmp_path / "release"
    proc = stalled_promote(local_ws, "dave", stall)
    try:
        wait_for_stall(Path(str(stall) + ".reached"), proc)
        if change == "revoke":
            changed = mrc("revoke", MODEL, "2", "--reason", "found a bug", *ws_args(local_ws, "carol"))
        else:
            changed = mrc("reject", MODEL, "2", "--reason", "found a bug", *ws_args(local_ws, "erin"))
        assert changed.returncode == 0, changed.stderr
    finally:
        stall.write_text("go")
    out, err = proc.communicate(timeout=120)
    assert production_of(local_ws) is None
    if change == "revoke":
        assert proc.returncode == 1 and "1 of 2 approvals" in err and "production not moved" in err, err
    else:
        assert proc.returncode == 3 and "approval changed since it was read" in err, err
    assert not [e for e in _events(mrc, local_ws) if e["action"] == "promote"]


def test_rollback_is_open_to_anyone_by_default(local_ws, mrc):
    protect(local_ws, "required_approvals = 1\ndistinct_from_trainer = false")
    for version in ("1", "2"):
        assert _approve(mrc, local_ws, "bob", version).returncode == 0
        assert mrc("promote", MODEL, version, *ws_args(local_ws, "bob")).returncode == 0
    back = mrc("rollback", MODEL, "--reason", "pager", *ws_args(local_ws, "night-oncall"))
    assert back.returncode == 0, back.stderr
    assert production_of(local_ws) == "1"


def test_rollback_restricted_when_configured(local_ws, mrc):
    protect(local_ws, 'required_approvals = 1\ndistinct_from_trainer = false\nrollback = ["sre-1", "sre-2"]')
    for version in ("1", "2"):
        assert _approve(mrc, local_ws, "bob", version).returncode == 0
        assert mrc("promote", MODEL, version, *ws_args(local_ws, "bob")).returncode == 0
    before = tree_digest(local_ws)
    refused = mrc("rollback", MODEL, "--reason", "pager", *ws_args(local_ws, "bob"))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "policy.production.rollback allows sre-1, sre-2; bob may not roll back" in refused.stderr
    assert tree_digest(local_ws) == before and production_of(local_ws) == "2"
    allowed = mrc("rollback", MODEL, "--reason", "pager", *ws_args(local_ws, "sre-2"))
    assert allowed.returncode == 0, allowed.stderr
    assert production_of(local_ws) == "1"


def test_local_identity_is_the_os_user_and_require_refuses_another_name(local_ws, mrc):
    import os
    import pwd

    os_user = pwd.getpwuid(os.geteuid()).pw_name
    protect(local_ws, 'required_approvals = 1\nidentity = "require"')
    refused = _approve(mrc, local_ws, "bob")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert f"knows this caller as {os_user!r}, not 'bob'" in refused.stderr
    ok = _approve(mrc, local_ws, os_user)
    assert ok.returncode == 0, ok.stderr
    event = [e for e in _events(mrc, local_ws) if e["action"] == "approve"][-1]
    assert event["details"]["identity"] == {"claimed": os_user, "backend": os_user}
