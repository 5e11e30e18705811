"""Pure pieces of the foundation: names, the audit chain, rollback targets, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.base import BadInputError, PointerMove, check_name
from console.release.audit import GENESIS, event_hash, verify_chain
from console.domain import AuditEvent
from backends.native.metrics import auc_roc, classification_metrics
from console.release.actions import rollback_target


@pytest.mark.parametrize("name", ["a", "fraud-detector", "v20260215-a3b4c5d6", "model_1.2"])
def test_good_names_pass(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "..", "a..b", ".hidden", "-x", "a b", "x" * 129, "é", "a\\b"])
def test_names_that_could_escape_are_refused(name):
    with pytest.raises(BadInputError):
        check_name(name)


def _chain(n: int) -> list[AuditEvent]:
    events, prev = [], GENESIS
    for seq in range(1, n + 1):
        details = {"i": seq}
        h = event_hash(seq, f"t{seq}", "a", "promote", "m", str(seq), details, prev)
        events.append(AuditEvent(seq, f"t{seq}", "a", "promote", "m", str(seq), details, prev, h))
        prev = h
    return events


def test_an_intact_chain_verifies():
    check = verify_chain(_chain(5))
    assert check.ok and check.events == 5


@given(st.integers(min_value=0, max_value=5), st.sampled_from(["actor", "action", "model", "version", "at", "details"]))
@settings(max_examples=40, deadline=None)
def test_changing_any_field_breaks_the_chain_at_that_event(index, field):
    events = _chain(6)
    value = getattr(events[index], field)
    setattr(events[index], field, {"i": -1} if field == "details" else value + "x")
    check = verify_chain(events)
    assert not check.ok and check.first_broken == index + 1


def test_rehashing_a_changed_event_still_breaks_at_the_next():
    events = _chain(4)
    e = events[1]
    e.actor = "mallory"
    e.hash = event_hash(e.seq, e.at, e.actor, e.action, e.model, e.version, e.details, e.prev_hash)
    check = verify_chain(events)
    assert not check.ok and check.first_broken == 3


def _move(frm, to, seq, reason=""):
    return PointerMove("m", "production", frm, to, "a", "t", reason, seq)


def test_rollback_target_is_the_version_before_the_last_move():
    history = [_move(None, "1", 1), _move("1", "2", 2), _move("2", "3", 3)]
    assert rollback_target(history, "3") == "2"
    # after a rollback 3 -> 2, the next rollback never goes back to 3 (rolled away from): it goes to 1
    history.append(_move("3", "2", 4, "rollback: p99 up"))
    assert rollback_target(history, "2") == "1"
    assert rollback_target([_move(None, "1", 1)], "1") is None


def test_rollback_target_skips_unapproved_and_allows_a_version_promoted_again():
    history = [_move(None, "1", 1), _move("1", "2", 2), _move("2", "3", 3)]
    assert rollback_target(history, "3", {"1": "approved", "2": "rejected", "3": "approved"}) == "1"
    assert rollback_target(history, "3", {"1": "pending", "2": "rejected"}) is None
    # 3 was rolled away from, then fixed and promoted again (a confirmed roll-forward): it counts again
    history += [_move("3", "2", 4, "rollback"), _move("2", "3", 5, "fixed"), _move("3", "4", 6)]
    assert rollback_target(history, "4") == "3"


@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1)), min_size=2, max_size=60))
@settings(max_examples=60, deadline=None)
def test_auc_matches_scikit_learn_with_ties(pairs):
    from sklearn.metrics import roc_auc_score

    y = np.array([p[0] for p in pairs])
    s = np.round(np.array([p[1] for p in pairs]), 1)  # rounding makes ties common
    if y.min() == y.max():
        assert np.isnan(auc_roc(y, s))
    else:
        assert auc_roc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_classification_metrics_match_scikit_learn():
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    m = classification_metrics(y, s)
    pred = s >= 0.5
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
