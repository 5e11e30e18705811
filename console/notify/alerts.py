"""On-call alerts, derived from the audit log: pure mapping, no I/O.

An audit event either fires an alert (a canary rolled back, production rolled back, drift
critical …), resolves the ones it ends (a later promotion, the approval that was asked for, the
health condition clearing), or is not an alert at all. `fold` replays events into the current
state of every alert, so the state can always be rebuilt from the log and a receiver that was
down simply gets the state it missed. Delivery (console/notify/delivery.py) does the I/O.

Labels (alertname, model, version, severity) identify an alert the way Alertmanager does: a
resolution repeats the labels of the alert it resolves.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from backends.base import BadInputError

# Audit actions of delivery itself: never alerts, or a failing receiver would page about itself forever.
DELIVERY_ACTIONS = ("alert.delivered", "alert.failed", "alert.recovered")
HEALTH_BREACH, HEALTH_RECOVERED = "health.breach", "health.recovered"
HEALTH_ONGOING = "health.ongoing"  # a breach still measured: its alert's endsAt moves on (re-sent before it ends)

ERROR_RATE, LATENCY = "ProductionErrorRateHigh", "ProductionLatencyHigh"
HEALTH_ALERTS = {"error_rate": ERROR_RATE, "p99_latency_ms": LATENCY}

CANARY_ENDED = ("CanaryRolledBack", "CanaryHalted")
PROMOTED = ("promote", "canary-promote")

# action -> what it resolves: (alertnames, whether the event's version must match the alert's)
RESOLVES: dict[str, tuple[tuple[str, ...], bool]] = {
    "promote": (CANARY_ENDED + ("RollbackDone", "DriftCritical", "RetrainFailed"), False),
    "canary-promote": (CANARY_ENDED + ("RollbackDone", "DriftCritical", "RetrainFailed", "CanaryUnjudged"), False),
    "canary-start": (CANARY_ENDED, False),
    # a controller judging the canary again, or the canary ended: nobody is left unjudged
    "canary-resume": (("CanaryUnjudged",), False),
    "canary-rollback": (("CanaryUnjudged",), False),
    "canary-abort": (("CanaryUnjudged",), False),
    "approve": (("ApprovalRequested",), True),
    "reject": (("ApprovalRequested",), True),
    "drift.ok": (("DriftCritical",), False),
    "watch.retrain": (("RetrainFailed",), False),
    "monitor.ok": (("ModelDriftWarning", "ModelDriftCritical"), False),
    "monitor.critical": (("ModelDriftWarning",), False),  # the critical alert takes over
    "monitor.warning": (("ModelDriftCritical",), False),  # back down to a warning
}

SEVERITIES = ("info", "warning", "critical")
CORE_LABELS = ("alertname", "model", "version", "severity")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass
class AlertsConfig:
    alertmanager_url: str = ""
    webhooks: list[dict[str, str]] = field(default_factory=list)  # {name, url, secret_env | secret_file}
    runbook_url: str = ""
    max_error_rate: float = 0.05          # production error rate over this fires ProductionErrorRateHigh
    max_p99_latency_ms: float = 500.0     # production p99 over this fires ProductionLatencyHigh
    health_window_s: float = 300.0        # the window the health check reads
    min_requests: int = 20                # fewer requests in the window: no verdict (the state is kept)
    hold_s: float = 14400.0               # a firing alert's endsAt, unless an event resolves it first
    notice_s: float = 900.0               # an info notice (a promotion) ends by itself after this
    timeout_s: float = 3.0                # per request's socket (connect, each read)
    deadline_s: float = 2.0               # all receivers together, DNS included: what a write waits for delivery
    labels: dict[str, str] = field(default_factory=dict)  # added to every alert (team, env …) for routing

    @property
    def enabled(self) -> bool:
        return bool(self.alertmanager_url or self.webhooks)

    def receivers(self) -> list[str]:
        names = ["alertmanager"] if self.alertmanager_url else []
        return names + [hook["name"] for hook in self.webhooks]


def parse_config(section: Any, where: str = "mrc.toml") -> AlertsConfig:
    """[alerts] of mrc.toml -> AlertsConfig; one clear line naming the field otherwise."""
    if section in (None, {}):
        return AlertsConfig()
    if not isinstance(section, dict):
        raise BadInputError(f"{where}: [alerts] must be a table")
    known = set(AlertsConfig.__dataclass_fields__)
    for key in section:
        if key not in known:
            raise BadInputError(f"{where}: alerts.{key}: unknown key (known: {', '.join(sorted(known))})")
    cfg = AlertsConfig()
    for key in ("alertmanager_url", "runbook_url"):
        value = section.get(key, "")
        if not isinstance(value, str) or (value and not _http_url(value)):
            raise BadInputError(f"{where}: alerts.{key}: must be an http(s) URL")
        setattr(cfg, key, value.rstrip("/") if key == "alertmanager_url" else value)
    for key, low in (("max_error_rate", 0.0), ("max_p99_latency_ms", 0.0), ("health_window_s", 1.0),
                     ("hold_s", 1.0), ("notice_s", 1.0), ("timeout_s", 0.1),
                     ("deadline_s", 0.1)):
        if key in section:
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
                raise BadInputError(f"{where}: alerts.{key}: must be a number >= {low:g}")
            setattr(cfg, key, float(value))
    if cfg.max_error_rate > 1:
        raise BadInputError(f"{where}: alerts.max_error_rate: a rate between 0 and 1")
    if "min_requests" in section:
        value = section["min_requests"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadInputError(f"{where}: alerts.min_requests: a whole number >= 1")
        cfg.min_requests = value
    extra_labels = section.get("labels", {})
    if not isinstance(extra_labels, dict):
        raise BadInputError(f"{where}: alerts.labels: must be a table of label = \"value\"")
    for name, value in extra_labels.items():
        if not _LABEL.fullmatch(name) or name in CORE_LABELS or not isinstance(value, str):
            raise BadInputError(f"{where}: alerts.labels.{name}: a label name ([a-zA-Z_][a-zA-Z0-9_]*, not one of "
                                f"{', '.join(CORE_LABELS)}) with a string value")
    cfg.labels = dict(extra_labels)
    hooks = section.get("webhooks", [])
    if not isinstance(hooks, list):
        raise BadInputError(f"{where}: alerts.webhooks: must be a list of tables ([[alerts.webhooks]])")
    names: set[str] = set()
    for i, hook in enumerate(hooks):
        at = f"{where}: alerts.webhooks[{i}]"
        if not isinstance(hook, dict):
            raise BadInputError(f"{at}: must be a table with url and secret_env or secret_file")
        extra = set(hook) - {"name", "url", "secret_env", "secret_file"}
        if extra:
            raise BadInputError(f"{at}.{sorted(extra)[0]}: unknown key (known: name, url, secret_env, secret_file)")
        url = hook.get("url")
        if not isinstance(url, str) or not _http_url(url):
            raise BadInputError(f"{at}.url: must be an http(s) URL")
        secrets = [k for k in ("secret_env", "secret_file") if hook.get(k)]
        if len(secrets) != 1 or not all(isinstance(hook[k], str) for k in secrets):
            raise BadInputError(f"{at}: name exactly one of secret_env (a variable) or secret_file (a path) "
                                "holding the HMAC secret; the secret itself never goes in mrc.toml")
        name = hook.get("name", f"webhook-{i + 1}")
        if not isinstance(name, str) or not name or name == "alertmanager" or name in names:
            raise BadInputError(f"{at}.name: must be a unique, non-empty name other than 'alertmanager'")
        names.add(name)
        cfg.webhooks.append({"name": name, "url": url, secrets[0]: hook[secrets[0]]})
    return cfg


def _http_url(value: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# -- events -> alerts -------------------------------------------------------------------------------

@dataclass
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str               # the planned end while firing; when it ended once resolved
    status: str                # firing | resolved
    fired_seq: int
    changed_seq: int           # the audit event that last changed it (delivery cursors compare with this)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.labels["alertname"], self.labels["model"], self.labels["version"])

    def to_dict(self) -> dict[str, Any]:
        return {**{k: self.labels[k] for k in ("alertname", "model", "version", "severity")},
                "status": self.status, "starts_at": self.starts_at, "ends_at": self.ends_at,
                "summary": self.annotations.get("summary", ""), "fired_seq": self.fired_seq,
                "changed_seq": self.changed_seq}

    def payload(self) -> dict[str, Any]:
        """Alertmanager v2's postable alert; an end already past is a resolution."""
        return {"labels": dict(self.labels), "annotations": dict(self.annotations), "startsAt": self.starts_at,
                "endsAt": self.ends_at}

    def active(self, now: str) -> bool:
        return self.status == "firing" and _parse(self.ends_at) > _parse(now)


def _parse(stamp: str) -> datetime:
    try:
        value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return datetime.min.replace(tzinfo=timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _plus(stamp: str, seconds: float) -> str:
    return (_parse(stamp) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _one_line(text: Any, limit: int = 300) -> str:
    line = "".join(ch for ch in " ".join(str(text or "").split()) if ch.isprintable())  # a pager shows no ESC
    return line if len(line) <= limit else line[: limit - 1] + "…"


def fired_by(event, cfg: AlertsConfig) -> Alert | None:
    """The alert an audit event fires, or None. `event` is an AuditEvent."""
    action, details = event.action, event.details or {}
    if action in DELIVERY_ACTIONS:
        return None
    severity, name, summary, version = "", "", "", event.version
    if action == "canary-rollback":
        name, severity = "CanaryRolledBack", "critical" if event.actor == "controller" else "warning"
        summary = f"{event.model} {event.version}: canary rolled back to {details.get('stable', '?')}: {details.get('reason', '')}"
    elif action == "canary-abort":
        halted = str(details.get("reason", "")).startswith("halted") or event.actor == "controller"
        name, severity = "CanaryHalted", "critical" if halted else "warning"
        summary = f"{event.model} {event.version}: canary halted, stable {details.get('stable', '?')} at 100%: " \
                  f"{details.get('reason', '')}"
    elif action == "canary.unjudged":
        name, severity = "CanaryUnjudged", "critical"
        summary = f"{event.model} {event.version}: canary at {details.get('weight', '?')}% is UNJUDGED: " \
                  f"{details.get('reason', '')}"
    elif action == "canary-promote":
        name, severity = "CanaryPromoted", "info"
        summary = f"{event.model} {event.version}: canary promoted to production: {details.get('reason', '')}"
    elif action == "rollback":
        name, severity = "RollbackDone", "warning"
        summary = f"{event.model}: production rolled back {details.get('from', '?')} -> {event.version} by " \
                  f"{event.actor}: {details.get('reason', '')}"
    elif action == "drift.critical":
        name, severity = "DriftCritical", "critical"
        where = f" on {details['feature']}" if details.get("feature") else ""
        psi = f" (PSI {details['psi']:.2f})" if isinstance(details.get("psi"), (int, float)) else ""
        data = f" in {details['dataset_version']}" if details.get("dataset_version") else ""
        share = f", drift share {details['drift_share']:.2f}" if isinstance(details.get("drift_share"), (int, float)) else ""
        summary = f"{event.model}: drift critical{where}{psi}{data} vs production {event.version or '?'}{share}" + (
            f": {details['reason']}" if details.get("reason") else "")
    elif action in ("monitor.warning", "monitor.critical"):
        critical = action == "monitor.critical"
        name, severity = ("ModelDriftCritical", "critical") if critical else ("ModelDriftWarning", "warning")
        psi = f" (PSI {details['psi']:.2f})" if isinstance(details.get("psi"), (int, float)) else ""
        where = f" on {details['feature']}" if details.get("feature") else ""
        summary = f"{event.model} {event.version}: live traffic drift {details.get('tier', '')}{where}{psi} over the " \
                  f"{details.get('window', '?')} window"
    elif action == "watch.retrain.failed":
        name, severity = "RetrainFailed", "warning"
        summary = f"{event.model}: retraining on {details.get('dataset_version', '?')} after critical drift failed: " \
                  f"{details.get('error', '')}"
    elif action == "approval.requested":
        name, severity = "ApprovalRequested", "info"
        why = details.get("reason") or details.get("summary") or (  # the policy's reason holds its tally line
            f"needs {details['needs']} more" if isinstance(details.get("needs"), int) and details["needs"] > 0 else "")
        summary = f"{event.model} {event.version}: approval requested by {event.actor}" + (f": {why}" if why else "")
    elif action == HEALTH_BREACH:
        name = HEALTH_ALERTS.get(str(details.get("metric")), "")
        severity = "critical"
        summary = f"{event.model} {event.version}: production {details.get('metric')} {details.get('value')} over " \
                  f"{details.get('threshold')} ({details.get('requests')} requests in {details.get('window_s')} s)"
    if not name:
        return None
    annotations = {"summary": _one_line(summary)}
    if cfg.runbook_url:
        annotations["runbook_url"] = cfg.runbook_url
    hold = cfg.notice_s if severity == "info" and name != "ApprovalRequested" else cfg.hold_s
    labels = {**cfg.labels, "alertname": name, "model": event.model, "version": version or "", "severity": severity}
    return Alert(labels, annotations, event.at, _plus(event.at, hold), "firing", event.seq, event.seq)


def resolved_by(event, alert: Alert) -> bool:
    """Whether an audit event ends a firing alert."""
    if alert.status != "firing" or alert.labels["model"] != event.model or event.seq <= alert.fired_seq:
        return False
    if event.action == HEALTH_RECOVERED:
        return alert.labels["alertname"] == HEALTH_ALERTS.get(str((event.details or {}).get("metric")))
    names, same_version = RESOLVES.get(event.action, ((), False))
    return alert.labels["alertname"] in names and (not same_version or alert.labels["version"] == event.version)


def extended_by(event, alert: Alert) -> bool:
    """Whether an audit event says a firing health alert's condition still holds (a fresh endsAt)."""
    return (event.action == HEALTH_ONGOING and alert.status == "firing" and alert.labels["model"] == event.model
            and event.seq > alert.fired_seq
            and alert.labels["alertname"] == HEALTH_ALERTS.get(str((event.details or {}).get("metric"))))


def fold(events: Iterable, cfg: AlertsConfig) -> dict[tuple[str, str, str], Alert]:
    """Every alert's current state after these events (in seq order)."""
    alerts: dict[tuple[str, str, str], Alert] = {}
    for event in events:
        for alert in alerts.values():
            if resolved_by(event, alert):
                alert.status, alert.ends_at, alert.changed_seq = "resolved", event.at, event.seq
            elif extended_by(event, alert):
                alert.ends_at, alert.changed_seq = _plus(event.at, cfg.hold_s), event.seq
        fired = fired_by(event, cfg)
        if fired is not None:
            alerts[fired.key] = fired
    return alerts


def audit_failure(last_error: str, error: str, failures: int) -> bool:
    """Whether the failures-th failed try in a row is audited: a new error text always, the same
    one with exponential back-off (tries 1, 2, 4, 8 …: a dead receiver retried every 15 s costs
    about 13 audit records a day, not 5,760). The retry itself is not backed off."""
    return error != last_error or failures & (failures - 1) == 0


def mapped_actions() -> tuple[str, ...]:
    """Every action that can fire or resolve an alert (the delivery query reads only these)."""
    return tuple(sorted({"canary-rollback", "canary-abort", "canary-promote", "canary.unjudged", "rollback", "drift.critical",
                         "monitor.warning", "monitor.critical",
                         "watch.retrain.failed", "approval.requested", HEALTH_BREACH, HEALTH_RECOVERED,
                         HEALTH_ONGOING, *RESOLVES}))


def to_deliver(alerts: dict[tuple[str, str, str], Alert], cursor: int | None, now: str) -> list[Alert]:
    """What a receiver has not seen: alerts changed after its cursor; a new receiver (no cursor)
    gets the ones firing now, not the whole history."""
    if cursor is None:
        return sorted((a for a in alerts.values() if a.active(now)), key=lambda a: a.changed_seq)
    return sorted((a for a in alerts.values() if a.changed_seq > cursor), key=lambda a: a.changed_seq)


# -- health conditions ------------------------------------------------------------------------------

def health_verdicts(window, cfg: AlertsConfig) -> dict[str, tuple[bool, float, float] | None]:
    """metric -> (over threshold, value, threshold), or None when the window cannot say (too few
    requests, no latency): no data neither fires nor resolves. `window` is a HealthWindow."""
    if window is None or window.requests < cfg.min_requests:
        return {"error_rate": None, "p99_latency_ms": None}
    rate = window.errors / window.requests
    p99 = window.latency_p99_ms
    return {
        "error_rate": (rate > cfg.max_error_rate, round(rate, 4), cfg.max_error_rate),
        "p99_latency_ms": None if p99 is None or not math.isfinite(p99)
        else (p99 > cfg.max_p99_latency_ms, round(p99, 1), cfg.max_p99_latency_ms),
    }


def health_changes(firing: dict[str, Alert], verdicts: dict[str, tuple[bool, float, float] | None], now: str,
                   cfg: AlertsConfig) -> list[tuple[str, str, dict]]:
    """(action, metric, details) for each condition that started, still holds or ended; `firing`
    holds, per metric, the alert the log says is firing. A breach whose alert is past its endsAt
    (Alertmanager has resolved it) fires again; one still active is re-sent with a fresh endsAt
    once less than half of hold_s is left (Alertmanager's resolve_timeout model: a firing alert
    is re-posted before it ends), so it never lapses while the condition holds, provided
    health is checked more often than hold_s / 2 (`mrc alerts run` and the `mrc watch` loop)."""
    changes = []
    for metric, verdict in verdicts.items():
        if verdict is None:
            continue
        over, value, threshold = verdict
        details = {"metric": metric, "value": value, "threshold": threshold}
        alert = firing.get(metric)
        if over and (alert is None or not alert.active(now)):
            changes.append((HEALTH_BREACH, metric, details))
        elif over and (_parse(alert.ends_at) - _parse(now)).total_seconds() < cfg.hold_s / 2:
            changes.append((HEALTH_ONGOING, metric, details))
        elif not over and alert is not None:
            changes.append((HEALTH_RECOVERED, metric, details))
    return changes
