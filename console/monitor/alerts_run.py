"""Production health checked continuously: `mrc alerts run` and each round of `mrc watch`.

A round reads production's health of every model (console/alert_delivery.check_health: a breach
starting, still holding or ending is audited) and delivers what is pending. A round never raises:
a metrics backend that is down, a receiver that fails or a locked database is one line when it
starts, changes or ends (a metrics read failing also audited: `metrics.unreadable` /
`metrics.readable`), and the next round tries again. The loop runs rounds every `interval`
seconds, well under hold_s / 2 so a firing health alert is re-sent before Alertmanager ends it.
The clock and the wait are parameters: tests drive rounds without sleeping.
stdlib only, like delivery itself; imported only where [alerts] is configured.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from backends.base import BadInputError
from console.notify import delivery as alert_delivery
from console.rollout.controller import alert_unjudged, settle_unjudged
from backends.support.redact import safe_line

DEFAULT_INTERVAL_CAP_S = 60.0  # a breach pages within a minute (plus the health window) by default

# report(record, line, problem): record for --json, line for people, problem -> stderr
Report = Callable[[dict[str, Any], str, bool], None]


def default_interval(cfg) -> float:
    """Every minute, or sooner: under a quarter of hold_s (a firing alert is re-sent in time) and
    about half the health window (a short breach is still seen)."""
    return min(DEFAULT_INTERVAL_CAP_S, cfg.hold_s / 4, max(1.0, cfg.health_window_s / 2))


def check_interval(value: float | None, cfg, where) -> float:
    """The loop's interval: the default, or a number of seconds > 0 and under hold_s / 2."""
    if value is None:
        return default_interval(cfg)
    if not (math.isfinite(value) and value > 0):
        raise BadInputError(f"--interval {value!r}: must be a number of seconds > 0")
    if value >= cfg.hold_s / 2:
        raise BadInputError(f"--interval {value:g}: must be under {where}: alerts.hold_s / 2 ({cfg.hold_s / 2:g} s), "
                            "or a firing health alert lapses in Alertmanager between two rounds")
    return float(value)


@dataclass
class RoundResult:
    health: list = field(default_factory=list)        # the health.* events this round audited
    deliveries: list = field(default_factory=list)    # alert_delivery.Delivery per receiver sent to
    problems: dict[str, str] = field(default_factory=dict)  # what failed: "metrics MODEL" / "receiver R" / … -> why

    @property
    def ok(self) -> bool:
        return not self.problems


FRESH_METRICS_EVERY = 30  # rounds between fresh metrics backends (a first read costs one window's tail)


class HealthRounds:
    """One workspace's rounds; remembers the last round's problems, so each is reported once per change."""

    def __init__(self, ws, *, actor: str, report: Report, deadline_s: float | None = None):
        self.ws, self.actor, self.report = ws, actor, report
        cfg = alert_delivery.config(ws)
        # nothing waits on a loop's delivery: a slow receiver may take up to its own timeout
        self.deadline_s = max(cfg.deadline_s, cfg.timeout_s) if deadline_s is None else deadline_s
        self.metrics = None  # kept between rounds (the local backend indexes the request log once)
        self.problems: dict[str, str] = {}
        self.rounds = 0

    def round(self, now: float | None = None, *, metrics=None) -> RoundResult:
        result = RoundResult()
        unreadable: dict[str, tuple[str, str]] = {}

        def on_unreadable(model: str, version: str, exc: BaseException) -> None:
            unreadable[model] = (version, _why(exc))
            result.problems[f"metrics {model}"] = f"production {version}: health unreadable: {_why(exc)}"

        try:
            if metrics is not None:
                self.metrics = metrics
            elif self.metrics is None or (self.rounds and self.rounds % FRESH_METRICS_EVERY == 0):
                # kept between rounds (the local backend reads only new bytes), but renewed now and
                # then: it keeps every request since its first read, and a daemon must not grow forever
                self.metrics = self.ws.metrics()
            result.health = alert_delivery.check_health(self.ws, actor=self.actor, now=now, metrics=self.metrics,
                                                        unreadable=on_unreadable)
        except Exception as exc:  # noqa: BLE001  (the registry or the metrics backend itself: next round)
            self.metrics = None
            result.problems["health check"] = _why(exc)
        unjudged: list = []
        try:  # a live canary nobody judges: alerted now (delivered below), settled after the delivery
            unjudged = alert_unjudged(self.ws, actor=self.actor)
        except Exception as exc:  # noqa: BLE001  (one line; the next round tries again)
            result.problems["unjudged canaries"] = _why(exc)
        for event in result.health:
            d = event.details
            self.report({"event": event.action, "model": event.model, "version": event.version, "metric": d.get("metric"),
                         "value": d.get("value"), "threshold": d.get("threshold"), "seq": event.seq},
                        f"{event.action}: {event.model} {event.version} {d.get('metric')} {_num(d.get('value'))} "
                        f"(threshold {_num(d.get('threshold'))})", False)
        try:
            result.deliveries = alert_delivery.deliver(self.ws, actor=self.actor, deadline_s=self.deadline_s)
        except Exception as exc:  # noqa: BLE001  (a locked database, a secret file gone: next round)
            result.problems["delivery"] = _why(exc)
        for delivery in result.deliveries:
            if delivery.ok:
                self.report({"event": "delivered", **delivery.to_dict()},
                            f"{delivery.receiver}: delivered {delivery.alerts} alert(s) through seq {delivery.through_seq}",
                            False)
            else:
                result.problems[f"receiver {delivery.receiver}"] = delivery.error
        try:  # resumed or rolled back ([canary] orphaned) once the page is out; its end pages next round
            for record in settle_unjudged(self.ws, unjudged, actor=self.actor):
                self.report({"event": "canary.unjudged", **record},
                            f"canary.unjudged: {record['model']} {record['candidate']}: {record['why']}; "
                            f"{record['action']}", False)
        except Exception as exc:  # noqa: BLE001  (one line; the next round tries again)
            result.problems["unjudged canaries"] = _why(exc)
        self._changes(result.problems, unreadable)
        self.rounds += 1
        return result

    def _changes(self, problems: dict[str, str], unreadable: dict[str, tuple[str, str]]) -> None:
        """One line per problem that started or changed, one per problem that ended; a metrics
        read failing is audited on the same changes (why no health alert moved)."""
        for key, why in problems.items():
            if self.problems.get(key) != why:
                self.report({"event": "problem", "what": key, "error": why}, f"{key}: {why} (retried next round)", True)
                if key.startswith("metrics "):
                    model = key.partition(" ")[2]
                    self._audit("metrics.unreadable", model, unreadable[model][0], {"error": why})
        for key in self.problems.keys() - problems.keys():
            self.report({"event": "recovered", "what": key}, f"{key}: ok again", True)
            if key.startswith("metrics "):
                self._audit("metrics.readable", key.partition(" ")[2], "", {"after": self.problems[key]})
        self.problems = dict(problems)

    def _audit(self, action: str, model: str, version: str, details: dict[str, Any]) -> None:
        try:
            self.ws.audit().append(self.actor, action, model, version, {**details, "source": "mrc alerts"})
        except Exception:  # noqa: BLE001  (the line above was printed; the database is the next round's problem)
            pass


def run(rounds: HealthRounds, *, interval: float, max_rounds: int = 0, stopped: Callable[[], bool],
        wait: Callable[[float], Any], clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic) -> int:
    """Rounds every `interval` seconds until stopped() (SIGTERM, Ctrl-C) or after max_rounds
    (0: never); `wait(s)` returns early when stopped. Returns how many rounds ran."""
    done = 0
    while not stopped():
        started = monotonic()
        rounds.round(clock())
        done += 1
        if max_rounds and done >= max_rounds:
            break
        wait(max(0.0, interval - (monotonic() - started)))
    return done


def _why(exc: BaseException) -> str:
    text = safe_line(exc, 300)
    return text if text and type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
