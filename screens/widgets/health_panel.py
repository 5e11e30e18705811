"""Production's live health on home: error rate, p99 latency and request rate of the selected
model's production version, from the workspace's metrics backend, as numbers and sparklines,
each against the team's [alerts] thresholds (red when over one), and the alerts firing now.

A worker reads one window per refresh (on a timer, one read at a time); the panel keeps the
last WINDOWS points per model. No data is shown as "no data" and drawn as a gap, never as a
healthy zero; a metrics backend that fails is named, not hidden.
"""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from backends.support.timeutil import now_iso
from console.notify.alerts import fold
from console.release.health import thresholds
from screens.presenters import (
    HealthLimits,
    HealthPoint,
    firing_line,
    health_breaches,
    health_numbers,
    health_series,
    sparkline,
)

WINDOW_S = 10.0  # each point is one window of this many seconds
WINDOWS = 30  # points kept per model: the sparkline's width
REFRESH_S = 2.0


class HealthPanel(Vertical):
    class Measured(Message):
        def __init__(self, model: str, version: str | None, point: HealthPoint | None, error: str = "",
                     firing: list[tuple[str, str]] | None = None) -> None:
            super().__init__()
            self.model, self.version, self.point, self.error = model, version, point, error
            self.firing = firing

    def __init__(self, *, id: str | None = None, refresh_s: float = REFRESH_S) -> None:
        super().__init__(id=id)
        self.model: str | None = None
        self.version: str | None = None
        self.refresh_s = refresh_s
        self.history: dict[tuple[str, str], deque[HealthPoint]] = {}
        self.error = ""
        self.measured = 0  # windows read so far (tests wait on it)
        self._metrics = None  # one backend object: the local one reads its log incrementally
        self._timer = None
        self.limits: HealthLimits | None = None  # the team's [alerts] thresholds, read once
        self._alerts_config = None
        self.firing: list[tuple[str, str]] = []  # (alertname, version) firing for the model now
        self.alarm = False  # shown red: metrics failing or a window over the thresholds

    def compose(self) -> ComposeResult:
        yield Static("production health: select a model", id="health-numbers", markup=False)
        yield Static("", id="health-sparks", markup=False)
        alerts = Static("", id="health-alerts", markup=False)
        alerts.display = False
        yield alerts

    def show_model(self, model: str | None, production: str | None) -> None:
        """Follow the selected model; measure at once when it changed."""
        if (model, production) == (self.model, self.version):
            return
        self.model, self.version, self.error = model, production, ""
        self._paint()
        self.refresh_now()

    def refresh_now(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self.model and self.version:
            self._measure(self.model, self.version)

    @work(thread=True, exclusive=True, group="home-health", exit_on_error=False)
    def _measure(self, model: str, version: str) -> None:
        end = time.time()
        try:
            if self._metrics is None:
                self._metrics = self.app.workspace.metrics()
            w = self._metrics.health(model, version, end - WINDOW_S, end)
        except Exception as exc:  # noqa: BLE001  (shown in the panel; the next refresh tries again)
            self.post_message(self.Measured(model, version, None, f"{type(exc).__name__}: {exc}", self._firing(model)))
            return
        self.post_message(self.Measured(model, version, HealthPoint(end, w.requests, w.errors, w.latency_p99_ms, WINDOW_S),
                                        firing=self._firing(model)))

    def _firing(self, model: str) -> list[tuple[str, str]] | None:
        """The alerts firing for the model now, folded from the audit log as `mrc alerts` does;
        None when they cannot be read (the panel keeps what it showed)."""
        try:
            ws = self.app.workspace
            if self._alerts_config is None:
                self._alerts_config = thresholds(ws.config, str(ws.config_path))
                cfg = self._alerts_config
                self.limits = HealthLimits(cfg.max_error_rate, cfg.max_p99_latency_ms, cfg.min_requests,
                                           cfg.health_window_s)
            alerts = fold(ws.audit().events(model=model), self._alerts_config)
        except Exception:  # noqa: BLE001  (no audit log yet, a bad [alerts]: the numbers still show)
            return None
        now = now_iso()
        return sorted((a.labels["alertname"], a.labels.get("version", "")) for a in alerts.values()
                      if a.active(now) and a.labels.get("model") == model)

    @on(Measured)
    def _on_measured(self, message: Measured) -> None:
        self.measured += 1
        if message.point is not None:
            points = self.history.setdefault((message.model, message.version), deque(maxlen=WINDOWS))
            points.append(message.point)
        if (message.model, message.version) == (self.model, self.version):
            self.error = message.error
            if message.firing is not None:
                self.firing = message.firing
            self._paint()
        # re-arm only now: one read at a time; no timer when the app does not poll (snapshots)
        if self.is_attached and getattr(self.app, "poll_s", 0) > 0 and self.refresh_s > 0:
            self._timer = self.set_timer(self.refresh_s, self.refresh_now)

    def points(self) -> list[HealthPoint]:
        return list(self.history.get((self.model or "", self.version or ""), ()))

    def _paint(self) -> None:
        if not self.model:
            return
        points = self.points()
        numbers = health_numbers(self.model, self.version, points, self.error, self.limits)
        over = bool(health_breaches(points[-1] if points else None, self.limits or HealthLimits()))
        self.alarm = bool(self.error or over)
        style = "bold red" if self.alarm else ""  # the team's thresholds, not a fixed 5 %
        self.query_one("#health-numbers", Static).update(Text(numbers, style=style))
        alerts = self.query_one("#health-alerts", Static)
        alerts.update(Text(firing_line(self.firing), style="bold red"))
        alerts.display = bool(self.firing)  # a line only while something fires
        if not self.version:
            self.query_one("#health-sparks", Static).update("")
            return
        sparks = Text()
        for key, label in (("error_rate", "errors"), ("p99_ms", "p99"), ("rate", "req/s")):
            sparks.append(f"{label:>7} ", style="dim")
            values = health_series(points, key)
            top = max([v for v in values if v is not None] + [0.0]) or 1.0  # all zero: the lowest block, not the middle
            sparks.append(sparkline(values, lo=0.0, hi=top).ljust(WINDOWS) + "  ")
        self.query_one("#health-sparks", Static).update(sparks)
