"""Alert delivery: Alertmanager's v2 API and plain webhooks signed with HMAC-SHA256.

Runs after a command's own write has committed (console/cli.py), from the canary controller's
loop, from the health loops (`mrc alerts run`, `mrc watch`: console/monitor/alerts_run.py) and from
`mrc alerts flush`; never before or inside a rollback. All receivers are sent to at
once under one overall deadline (deadline_s, DNS included): a receiver that is down or hangs costs
the command at most that, never the command itself. Each receiver has a cursor (the last audit seq it
was given) in mrc.db; what fails stays behind the cursor and is retried on the next run. Every
delivery is audited (`alert.delivered`), a failure when its error changes and with exponential
back-off otherwise (`alert.failed`), and the first delivery after failures (`alert.recovered`);
those events are not alerts themselves.
The webhook secret is read from the environment or a file named in mrc.toml, used to sign, and
never stored or printed. stdlib only: this runs right after `mrc rollback`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from backends.base import PRODUCTION, BadInputError
from backends.support.redact import safe_line
from backends.support.timeutil import now_iso
from console.domain import AuditEvent
from console.notify import alerts as alert_rules
from console.release.audit import AuditLog, _write_tx, connect

SIGNATURE_HEADER = "X-Mrc-Signature"  # "sha256=<hex>" over the raw request body

CURSOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_cursors (
    receiver TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    updated TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
)
"""


# A receiver's current run of failed tries (none while it takes its alerts): what the back-off of
# the alert.failed audit record counts.
FAILURES_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_failures (
    receiver TEXT PRIMARY KEY,
    error TEXT NOT NULL,
    failures INTEGER NOT NULL,
    since TEXT NOT NULL
)
"""


@dataclass
class Delivery:
    receiver: str
    ok: bool
    alerts: int
    through_seq: int
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"receiver": self.receiver, "ok": self.ok, "alerts": self.alerts, "through_seq": self.through_seq,
                "error": self.error}


def config(ws) -> alert_rules.AlertsConfig:
    return alert_rules.parse_config(ws.config.get("alerts"), str(ws.config_path))


# -- reading the log ----------------------------------------------------------------------------

def _read(db_path: str) -> tuple[list[AuditEvent], int, dict[str, tuple[int, str]]]:
    """(the events that can fire or resolve an alert, the last audit seq, receiver -> (cursor, last error))."""
    if not os.path.exists(db_path):
        return [], 0, {}
    conn = connect(db_path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "audit_events" not in tables:
            return [], 0, {}
        actions = alert_rules.mapped_actions()
        rows = conn.execute(
            "SELECT seq, at, actor, action, model, version, details, prev_hash, hash FROM audit_events"
            f" WHERE action IN ({','.join('?' * len(actions))}) ORDER BY seq", actions).fetchall()
        last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()[0]
        cursors = {}
        if "alert_cursors" in tables:
            cursors = {r[0]: (int(r[1]), r[2]) for r in conn.execute("SELECT receiver, seq, last_error FROM alert_cursors")}
    finally:
        conn.close()
    events = []
    for r in rows:
        try:
            details = json.loads(r[6])
        except ValueError:
            details = {}
        events.append(AuditEvent(r[0], r[1], r[2], r[3], r[4], r[5], details if isinstance(details, dict) else {},
                                 r[7], r[8]))
    return events, int(last), cursors


def state(ws) -> dict[str, Any]:
    """For `mrc alerts`: every alert with its delivery (pending until every receiver has it)."""
    cfg = config(ws)
    events, last, cursors = _read(str(ws.db_path))
    alerts = alert_rules.fold(events, cfg)
    now = now_iso()
    receivers = [{"name": name, "cursor": cursors.get(name, (None, ""))[0], "last_error": cursors.get(name, (0, ""))[1]}
                 for name in cfg.receivers()]
    rows = []
    for alert in sorted(alerts.values(), key=lambda a: a.changed_seq, reverse=True):
        waiting = [r["name"] for r in receivers if alert in alert_rules.to_deliver({alert.key: alert}, r["cursor"], now)]
        status = "pending" if waiting else ("fired" if alert.active(now) else "resolved")
        rows.append({**alert.to_dict(), "state": status, "pending_for": waiting,
                     "runbook_url": alert.annotations.get("runbook_url", "")})
    return {"alerts": rows, "receivers": receivers, "audit_seq": last, "configured": cfg.enabled}


# -- health conditions ---------------------------------------------------------------------------

def check_health(ws, *, actor: str, now: float | None = None, metrics=None,
                 unreadable=None) -> list[AuditEvent]:
    """Read production's health of every model; audit each condition that started, still holds
    (past half its hold: a fresh endsAt, re-sent) or ended.
    A model the metrics backend cannot read is skipped (no data neither fires nor resolves) and
    handed to `unreadable(model, version, exc)` when given. `metrics`: a backend kept by a loop
    (console/monitor/alerts_run.py), so its index of the request log is not rebuilt every round."""
    cfg = config(ws)
    if not cfg.enabled:
        return []
    events, _, _ = _read(str(ws.db_path))
    alerts = alert_rules.fold(events, cfg)
    registry, audit = ws.registry(), ws.audit()
    metrics = ws.metrics() if metrics is None else metrics
    end = time.time() if now is None else now
    stamp = datetime.fromtimestamp(end, timezone.utc).isoformat().replace("+00:00", "Z")
    written = []
    for summary in registry.list_models():
        model = summary.name
        production = registry.get_pointers(model).get(PRODUCTION)
        if not production:
            continue
        try:
            window = metrics.health(model, production, end - cfg.health_window_s, end)
        except Exception as exc:  # noqa: BLE001  (an unreadable backend is no verdict; the canary judge fails closed, not this)
            if unreadable is not None:
                unreadable(model, production, exc)
            continue
        firing = {metric: alert for metric, name in alert_rules.HEALTH_ALERTS.items()
                  for alert in alerts.values()
                  if alert.labels["alertname"] == name and alert.labels["model"] == model and alert.status == "firing"}
        for action, _metric, details in alert_rules.health_changes(
                firing, alert_rules.health_verdicts(window, cfg), stamp, cfg):
            details.update({"requests": window.requests, "window_s": cfg.health_window_s})
            written.append(audit.append(actor, action, model, production, details))
    return written


# -- sending -------------------------------------------------------------------------------------

def secret_of(hook: dict[str, str]) -> bytes:
    if hook.get("secret_env"):
        value = os.environ.get(hook["secret_env"], "")
        if not value:
            raise BadInputError(f"alerts.webhooks {hook['name']}: ${hook['secret_env']} is not set (the HMAC secret)")
        return value.encode()
    try:
        with open(os.path.expanduser(hook["secret_file"]), "rb") as fh:
            value = fh.read().strip()
    except OSError as exc:
        raise BadInputError(f"alerts.webhooks {hook['name']}: secret_file {hook['secret_file']}: "
                            f"{exc.strerror or exc}") from None
    if not value:
        raise BadInputError(f"alerts.webhooks {hook['name']}: secret_file {hook['secret_file']} is empty")
    return value


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode(errors="replace").strip()
        raise OSError(f"HTTP {exc.code}" + (f": {detail}" if detail else "")) from None
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from None


def send(cfg: alert_rules.AlertsConfig, receiver: str, batch: list[dict[str, Any]], *,
         timeout: float | None = None) -> None:
    """POST the alerts to one receiver; raises OSError/BadInputError saying why it failed."""
    timeout = cfg.timeout_s if timeout is None else timeout
    if receiver == "alertmanager":
        _post(f"{cfg.alertmanager_url}/api/v2/alerts", json.dumps(batch).encode(), {}, timeout)
        return
    hook = next(h for h in cfg.webhooks if h["name"] == receiver)
    body = json.dumps({"version": "mrc.alerts/1", "receiver": receiver, "sent_at": now_iso(), "alerts": batch},
                      sort_keys=True).encode()
    _post(hook["url"], body, {SIGNATURE_HEADER: sign(secret_of(hook), body)}, timeout)


def deliver(ws, *, actor: str = "alerts", deadline_s: float | None = None) -> list[Delivery]:
    """Give every receiver what it has not had yet; audit the outcome. Never raises for a receiver
    that is down (the result says so); a bad [alerts] table raises BadInputError."""
    cfg = config(ws)
    if not cfg.enabled:
        return []
    events, last, cursors = _read(str(ws.db_path))
    if not last:
        return []
    alerts = alert_rules.fold(events, cfg)
    now = now_iso()
    log = ws.audit()
    batches = {}
    for receiver in cfg.receivers():
        cursor = cursors.get(receiver, (None, ""))[0]
        batch = alert_rules.to_deliver(alerts, cursor, now)
        if batch:
            batches[receiver] = (cursor, batch)
        elif cursor != last:
            _advance(log, receiver, cursor, last, None)
    wait = cfg.deadline_s if deadline_s is None else deadline_s
    outcomes = send_all(cfg, {r: [a.payload() for a in batch] for r, (_, batch) in batches.items()}, wait)
    results = []
    for receiver, (cursor, batch) in batches.items():
        error = outcomes[receiver]
        if error is not None:
            _advance(log, receiver, cursor, cursor, ("alert.failed", actor, {
                "receiver": receiver, "error": error, "pending": len(batch), "from_seq": cursor}), error=error)
            results.append(Delivery(receiver, False, len(batch), cursor or 0, error))
            continue
        _advance(log, receiver, cursor, last, ("alert.delivered", actor, {
            "receiver": receiver, "through_seq": last,
            "alerts": [{"alertname": a.labels["alertname"], "model": a.labels["model"], "version": a.labels["version"],
                        "status": a.status, "seq": a.changed_seq} for a in batch]}))
        results.append(Delivery(receiver, True, len(batch), last))
    return results


_IN_FLIGHT: dict[str, Any] = {}  # receiver URL -> the thread of its last try (left running past a deadline)


def send_all(cfg: alert_rules.AlertsConfig, batches: dict[str, list[dict[str, Any]]],
             deadline_s: float) -> dict[str, str | None]:
    """Every receiver at once, each in its own daemon thread (the host's DNS lookup too, which
    urlopen's timeout does not cover), under ONE overall deadline: receiver -> None when it took
    the batch, else why not. A receiver still busy at the deadline is a failure (its alerts stay
    behind the cursor for the next run); its thread is left to end on its own, it writes nothing."""
    import threading

    outcomes: dict[str, str | None] = {}

    def one(receiver: str, batch: list[dict[str, Any]]) -> None:
        try:
            send(cfg, receiver, batch, timeout=min(cfg.timeout_s, deadline_s))
            outcomes[receiver] = None
        except (OSError, BadInputError, ValueError) as exc:
            outcomes[receiver] = str(exc)[:300] or type(exc).__name__
        except Exception as exc:  # noqa: BLE001  (a thread that dies silently would read as "no answer")
            outcomes[receiver] = f"{type(exc).__name__}: {exc}"[:300]

    def where(receiver: str) -> str:
        return cfg.alertmanager_url if receiver == "alertmanager" else \
            next(h["url"] for h in cfg.webhooks if h["name"] == receiver)

    busy = {r for r in batches if (t := _IN_FLIGHT.get(where(r))) is not None and t.is_alive()}
    threads = {r: threading.Thread(target=one, args=(r, b), name=f"mrc-alerts-{r}", daemon=True)
               for r, b in batches.items() if r not in busy}
    for receiver, thread in threads.items():
        _IN_FLIGHT[where(receiver)] = thread
        thread.start()
    for receiver in busy:  # a long-lived process (the controller) never piles up threads on a hung host
        outcomes[receiver] = "the previous try is still waiting for an answer (DNS or connection)"
    end = time.monotonic() + deadline_s
    for thread in threads.values():
        thread.join(max(0.0, end - time.monotonic()))
    done = dict(outcomes)  # a snapshot: a thread that answers after the deadline changes nothing
    return {r: done[r] if r in done else f"no answer within {deadline_s:g} s (all receivers together)"
            for r in batches}


def _advance(log: AuditLog, receiver: str, seen: int | None, new: int | None, event, *, error: str = "") -> None:
    """Move the receiver's cursor from what this run read (compare-and-swap: another process that
    delivered meanwhile wins and nothing is written) and append the outcome in the same transaction.
    A failure is audited when its error text changes and otherwise only on the 1st, 2nd, 4th, 8th …
    try of a run of failures (the controller retries every 15 s; a dead receiver must not flood the
    log); the first delivery after failures is audited as alert.recovered."""
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(CURSOR_SCHEMA)
        conn.execute(FAILURES_SCHEMA)
        row = conn.execute("SELECT seq FROM alert_cursors WHERE receiver = ?", (receiver,)).fetchone()
        if (row[0] if row else None) != seen:
            return
        if new is not None:
            conn.execute("INSERT INTO alert_cursors (receiver, seq, updated, last_error) VALUES (?,?,?,?)"
                         " ON CONFLICT(receiver) DO UPDATE SET seq = excluded.seq, updated = excluded.updated,"
                         " last_error = excluded.last_error", (receiver, new, now_iso(), error))
        if event is None:
            return
        action, actor, details = event
        streak = conn.execute("SELECT error, failures, since FROM alert_failures WHERE receiver = ?",
                              (receiver,)).fetchone()
        if action == "alert.failed":
            failures = (streak[1] if streak else 0) + 1
            since = streak[2] if streak else now_iso()
            conn.execute("INSERT INTO alert_failures (receiver, error, failures, since) VALUES (?,?,?,?)"
                         " ON CONFLICT(receiver) DO UPDATE SET error = excluded.error, failures = excluded.failures",
                         (receiver, details["error"], failures, since))
            if streak is not None and not alert_rules.audit_failure(streak[0], details["error"], failures):
                return
            details = {**details, "failures": failures, "since": since}
        elif action == "alert.delivered" and streak is not None:
            conn.execute("DELETE FROM alert_failures WHERE receiver = ?", (receiver,))
            log.append_in(conn, actor, "alert.recovered", "", "", {
                "receiver": receiver, "failures": streak[1], "since": streak[2], "last_error": streak[0]})
        log.append_in(conn, actor, action, "", "", details)

    _write_tx(log.db_path, write)


def send_test(ws) -> list[Delivery]:
    """`mrc alerts test`: one short-lived MrcTest alert to every receiver; nothing is written."""
    cfg = config(ws)
    if not cfg.enabled:
        raise BadInputError(f"{ws.config_path}: [alerts] names no alertmanager_url and no webhooks")
    now = now_iso()
    alert = alert_rules.Alert({**cfg.labels, "alertname": "MrcTest", "model": "", "version": "", "severity": "info"},
                              {"summary": "mrc alerts test: this receiver gets mrc's alerts",
                               **({"runbook_url": cfg.runbook_url} if cfg.runbook_url else {})},
                              now, alert_rules._plus(now, 300), "firing", 0, 0)
    results = []
    for receiver in cfg.receivers():
        try:
            send(cfg, receiver, [alert.payload()])
            results.append(Delivery(receiver, True, 1, 0))
        except (OSError, BadInputError, ValueError) as exc:
            results.append(Delivery(receiver, False, 1, 0, str(exc)[:300]))
    return results


def after_write(ws, *, actor: str) -> list[Delivery]:
    """Best effort after a command's write committed: never raises, never holds a command past
    [alerts] deadline_s (all receivers together). Nothing happens where [alerts] is not configured."""
    try:
        if not isinstance(ws.config.get("alerts"), dict):
            return []
        return deliver(ws, actor=actor)
    except Exception as exc:  # noqa: BLE001  (a broken [alerts] or a locked database: the command itself succeeded)
        import sys

        print(f"mrc: alerts not delivered: {safe_line(exc)} (retried on the next command or `mrc alerts flush`)",
              file=sys.stderr)
        return []
