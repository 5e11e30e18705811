"""The shadow screen: a candidate answering a mirrored copy of production's requests, beside
production. Agreement and prediction PSI as bars against their limits, the score-difference
histogram drawn in blocks, the two score distributions, latency side by side, the judge's
verdict and its tests, and the mirror's counters (copies queued, dropped, failed).

Opened with `s` on the canary screen (`:canary MODEL`, then `s`). Reads only: `mrc shadow start|stop`
write. The report is read in a thread worker; the poll re-arms itself only after it finished
and only when the app polls (snapshots and tests drive it by hand).
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.assets import asset_path
from console.rollout.shadow_report import shadow_report
from screens.presenters import bar, sparkline

POLL_S = 2.0
BLOCKS = " ▁▂▃▄▅▆▇█"
BAR_WIDTH = 30


# ---------------------------------------------------------------------------------------------
# Pure presenters (tested without a terminal).


def title_line(report: dict[str, Any] | None, model: str, error: str = "") -> str:
    if error:
        return f"shadow · {model} · {error}"
    if report is None:
        return f"shadow · {model} · loading…"
    c = report["comparison"]
    state = "MIRRORING" if report.get("active") else "STOPPED"
    sample = report["shadow"].get("sample")
    sampled = f" {sample:.0%} of requests" if isinstance(sample, (int, float)) and report.get("active") else ""
    return (f"shadow · {model} · candidate {report['shadow']['version']} vs production {c.get('production') or '-'}"
            f" · {state}{sampled} · verdict {str(c.get('verdict', '')).upper()}")


def counters_line(report: dict[str, Any]) -> str:
    c = report["comparison"]
    counters = report.get("counters") or {}
    mirror = " · ".join(f"{k} {v}" for k, v in counters.items()) if counters else "router not running: no counters"
    return (f"{c['requests']} mirrored requests, {c['rows']} rows compared · errors shadow {c['shadow_errors']} / "
            f"production {c['production_errors']}\nmirror  {mirror}")


def limit_bars(comparison: dict[str, Any]) -> str:
    """Agreement and PSI as bars, each with the limit the judge holds it to."""
    settings = comparison.get("settings") or {}
    agreement, psi = comparison.get("agreement"), comparison.get("psi")
    min_agreement = float(settings.get("min_agreement", 0.95))
    max_psi = float(settings.get("max_psi", 0.2))
    a = "-" if agreement is None else f"{agreement:.2%}"
    p = "-" if psi is None else f"{psi:.4f}"
    psi_scale = max(2 * max_psi, psi or 0.0)
    return (f"agreement  {bar(agreement, 1.0, BAR_WIDTH)} {a:>8}  (at least {min_agreement:.0%})\n"
            f"PSI        {bar(psi, psi_scale, BAR_WIDTH)} {p:>8}  (at most {max_psi:g}; bar ends at {psi_scale:g})")


def histogram_lines(counts: list[int | float], height: int = 6, width_per_bin: int = 2, log: bool = False) -> list[str]:
    """A vertical bar chart in block characters, eighth-row resolution, tallest bin full height.
    log: heights by log(1 + count), so a tail of a few rows beside a peak of thousands shows."""
    top = max(counts, default=0)
    if not counts or top <= 0:
        return ["(no data)"]
    scale = (lambda c: math.log1p(c) / math.log1p(top)) if log else (lambda c: c / top)
    levels = [round(scale(c) * height * 8) if c > 0 else 0 for c in counts]
    levels = [max(1, lv) if c > 0 else 0 for lv, c in zip(levels, counts)]  # any row at all is seen
    lines = []
    for row in range(height - 1, -1, -1):
        cells = []
        for level in levels:
            fill = min(8, max(0, level - row * 8))
            cells.append(BLOCKS[fill] * width_per_bin)
        lines.append("".join(cells))
    return lines


def diff_lines(comparison: dict[str, Any], height: int = 6) -> list[str]:
    """The score-difference histogram (shadow - production) with its axis and quantiles."""
    hist = comparison.get("diff_histogram") or {}
    counts, edges = hist.get("counts") or [], hist.get("edges") or []
    out = ["score difference (shadow - production), rows per bin on a log scale"]
    if not counts:
        return out + ["(no rows compared yet)"]
    chart = histogram_lines(counts, height, log=True)
    out += ["  " + line for line in chart]
    width = len(chart[0])
    lo, hi = f"{edges[0]:+.3g}", f"{edges[-1]:+.3g}"
    middle = "0"
    gap = max(1, width - len(lo) - len(hi) - len(middle))
    out.append("  " + lo + " " * (gap // 2) + middle + " " * (gap - gap // 2) + hi)
    q = comparison.get("diff_quantiles") or {}
    if q:
        out.append("  " + "  ".join(f"{k} {v:+.4f}" for k, v in q.items()))
    return out


def distribution_lines(comparison: dict[str, Any]) -> list[str]:
    """Production's and the shadow's score distributions on the PSI's bins, one scale, share
    per bin on a log scale (10^-4, PSI's floor, to 1): PSI weighs the small bins too."""
    bins = comparison.get("psi_bins") or {}
    prod, shadow = bins.get("production") or [], bins.get("shadow") or []
    if not prod or not sum(prod) or not sum(shadow):
        return ["scores: (no rows compared yet)"]

    def shares(counts):
        return [math.log10(max(c / sum(counts), 1e-4)) for c in counts]

    edges = bins.get("edges") or []
    span = f"  bins {edges[0]:.3g} … {edges[-1]:.3g}" if edges else ""
    return ["scores     " + "".join(ch * 2 for ch in sparkline(shares(prod), lo=-4.0, hi=0.0)) + "  production" + span,
            "           " + "".join(ch * 2 for ch in sparkline(shares(shadow), lo=-4.0, hi=0.0)) + "  shadow"
            + "  (share per bin, log scale)"]


def latency_lines(comparison: dict[str, Any]) -> list[str]:
    """p50 and p99 of both servers on the same requests, as bars on one scale."""
    lat = comparison.get("latency") or {}
    prod, shadow = lat.get("production") or {}, lat.get("shadow") or {}
    values = [v for v in (prod.get("p50"), prod.get("p99"), shadow.get("p50"), shadow.get("p99")) if v is not None]
    if not values:
        return ["latency: (no rows compared yet)"]
    top = max(values) or 1.0
    out = []
    for q in ("p50", "p99"):
        for name, side in (("production", prod), ("shadow", shadow)):
            v = side.get(q)
            shown = "-" if v is None else f"{v:.2f} ms"
            out.append(f"{q} {name:<10} {bar(v, top, BAR_WIDTH)} {shown}")
    return out


def judge_lines(comparison: dict[str, Any]) -> list[str]:
    verdict = str(comparison.get("verdict", "")).upper()
    out = [f"judge: {verdict}"]
    out += [f"  {t.get('detail', '')}" for t in comparison.get("tests") or []]
    psi, max_psi = comparison.get("psi"), (comparison.get("settings") or {}).get("max_psi")
    if psi is not None and max_psi is not None:
        out.append(f"  prediction PSI {psi:.4f}, at most {max_psi:g} -> {'fail' if psi > max_psi else 'ok'}")
    return out


# ---------------------------------------------------------------------------------------------


class ShadowScreen(Screen):
    """One model's shadow run. Construct as ShadowScreen(model)."""

    CSS_PATH = str(asset_path("shadow.tcss"))

    BINDINGS = [
        Binding("r", "refresh_report", "Refresh", id="shadow.refresh"),
        Binding("escape", "back", "Back", id="shadow.back"),
    ]

    class Loaded(Message):
        def __init__(self, report: dict[str, Any] | None, error: str = "") -> None:
            super().__init__()
            self.report, self.error = report, error

    def __init__(self, model: str, *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.model = model
        self.report: dict[str, Any] | None = None
        self.error = ""
        self.loads = 0  # reports read so far (tests wait on it)

    def compose(self) -> ComposeResult:
        # markup=False: versions and reasons are data, never markup.
        yield Static(title_line(None, self.model), id="shadow-title", markup=False)
        yield Static("", id="shadow-counters", markup=False)
        yield Static("", id="shadow-limits", markup=False)
        yield Static("", id="shadow-diff", markup=False)
        yield Static("", id="shadow-scores", markup=False)
        yield Static("", id="shadow-latency", markup=False)
        yield Static("", id="shadow-judge", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.load_report()

    def action_refresh_report(self) -> None:
        self.load_report()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    @work(thread=True, exclusive=True, group="shadow-poll", exit_on_error=False)
    def load_report(self) -> None:
        try:
            report = shadow_report(self.app.workspace, self.model)
            report.pop("_comparison", None)
            self.post_message(self.Loaded(report))
        except Exception as exc:  # noqa: BLE001  (shown on the screen; the next poll tries again)
            self.post_message(self.Loaded(None, str(exc) if type(exc).__name__ == "BadInputError"
                                          else f"{type(exc).__name__}: {exc}"))

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self.loads += 1
        self.report, self.error = message.report, message.error
        self._show()
        if self.is_attached and getattr(self.app, "poll_s", 0) > 0:  # one read at a time
            self.set_timer(POLL_S, self.load_report)

    def _show(self) -> None:
        report = self.report
        verdict = report["comparison"].get("verdict") if report else None
        self.set_class(verdict == "fail", "verdict-fail")
        self.set_class(verdict == "pass", "verdict-pass")
        self.query_one("#shadow-title", Static).update(title_line(report, self.model, self.error))
        if report is None:
            for part in ("counters", "limits", "diff", "scores", "latency", "judge"):
                self.query_one(f"#shadow-{part}", Static).update("")
            return
        c = report["comparison"]
        self.query_one("#shadow-counters", Static).update(counters_line(report))
        self.query_one("#shadow-limits", Static).update(limit_bars(c))
        self.query_one("#shadow-diff", Static).update("\n".join(diff_lines(c)))
        self.query_one("#shadow-scores", Static).update("\n".join(distribution_lines(c)))
        self.query_one("#shadow-latency", Static).update("\n".join(latency_lines(c)))
        style = "bold red" if verdict == "fail" else ("bold green" if verdict == "pass" else "")
        self.query_one("#shadow-judge", Static).update(Text("\n".join(judge_lines(c)), style=style))
