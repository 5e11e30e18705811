"""Approvers are people (pure tally): a verified identity counts once whatever names it claims,
names are one person however they are spelt, and a team counts claims only when it says so."""

from __future__ import annotations

import pytest

from backends.base import Approval, Artifact, BadInputError, Lineage, ModelVersion
from console.release.policy import Signature, normalise_name, parse_policies, tally

SHA, DIGEST, AT = "a" * 64, "d" * 64, "2026-01-01T00:00:00Z"


def _mv(by="bob"):
    return ModelVersion("m", "7", AT, Artifact("x", SHA, 1), lineage=Lineage(trained_by="alice"),
                        approval=Approval("approved", by, AT, "ok", DIGEST))


def _policy(**table):
    return parse_policies({"policy": {"production": table}})["production"]


def _sig(who, identity=None):
    return Signature(who, "2026-01-02T00:00:00Z", SHA, DIGEST, AT, identity=identity)


def test_by_default_two_claims_from_one_identity_count_once_and_are_flagged():
    counted = tally(_policy(required_approvals=2), _mv(), [_sig("bob", "ops"), _sig("carol", "ops")])
    assert counted.counted == ["bob"] and not counted.met
    assert counted.shared == [("carol", "same identity as bob: ops")]
    assert counted.line().endswith("not carol (same identity as bob: ops)")
    two = tally(_policy(required_approvals=2), _mv(), [_sig("bob", "ops"), _sig("carol", "carol-uid")])
    assert two.met and two.counted == ["bob", "carol"]


def test_an_approval_with_no_verified_identity_does_not_count_by_default():
    counted = tally(_policy(required_approvals=1), _mv(), [])
    assert counted.counted == [] and "no verified identity" in counted.not_counted[0][1]
    assert 'identity = "claims"' in counted.line()


@pytest.mark.parametrize("spellings", [("bob", "Bob"), ("bob", "bob "), ("bob", " BOB\t"), ("bob", "ｂｏｂ")])
def test_one_name_spelt_differently_counts_once(spellings):
    first, second = spellings
    counted = tally(_policy(required_approvals=2, identity="claims"), _mv(by=first), [_sig(second)])
    assert counted.counted == [first] and not counted.met


def test_the_trainer_under_another_claimed_name_is_still_the_trainer():
    counted = tally(_policy(required_approvals=2), _mv(), [_sig("bob", "ops"), _sig("mallory", "Alice")])
    assert ("mallory", "trainer") in counted.not_counted


def test_a_team_that_trusts_claims_opts_in_by_name():
    assert _policy().identity == "verified"
    counted = tally(_policy(required_approvals=2, identity="claims"), _mv(), [_sig("carol", "ops")])
    assert counted.met and counted.counted == ["bob", "carol"]
    with pytest.raises(BadInputError, match='"verified", "claims" or "require"'):
        _policy(identity="trust-me")


def test_names_normalise_case_whitespace_and_unicode():
    assert normalise_name("  Bob\u00a0 Smith ") == "bob smith" == normalise_name("BOB SMITH")
    assert normalise_name("ＢＯＢ") == "bob"
