"""The monitor screen (`:monitor MODEL`): production's live traffic against its reference.

Features sorted by tier then PSI, each with its PSI as a bar against the tiers and a 24 h
sparkline of hourly PSI; the prediction histogram against its reference; label coverage and
accuracy with its interval; the detector's state with the stated false alarms per month; the
drift alerts firing. Reads the report in a thread worker (console/monitor/monitor_run.py folds
what is new first); the poll re-arms itself only after it finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from screens.presenters import bar, sparkline

POLL_S = 5.0
BAR_WIDTH = 20
TIER_STYLE = {"critical": "bold red", "warning": "bold yellow", "ok": "green"}


# ---------------------------------------------------------------------------------------------
# Pure presenters (tested without a terminal).


def title_line(report: dict[str, Any] | None, model: str, error: str = "") -> str:
    if error:
        return f"monitor · {model} · {error}"
    if report is None:
        return f"monitor · {model} · loading…"
    det = report.get("detector") or {}
    return (f"monitor · {model} · production {report.get('production') or '-'} · {report['tier'].upper()} · "
            f"window {report['window']['name']} · {report.get('units', 0)} units, {report.get('records', 0)} records, "
            f"{report.get('distinct_rows', 0):.0f} distinct rows · detector "
            f"{'ALARMED' if det.get('alarmed') else 'quiet'} (≤ {report.get('false_alarms_per_month', 1):g} false "
            f"alarm(s) a month)")


def label_line(labels: dict[str, Any]) -> str:
    coverage = labels.get("coverage")
    if coverage is None:
        return "labels: no predictions in the window"
    head = f"labels: {labels.get('labelled', 0)} of {labels.get('predictions', 0)} ({coverage:.0%} covered)"
    if labels.get("accuracy") is None:
        return head + " · accuracy: waiting for labels"
    lo, hi = labels.get("accuracy_interval") or (None, None)
    interval = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
    pr = "".join(f" · {k} {labels[k]:.3f}" for k in ("precision", "recall") if labels.get(k) is not None)
    pending = f" · {labels['pending']} label(s) waiting for their request" if labels.get("pending") else ""
    return f"{head} · accuracy {labels['accuracy']:.3f}{interval}{pr}{pending}"


def feature_lines(features: list[dict[str, Any]], sparklines: dict[str, list[float]] | None,
                  critical: float = 0.3) -> list[str]:
    """One line per feature, worst first: tier, PSI bar (ends at 2 × critical), PSI, KS,
    missing and unseen shares, and the 24 h sparkline of hourly PSI."""
    if not features:
        return ["(no traffic folded yet)"]
    width = max(len(f["name"]) for f in features)
    top = 2 * critical
    out = [f"{'feature':<{width}}  tier      {'PSI':<{BAR_WIDTH}}  psi     ks      missing unseen  24 h"]
    for f in features:
        spark = sparkline((sparklines or {}).get(f["name"], []), lo=0.0, hi=top)
        psi = f.get("psi")
        out.append(f"{f['name']:<{width}}  {f['tier']:<8}  {bar(psi, top, BAR_WIDTH)}  {_num(psi):<6}  "
                   f"{_num(f.get('ks')):<6}  {_pct(f.get('missing_rate')):<7} {_pct(f.get('unseen_share')):<6}  {spark}")
    return out


def prediction_lines(hist: dict[str, Any] | None) -> list[str]:
    """The prediction's distribution now against its reference, share per bin on one scale."""
    if not hist or not sum(hist.get("current") or []):
        return ["prediction: (no predictions in the window)"]
    cur = hist["current"][:-2]
    ref = (hist.get("reference") or [])[:-2]

    def shares(counts):
        total = sum(counts) or 1
        return [c / total for c in counts]

    top = max(shares(cur) + (shares(ref) if ref and sum(ref) else []))
    lines = ["prediction " + "".join(ch * 2 for ch in sparkline(shares(cur), lo=0.0, hi=top)) + "  now"]
    if ref and sum(ref):
        lines.append("           " + "".join(ch * 2 for ch in sparkline(shares(ref), lo=0.0, hi=top))
                     + "  reference (the version's first traffic)")
    else:
        lines.append("           reference: not pinned yet (the version's first 500 units)")
    return lines


def alert_lines(alerts: list[dict[str, Any]] | None, model: str) -> list[str]:
    mine = [a for a in alerts or [] if (a.get("labels") or {}).get("model") == model
            and str((a.get("labels") or {}).get("alertname", "")).startswith("ModelDrift")]
    if not mine:
        return ["alerts: none for live drift"]
    return [f"alert {a['labels']['alertname']} ({a['labels'].get('severity')}): {a.get('state')}" for a in mine]


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


# ---------------------------------------------------------------------------------------------


class MonitorScreen(Screen):
    """One model's live monitor. Construct as MonitorScreen(model)."""

    CSS_PATH = str(Path(__file__).resolve().parents[1] / "assets" / "shadow.tcss")

    BINDINGS = [
        Binding("r", "refresh_report", "Refresh", id="monitor.refresh"),
        Binding("escape", "back", "Back", id="monitor.back"),
    ]

    class Loaded(Message):
        def __init__(self, report: dict[str, Any] | None, alerts: list | None, error: str = "") -> None:
            super().__init__()
            self.report, self.alerts, self.error = report, alerts, error

    def __init__(self, model: str, *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.model = model
        self.report: dict[str, Any] | None = None
        self.alerts: list | None = None
        self.error = ""
        self.loads = 0

    def selected_model(self) -> str:
        return self.model

    def compose(self) -> ComposeResult:
        yield Static(title_line(None, self.model), id="monitor-title", markup=False)
        yield Static("", id="monitor-labels", markup=False)
        yield Static("", id="monitor-features", markup=False)
        yield Static("", id="monitor-prediction", markup=False)
        yield Static("", id="monitor-alerts", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.load_report()

    def action_refresh_report(self) -> None:
        self.load_report()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    @work(thread=True, exclusive=True, group="monitor-poll", exit_on_error=False)
    def load_report(self) -> None:
        from console.monitor.monitor_run import monitor_once

        try:
            report = monitor_once(self.app.workspace, self.model, with_detail=True)
        except Exception as exc:  # noqa: BLE001  (shown on the screen; the next poll tries again)
            self.post_message(self.Loaded(None, None, str(exc) if type(exc).__name__ == "BadInputError"
                                          else f"{type(exc).__name__}: {exc}"))
            return
        alerts = None
        try:
            from console.notify.delivery import state

            alerts = state(self.app.workspace)["alerts"]
        except Exception:  # noqa: BLE001  (no [alerts]: the line says none)
            alerts = None
        self.post_message(self.Loaded(report, alerts))

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self.loads += 1
        self.report, self.alerts, self.error = message.report, message.alerts, message.error
        self._show()
        if self.is_attached and getattr(self.app, "poll_s", 0) > 0:
            self.set_timer(POLL_S, self.load_report)

    def _show(self) -> None:
        report = self.report
        self.query_one("#monitor-title", Static).update(
            Text(title_line(report, self.model, self.error), style=TIER_STYLE.get(report["tier"], "") if report else ""))
        if report is None:
            for part in ("labels", "features", "prediction", "alerts"):
                self.query_one(f"#monitor-{part}", Static).update("")
            return
        detail = report.get("detail") or {}
        self.query_one("#monitor-labels", Static).update(label_line(report.get("labels") or {}))
        self.query_one("#monitor-features", Static).update("\n".join(feature_lines(
            report.get("features") or [], detail.get("sparklines"))))
        self.query_one("#monitor-prediction", Static).update("\n".join(prediction_lines(detail.get("prediction_histogram"))))
        self.query_one("#monitor-alerts", Static).update("\n".join(alert_lines(self.alerts, self.model)))
