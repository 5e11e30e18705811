"""The pure decision of a watch run (console/monitor/watch.py): no I/O, real DriftReports."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from console.evaluate.drift import drift_report
from console.monitor.watch import (ALREADY_HANDLED, IN_PROGRESS, NO_ACTION, RETRAIN, UP_TO_DATE, decide,
                           handled_from_events, handled_from_versions, needs_drift, newest_version, progress_line,
                           unfinished_retrains, worst_feature)


def columns(seed: int, shift: float = 0.0, n: int = 2000) -> dict:
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=n) + shift, "b": rng.normal(size=n), "c": rng.normal(size=n)}


@pytest.fixture(scope="module")
def reports():
    return {"same": drift_report(columns(1), columns(2)), "shifted": drift_report(columns(1), columns(3, shift=1.5))}


def test_critical_new_version_retrains_and_names_the_worst_feature(reports):
    decision = decide("m", newest="d@v3", reference="d@v1", production="4", report=reports["shifted"], handled={})
    assert decision.action == RETRAIN and decision.severity == "critical"
    assert decision.worst.name == "a" and decision.worst.psi >= 0.25 and decision.worst.severity == "critical"
    assert "retraining" in progress_line(decision)


def test_undrifted_version_is_reported_only(reports):
    decision = decide("m", newest="d@v2", reference="d@v1", production="4", report=reports["same"], handled={})
    assert decision.action == NO_ACTION and decision.severity != "critical"


def test_a_handled_version_is_not_retrained_and_needs_no_drift(reports):
    handled = {"d@v3": {"candidate": "7", "severity": "critical", "feature": "a", "psi": 1.2}}
    assert not needs_drift("d@v3", "d@v1", handled)
    decision = decide("m", newest="d@v3", reference="d@v1", production="4", report=None, handled=handled)
    assert decision.action == ALREADY_HANDLED and decision.handled_by["candidate"] == "7"
    # a different version is still news
    assert needs_drift("d@v4", "d@v1", handled)
    assert decide("m", newest="d@v4", reference="d@v1", production="4", report=reports["shifted"],
                  handled=handled).action == RETRAIN


def test_the_reference_itself_is_up_to_date():
    assert not needs_drift("d@v1", "d@v1", {})
    assert decide("m", newest="d@v1", reference="d@v1", production="4", report=None, handled={}).action == UP_TO_DATE


def test_a_missing_report_where_one_is_needed_is_an_error():
    with pytest.raises(ValueError):
        decide("m", newest="d@v2", reference="d@v1", production="4", report=None, handled={})


def test_newest_version_follows_registration_order_not_names():
    ds = [SimpleNamespace(name="d", version=v, created_at=at) for v, at in
          [("v10", "2026-01-01T00:00:00Z"), ("v2", "2026-01-02T00:00:00Z"), ("v1", "2026-01-02T00:00:00Z")]]
    ds.append(SimpleNamespace(name="other", version="v99", created_at="2027-01-01T00:00:00Z"))
    assert newest_version(ds, "d") == "d@v1"  # same second as v2, registered after it
    assert newest_version(ds, "nothing") is None


def test_worst_feature_prefers_severity_then_psi():
    f = lambda name, sev, psi: SimpleNamespace(name=name, severity=sev, extra={"psi": psi}, method="psi")  # noqa: E731
    assert worst_feature([f("x", "warning", 0.9), f("y", "critical", 0.3), f("z", "critical", 0.5)]).name == "z"
    assert worst_feature([]).name == ""


def test_handled_comes_from_watch_retrain_events_of_the_model_only():
    ev = lambda action, model, version, details: SimpleNamespace(action=action, model=model, version=version,  # noqa: E731
                                                                details=details, at="t")
    events = [ev("watch.retrain", "m", "5", {"dataset_version": "d@v3", "training_run": "r1", "psi": 0.7}),
              ev("watch.retrain", "other", "9", {"dataset_version": "d@v4"}),
              ev("drift.critical", "m", "4", {"dataset_version": "d@v5"})]
    handled = handled_from_events(events, "m")
    assert list(handled) == ["d@v3"] and handled["d@v3"]["candidate"] == "5" and handled["d@v3"]["job"] == "r1"


def test_handled_from_versions_names_the_first_version_trained_on_each_data_version():
    mv = lambda version, data: SimpleNamespace(version=version, created_at=f"t{version}",  # noqa: E731
                                               lineage=SimpleNamespace(data_version=data, training_run=f"r{version}"))
    handled = handled_from_versions([mv("1", "d@v1"), mv("2", "d@v3"), mv("3", "d@v3"), mv("4", "")])
    assert sorted(handled) == ["d@v1", "d@v3"] and handled["d@v3"]["candidate"] == "2"
    assert handled["d@v3"]["job"] == "r2"


def test_unfinished_retrains_are_starts_no_end_followed():
    ev = lambda action, model, data: SimpleNamespace(action=action, model=model, version="", at="t",  # noqa: E731
                                                     actor="a", details={"dataset_version": data, "host": "h"})
    events = [ev("watch.retrain_started", "m", "d@v2"), ev("watch.retrain", "m", "d@v2"),
              ev("watch.retrain_started", "m", "d@v3"), ev("watch.retrain.failed", "m", "d@v3"),
              ev("watch.retrain_started", "m", "d@v4"),
              ev("watch.retrain_started", "other", "d@v5")]
    assert list(unfinished_retrains(events, "m")) == ["d@v4"]
    # a failed one started again and not ended is unfinished again
    assert list(unfinished_retrains(events + [ev("watch.retrain_started", "m", "d@v3")], "m")) == ["d@v4", "d@v3"]


def test_a_retrain_in_progress_elsewhere_is_not_retrained_and_needs_no_drift(reports):
    started = {"d@v3": {"host": "gpu-7", "at": "t", "severity": "critical", "feature": "a", "psi": 1.1}}
    assert not needs_drift("d@v3", "d@v1", {}, started)
    decision = decide("m", newest="d@v3", reference="d@v1", production="4", report=None, handled={},
                      in_progress=started)
    assert decision.action == IN_PROGRESS and "gpu-7" in decision.reason and "gpu-7" in progress_line(decision)
    # handled (the registry has a version on it) wins over a stale start
    handled = {"d@v3": {"candidate": "8"}}
    assert decide("m", newest="d@v3", reference="d@v1", production="4", report=None, handled=handled,
                  in_progress=started).action == ALREADY_HANDLED
