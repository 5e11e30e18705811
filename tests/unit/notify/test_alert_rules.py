"""The mapping from audit events to alerts, with no server: what fires, what resolves, what never does."""

from __future__ import annotations

import pytest

from backends.base import BadInputError
from console.notify import alerts as rules
from console.domain import AuditEvent

CFG = rules.parse_config({"alertmanager_url": "http://127.0.0.1:9093", "runbook_url": "https://runbooks.example/mrc"})


def ev(seq, action, model="m", version="5", actor="controller", at="2026-01-01T00:00:00.000000Z", **details):
    return AuditEvent(seq, at, actor, action, model, version, details, "", "")


def test_automatic_canary_rollback_fires_a_critical_alert_with_the_judges_reason_and_runbook():
    alert = rules.fired_by(ev(7, "canary-rollback", stable="2", reason="error_rate: exact test rejects"), CFG)
    assert alert.labels == {"alertname": "CanaryRolledBack", "model": "m", "version": "5", "severity": "critical"}
    assert alert.annotations["summary"] == "m 5: canary rolled back to 2: error_rate: exact test rejects"
    assert alert.annotations["runbook_url"] == "https://runbooks.example/mrc"
    assert alert.starts_at == "2026-01-01T00:00:00.000000Z" and alert.ends_at == "2026-01-01T04:00:00Z"
    assert rules.fired_by(ev(7, "canary-rollback", actor="alice", reason="rollback by operator"),
                          CFG).labels["severity"] == "warning"


def test_summary_is_one_line_even_when_the_reason_has_newlines():
    alert = rules.fired_by(ev(3, "rollback", version="2", actor="bob", reason="page\nfrom on-call\x1b", **{"from": "5"}),
                           CFG)
    assert "\n" not in alert.annotations["summary"] and "\x1b" not in alert.annotations["summary"]
    assert alert.annotations["summary"].startswith("m: production rolled back 5 -> 2 by bob: page from on-call")


@pytest.mark.parametrize("action, name, severity", [
    ("canary-abort", "CanaryHalted", "critical"),
    ("canary-promote", "CanaryPromoted", "info"),
    ("rollback", "RollbackDone", "warning"),
    ("drift.critical", "DriftCritical", "critical"),
    ("approval.requested", "ApprovalRequested", "info"),
])
def test_each_mapped_action_fires_its_alert(action, name, severity):
    alert = rules.fired_by(ev(1, action, reason="halted: sample-ratio mismatch"), CFG)
    assert (alert.labels["alertname"], alert.labels["severity"]) == (name, severity)


@pytest.mark.parametrize("action", ["alert.delivered", "alert.failed", "canary-step", "approve", "promote",
                                    "canary-start", "register", "alias:canary"])
def test_delivery_events_and_ordinary_acts_never_fire(action):
    assert rules.fired_by(ev(1, action, receiver="alertmanager", error="refused"), CFG) is None


def test_a_promotion_resolves_the_rollback_alert_of_that_model_only():
    events = [ev(1, "canary-rollback", model="a"), ev(2, "canary-rollback", model="b"),
              ev(3, "promote", model="a", version="6", at="2026-01-01T01:00:00.000000Z")]
    state = rules.fold(events, CFG)
    a, b = state[("CanaryRolledBack", "a", "5")], state[("CanaryRolledBack", "b", "5")]
    assert (a.status, a.ends_at, a.changed_seq) == ("resolved", "2026-01-01T01:00:00.000000Z", 3)
    assert (b.status, b.changed_seq) == ("firing", 2)


def test_approval_request_is_resolved_by_a_decision_on_that_version_not_another():
    events = [ev(1, "approval.requested", version="5"), ev(2, "approve", version="4")]
    assert rules.fold(events, CFG)[("ApprovalRequested", "m", "5")].status == "firing"
    events.append(ev(3, "reject", version="5"))
    assert rules.fold(events, CFG)[("ApprovalRequested", "m", "5")].status == "resolved"


def test_health_breach_fires_and_recovery_of_the_same_metric_resolves():
    events = [ev(1, "health.breach", version="2", metric="error_rate", value=0.3, threshold=0.05),
              ev(2, "health.breach", version="2", metric="p99_latency_ms", value=900, threshold=500),
              ev(3, "health.recovered", version="2", metric="error_rate", value=0.0, threshold=0.05)]
    state = rules.fold(events, CFG)
    assert state[(rules.ERROR_RATE, "m", "2")].status == "resolved"
    assert state[(rules.LATENCY, "m", "2")].status == "firing"


def test_a_new_receiver_gets_what_fires_now_and_an_old_one_what_changed_after_its_cursor():
    events = [ev(1, "canary-rollback", model="a"), ev(2, "promote", model="a"),
              ev(3, "canary-rollback", model="b", at="2099-01-01T00:00:00.000000Z")]
    state = rules.fold(events, CFG)
    now = "2099-01-01T00:00:01.000000Z"
    assert [a.labels["model"] for a in rules.to_deliver(state, None, now)] == ["b"]
    assert [a.labels["model"] for a in rules.to_deliver(state, 1, now)] == ["a", "b"]
    assert rules.to_deliver(state, 3, now) == []


def test_health_verdicts_need_enough_requests_and_say_over_or_under():
    from backends.base import HealthWindow

    cfg = rules.parse_config({"alertmanager_url": "http://127.0.0.1:1", "max_error_rate": 0.1,
                              "max_p99_latency_ms": 100, "min_requests": 10})
    few = HealthWindow("m", "2", 0, 1, requests=9, errors=9, latency_p99_ms=900)
    assert rules.health_verdicts(few, cfg) == {"error_rate": None, "p99_latency_ms": None}
    bad = HealthWindow("m", "2", 0, 1, requests=100, errors=20, latency_p99_ms=50)
    verdicts = rules.health_verdicts(bad, cfg)
    assert verdicts == {"error_rate": (True, 0.2, 0.1), "p99_latency_ms": (False, 50.0, 100.0)}
    now = "2026-01-01T00:00:01Z"
    firing = rules.fold([ev(1, "health.breach", version="2", metric="error_rate"),
                         ev(2, "health.breach", version="2", metric="p99_latency_ms")], cfg)
    rate, latency = firing[(rules.ERROR_RATE, "m", "2")], firing[(rules.LATENCY, "m", "2")]
    assert [c[:2] for c in rules.health_changes({}, verdicts, now, cfg)] == [("health.breach", "error_rate")]
    assert rules.health_changes({"error_rate": rate}, verdicts, now, cfg) == []
    assert [c[:2] for c in rules.health_changes({"p99_latency_ms": latency}, verdicts, now, cfg)] == [
        ("health.breach", "error_rate"), ("health.recovered", "p99_latency_ms")]


def _at(seconds: float) -> str:
    return rules._plus("2026-01-01T00:00:00Z", seconds)


def test_a_breach_that_persists_past_hold_is_re_sent_before_its_ends_at_and_never_lapses():
    """A controlled clock: flush every 15 minutes for 12 hours while the error rate stays high.
    At every moment the alert Alertmanager was last sent is still active (endsAt in the future)."""
    from backends.base import HealthWindow

    cfg = rules.parse_config({"alertmanager_url": "http://127.0.0.1:1", "max_error_rate": 0.1, "hold_s": 14400})
    bad = rules.health_verdicts(HealthWindow("m", "2", 0, 1, requests=100, errors=50, latency_p99_ms=None), cfg)
    events, sent = [], {}
    for tick in range(0, 12 * 3600 + 1, 900):
        now = _at(tick)
        alerts = rules.fold(events, cfg)
        firing = {metric: a for metric, name in rules.HEALTH_ALERTS.items() for a in alerts.values()
                  if a.labels["alertname"] == name and a.status == "firing"}
        for action, _metric, details in rules.health_changes(firing, bad, now, cfg):
            events.append(ev(len(events) + 1, action, version="2", at=now, **details))
        alerts = rules.fold(events, cfg)
        for alert in rules.to_deliver(alerts, max(sent.values(), default=0) or None, now):
            sent[alert.key] = alert.changed_seq
            last_payload = alert.payload()
        assert rules._parse(last_payload["endsAt"]) > rules._parse(now), f"the alert lapsed at +{tick} s"
        assert last_payload["startsAt"] == _at(0)  # one alert all along, not a new one each time
    actions = [e.action for e in events]
    assert actions[0] == "health.breach" and actions.count("health.breach") == 1
    # re-sent about every hold_s / 2, not on every flush
    assert 4 <= actions.count(rules.HEALTH_ONGOING) <= 7


def test_an_ongoing_event_extends_only_that_metrics_firing_alert_and_recovery_still_resolves():
    cfg = rules.parse_config({"alertmanager_url": "http://127.0.0.1:1", "hold_s": 3600})
    events = [ev(1, "health.breach", version="2", metric="error_rate", at=_at(0)),
              ev(2, "health.breach", version="2", metric="p99_latency_ms", at=_at(0)),
              ev(3, rules.HEALTH_ONGOING, version="2", metric="error_rate", at=_at(2000))]
    state = rules.fold(events, cfg)
    rate, latency = state[(rules.ERROR_RATE, "m", "2")], state[(rules.LATENCY, "m", "2")]
    assert (rate.ends_at, rate.changed_seq, rate.starts_at) == (_at(5600), 3, _at(0))
    assert (latency.ends_at, latency.changed_seq) == (_at(3600), 2)
    assert rate.active(_at(4000)) and not latency.active(_at(4000))
    assert rules.fired_by(events[2], cfg) is None
    events.append(ev(4, "health.recovered", version="2", metric="error_rate", at=_at(4000)))
    rate = rules.fold(events, cfg)[(rules.ERROR_RATE, "m", "2")]
    assert (rate.status, rate.ends_at) == ("resolved", _at(4000))
    # an ongoing event after the recovery does not bring a resolved alert back
    events.append(ev(5, rules.HEALTH_ONGOING, version="2", metric="error_rate", at=_at(4100)))
    assert rules.fold(events, cfg)[(rules.ERROR_RATE, "m", "2")].status == "resolved"


def test_a_breach_whose_alert_already_lapsed_fires_again():
    cfg = rules.parse_config({"alertmanager_url": "http://127.0.0.1:1", "max_error_rate": 0.1, "hold_s": 3600})
    from backends.base import HealthWindow

    bad = rules.health_verdicts(HealthWindow("m", "2", 0, 1, requests=100, errors=50, latency_p99_ms=None), cfg)
    alert = rules.fold([ev(1, "health.breach", version="2", metric="error_rate", at=_at(0))], cfg)[
        (rules.ERROR_RATE, "m", "2")]
    assert [c[0] for c in rules.health_changes({"error_rate": alert}, bad, _at(1000), cfg)] == []
    assert [c[0] for c in rules.health_changes({"error_rate": alert}, bad, _at(2000), cfg)] == [rules.HEALTH_ONGOING]
    assert [c[0] for c in rules.health_changes({"error_rate": alert}, bad, _at(3600), cfg)] == ["health.breach"]


@pytest.mark.parametrize("section, field", [
    ({"alertmanager_url": "ftp://x"}, "alerts.alertmanager_url"),
    ({"max_error_rate": 2}, "alerts.max_error_rate"),
    ({"min_requests": 0}, "alerts.min_requests"),
    ({"webhooks": [{"url": "http://127.0.0.1:1/h"}]}, "alerts.webhooks[0]"),
    ({"webhooks": [{"url": "http://127.0.0.1:1/h", "secret_env": "S", "secret": "x"}]}, "alerts.webhooks[0].secret"),
    ({"alertmanager": "http://x"}, "alerts.alertmanager"),
])
def test_bad_config_names_the_field(section, field):
    with pytest.raises(BadInputError) as err:
        rules.parse_config(section, "ws/mrc.toml")
    assert f"ws/mrc.toml: {field}" in str(err.value)


def test_summaries_use_what_the_policy_and_watch_record():
    asked = rules.fired_by(ev(4, "approval.requested", actor="carol", alias="production", needs=1, required=2,
                              summary="1 of 2 approvals: needs 1 more, not alice (trainer)"), CFG)
    assert asked.annotations["summary"] == ("m 5: approval requested by carol: 1 of 2 approvals: needs 1 more, "
                                            "not alice (trainer)")
    with_reason = rules.fired_by(ev(4, "approval.requested", actor="ci", summary="0 of 2 approvals: needs 2 more",
                                    reason="gates passed; 0 of 2 approvals: needs 2 more"), CFG)
    assert with_reason.annotations["summary"] == "m 5: approval requested by ci: gates passed; 0 of 2 approvals: needs 2 more"
    drift = rules.fired_by(ev(5, "drift.critical", version="1", feature="income", psi=0.412, tier="critical",
                              dataset_version="credit@v3", drift_share=0.5), CFG)
    assert drift.annotations["summary"] == ("m: drift critical on income (PSI 0.41) in credit@v3 vs production 1, "
                                            "drift share 0.50")
    failed = rules.fired_by(ev(6, "watch.retrain.failed", version="1", dataset_version="credit@v3",
                               error="BackendError: no GPU"), CFG)
    assert (failed.labels["alertname"], failed.labels["severity"]) == ("RetrainFailed", "warning")
    assert failed.annotations["summary"].endswith("failed: BackendError: no GPU")


def test_a_cosignature_that_still_misses_one_resolves_the_request_and_asks_again_with_the_new_tally():
    events = [ev(1, "approval.requested", summary="0 of 2 approvals: needs 2 more"),
              ev(2, "approve", actor="bob", at="2026-01-01T00:10:00.000000Z"),
              ev(3, "approval.requested", actor="bob", at="2026-01-01T00:10:00.000000Z",
                 summary="1 of 2 approvals: needs 1 more")]
    [alert] = rules.fold(events, CFG).values()
    assert (alert.status, alert.fired_seq, alert.starts_at) == ("firing", 3, "2026-01-01T00:10:00.000000Z")
    assert alert.annotations["summary"].endswith("1 of 2 approvals: needs 1 more")
    events.append(ev(4, "approve", actor="dan"))
    assert rules.fold(events, CFG)[alert.key].status == "resolved"


def test_a_retrain_resolves_its_failure_alert_and_a_promotion_the_drift():
    events = [ev(1, "drift.critical", version="1"), ev(2, "watch.retrain.failed", version="1"),
              ev(3, "watch.retrain", version="7")]
    state = rules.fold(events, CFG)
    assert state[("RetrainFailed", "m", "1")].status == "resolved"
    assert state[("DriftCritical", "m", "1")].status == "firing"
    state = rules.fold([*events, ev(4, "promote", version="7")], CFG)
    assert state[("DriftCritical", "m", "1")].status == "resolved"
