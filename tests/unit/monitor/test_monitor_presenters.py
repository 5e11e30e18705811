"""The monitor screen's pure presenters and the tier → action plan, without a terminal."""

from __future__ import annotations

from console.monitor.actions import plan
from screens.monitor_screen import alert_lines, feature_lines, label_line, prediction_lines, title_line
from screens.presenters import HomeRow, parse_command


def report(tier="critical", canary=None):
    return {"model": "m", "production": "2", "tier": tier, "window": {"name": "1h", "end": 0.0},
            "units": 900, "records": 1200, "distinct_rows": 880.0, "false_alarms_per_month": 1.0,
            "detector": {"alarmed": tier != "ok"},
            "features": [{"name": "age", "tier": tier, "psi": 0.9, "ks": 0.3, "missing_rate": 0.0, "unseen_share": 0.1},
                         {"name": "zip", "tier": "ok", "psi": 0.01, "ks": 0.01, "missing_rate": 0.0, "unseen_share": 0.0}],
            "canary": canary}


def test_lines_show_the_tier_the_features_worst_first_and_the_labels_with_their_interval():
    r = report()
    assert "CRITICAL" in title_line(r, "m") and "ALARMED" in title_line(r, "m") and "1 false" in title_line(r, "m")
    lines = feature_lines(r["features"], {"age": [0.0] * 23 + [0.9]})
    assert lines[1].startswith("age") and "critical" in lines[1] and lines[2].startswith("zip")
    assert label_line({"coverage": None}) == "labels: no predictions in the window"
    waiting = label_line({"coverage": 0.0, "labelled": 0, "predictions": 10, "accuracy": None})
    assert "waiting for labels" in waiting
    shown = label_line({"coverage": 0.5, "labelled": 5, "predictions": 10, "accuracy": 0.8,
                        "accuracy_interval": [0.49, 0.94], "pending": 2})
    assert "50% covered" in shown and "[0.490, 0.940]" in shown and "2 label(s) waiting" in shown
    assert prediction_lines(None) == ["prediction: (no predictions in the window)"]
    assert "not pinned yet" in prediction_lines({"current": [1] * 22, "reference": None})[1]
    assert alert_lines([{"labels": {"alertname": "ModelDriftCritical", "model": "m", "severity": "critical"},
                         "state": "fired"}], "m") == ["alert ModelDriftCritical (critical): fired"]
    assert parse_command(":monitor m").name == "monitor"
    row = HomeRow(model="m", production="2", candidate=None, monitor="critical")
    assert ("live critical", "bold red") in row.cells()


def test_a_new_critical_audits_once_halts_a_canary_and_rolls_back_only_to_a_clean_target():
    first = plan("ok", report(), auto_rollback=False, target=None, target_tier=None)
    assert [a.kind for a in first] == ["audit"] and first[0].details["action"] == "monitor.critical"
    assert plan("critical", report(), auto_rollback=False, target=None, target_tier=None) == []
    halted = plan("ok", report(canary={"version": "3", "tier": "ok"}), auto_rollback=False, target=None,
                  target_tier=None)
    assert [a.kind for a in halted] == ["audit", "canary-pause"]
    own = plan("ok", report("ok", canary={"version": "3", "tier": "critical"}), auto_rollback=False, target=None,
               target_tier=None)
    assert [a.kind for a in own] == ["canary-rollback"]
    assert [a.kind for a in plan("ok", report(), auto_rollback=True, target="1", target_tier="ok")] == \
        ["audit", "rollback"]
    skipped = plan("ok", report(), auto_rollback=True, target="1", target_tier="critical")
    assert [a.kind for a in skipped] == ["audit", "rollback-skipped"]
    unknown = plan("ok", report(), auto_rollback=True, target="1", target_tier=None)
    assert "not judged" in unknown[1].details["why"]
    back = plan("critical", report("ok"), auto_rollback=True, target=None, target_tier=None)
    assert [a.details["action"] for a in back] == ["monitor.ok"]


def test_monitor_events_fire_and_resolve_the_drift_alerts():
    from console.domain import AuditEvent
    from console.notify.alerts import AlertsConfig, fold, mapped_actions

    def event(seq, action, details):
        return AuditEvent(seq, f"2026-12-08T00:0{seq}:00+00:00", "mrc monitor", action, "m", "2", details, "", "")

    cfg = AlertsConfig(alertmanager_url="http://127.0.0.1:9")
    warned = fold([event(1, "monitor.warning", {"tier": "warning", "feature": "age", "psi": 0.15, "window": "1h"})], cfg)
    assert [(a.labels["alertname"], a.labels["severity"], a.status) for a in warned.values()] == \
        [("ModelDriftWarning", "warning", "firing")]
    alerts = fold([event(1, "monitor.warning", {"tier": "warning"}),
                   event(2, "monitor.critical", {"tier": "critical", "feature": "age", "psi": 0.9, "window": "1h"}),
                   event(3, "monitor.ok", {"tier": "ok"})], cfg)
    assert {a.labels["alertname"]: a.status for a in alerts.values()} == {"ModelDriftWarning": "resolved",
                                                                          "ModelDriftCritical": "resolved"}
    critical = next(a for a in alerts.values() if a.labels["alertname"] == "ModelDriftCritical")
    assert "on age (PSI 0.90)" in critical.annotations["summary"]
    assert {"monitor.warning", "monitor.critical", "monitor.ok"} <= set(mapped_actions())
