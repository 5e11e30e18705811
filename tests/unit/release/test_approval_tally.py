"""The pure rule: which approvals count, and the line the console and CLI show."""

from __future__ import annotations

import pytest

from backends.base import Approval, Artifact, BadInputError, Lineage, ModelVersion
from console.release.policy import Signature, parse_policies, tally, trainer_of

SHA, DIGEST, AT = "a" * 64, "d" * 64, "2026-01-01T00:00:00Z"


def _mv(status="approved", by="bob", trained_by="alice", description=""):
    return ModelVersion("m", "7", AT, Artifact("x", SHA, 1), lineage=Lineage(trained_by=trained_by),
                        approval=Approval(status, by, AT, "ok", DIGEST), description=description)


def _policy(**table):
    table.setdefault("identity", "claims")  # these count claimed names; verified identities: tests/unit/release/test_approvers_are_people.py
    return parse_policies({"policy": {"production": table}})["production"]


def _sig(who, *, epoch=AT, digest=DIGEST, sha=SHA):
    return Signature(who, "2026-01-02T00:00:00Z", sha, digest, epoch)


def test_counts_distinct_approvers_of_this_approval_only():
    policy = _policy(required_approvals=3)
    counted = tally(policy, _mv(), [_sig("carol"), _sig("carol"), _sig("dave", epoch="2025-12-31T00:00:00Z"),
                                    _sig("erin", digest="e" * 64), _sig("frank", sha="f" * 64)])
    assert counted.counted == ["bob", "carol"] and not counted.met
    assert ("frank", "signed other bytes") in counted.not_counted
    assert counted.line() == "2 of 3 approvals: needs 1 more, not alice (trainer), not bob (approved), not carol (approved)"


def test_the_trainer_and_those_off_the_list_do_not_count():
    policy = _policy(required_approvals=2, approvers=["bob", "carol", "alice"])
    counted = tally(policy, _mv(by="alice"), [_sig("mallory"), _sig("bob")])
    assert counted.counted == ["bob"]
    assert ("alice", "trainer") in counted.not_counted and ("mallory", "not on the approvers list") in counted.not_counted
    assert counted.line() == "1 of 2 approvals: needs 1 more from carol, not alice (trainer), not bob (approved)"


def test_nothing_counts_unless_the_registry_approval_stands():
    counted = tally(_policy(required_approvals=1), _mv(status="rejected"), [_sig("carol")])
    assert counted.counted == [] and counted.line() == "0 of 1 approvals: needs 1 more, not alice (trainer)"


def test_met_line_names_the_approvers():
    counted = tally(_policy(required_approvals=2, distinct_from_trainer=False), _mv(by="alice"), [_sig("bob")])
    assert counted.met and counted.line() == "2 of 2 approvals (alice, bob)"


def test_trainer_falls_back_to_the_description_mrc_writes():
    assert trainer_of(_mv(trained_by="", description="trained by zoe from tx@3")) == "zoe"
    assert trainer_of(_mv(trained_by="", description="hand-made")) == ""


def test_defaults_and_rollback_anyone():
    policy = parse_policies({"policy": {"production": {}}})["production"]
    assert (policy.required_approvals, policy.distinct_from_trainer, policy.approvers, policy.rollback,
            policy.identity) == (1, True, None, None, "verified")
    assert _policy(rollback=["sre"]).rollback == ("sre",)
    with pytest.raises(BadInputError, match="policy.production.rollback"):
        _policy(rollback="everyone")
