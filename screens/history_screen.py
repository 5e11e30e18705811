"""History and lineage of one model: the version timeline, each metric across versions as a
plot, the pointer history (who moved production, when, why), the lineage of the highlighted
version, and a side-by-side diff of two versions (`space` marks one, `d` diffs it with the cursor)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static, Tree

from screens.base import ConsoleScreen
from screens.loaders import load_history
from screens.messages import OpenDiff, OpenReview
from screens.presenters import (
    alias_style,
    approval_label,
    fmt_number,
    lineage_outline,
    metric_history,
    pointer_move_cells,
    sparkline,
)
from screens.widgets.virtual_table import VirtualTable

TIMELINE_COLUMNS = [("", 1), ("version", 8), ("aliases", 20), ("approval", 16), ("auc_roc", 8), ("data", 22),
                    ("parent", 7), ("created", 19)]


class HistoryScreen(ConsoleScreen):
    BINDINGS = [
        Binding("space", "mark", "Mark for diff", key_display="space", id="history.mark"),
        Binding("d", "diff", "Diff with mark", id="history.diff"),
        Binding("enter", "review", "Review version", id="history.review", priority=True),
        Binding("escape", "back", "Back", id="history.back"),
    ]

    class Loaded(Message):
        def __init__(self, data: Any, error: str = "") -> None:
            super().__init__()
            self.data = data
            self.error = error

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model
        self.title = f"history {model}"
        self.versions: list[Any] = []
        self.marked: str | None = None

    def selected_model(self) -> str:
        return self.model

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="history-body"):
            with Vertical(id="history-left"):
                yield Static(f"versions of {self.model}  (space marks one, d diffs it with the cursor)",
                             classes="pane-title")
                timeline = VirtualTable(TIMELINE_COLUMNS, id="timeline")
                timeline.loading = True
                yield timeline
                yield Static("metric history (one mark per version, oldest first)", classes="pane-title")
                yield Static("", id="metric-plot")
                yield Static("pointer history", classes="pane-title")
                yield DataTable(id="moves", cursor_type="row")
            with Vertical(id="history-right"):
                yield Static("lineage", classes="pane-title")
                yield Tree("lineage", id="lineage")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#moves", DataTable).add_columns("at", "alias", "move", "actor", "reason")
        self._load()

    @work(thread=True, exclusive=True, group="history-load", exit_on_error=False)
    def _load(self) -> None:
        try:
            self.post_message(self.Loaded(load_history(self.app.workspace, self.model)))
        except Exception as exc:
            self.post_message(self.Loaded(None, f"{type(exc).__name__}: {exc}"))

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        timeline = self.query_one("#timeline", VirtualTable)
        timeline.loading = False
        if message.error:
            self.query_one("#metric-plot", Static).update(Text(f"⚠ {message.error}", style="bold red"))
            return
        data = message.data
        self.versions = data.versions
        self._fill_timeline()
        self._plot_metrics()
        moves = self.query_one("#moves", DataTable)
        moves.clear()
        for move in reversed(data.pointer_moves):
            moves.add_row(*[Text(text, style=style) for text, style in pointer_move_cells(move)])
        timeline.focus()
        timeline.move_cursor(len(self.versions) - 1)
        self._show_lineage()

    def _fill_timeline(self) -> None:
        rows = []
        for mv in self.versions:
            label, style = approval_label(mv.approval.status, mv.approval.override)
            rows.append([
                ("◆" if mv.version == self.marked else " ", "bold magenta"),
                (mv.version, alias_style(mv.aliases)),
                (",".join(mv.aliases) or "—", alias_style(mv.aliases)),
                (label, style),
                (fmt_number(mv.metrics.get("auc_roc")), ""),
                (mv.lineage.data_version or "—", ""),
                (mv.lineage.parent_version or "—", "dim"),
                ((mv.created_at or "")[:19], "dim"),
            ])
        self.query_one("#timeline", VirtualTable).set_rows(rows, [mv.version for mv in self.versions])

    def _plot_metrics(self) -> None:
        table = Table(show_header=True, show_edge=False, box=None, pad_edge=False)
        table.add_column("metric", style="bold")
        table.add_column("across versions " + " ".join(mv.version for mv in self.versions)[:40], no_wrap=True)
        table.add_column("min", justify="right")
        table.add_column("max", justify="right")
        table.add_column("latest", justify="right")
        for name, values in metric_history(self.versions):
            known = [v for v in values if v is not None]
            spaced = " ".join(sparkline(values))
            table.add_row(name, Text(spaced, style="cyan"), fmt_number(min(known) if known else None),
                          fmt_number(max(known) if known else None), fmt_number(values[-1] if values else None))
        self.query_one("#metric-plot", Static).update(table)

    def _current(self) -> Any:
        key = self.query_one("#timeline", VirtualTable).current_key
        return next((mv for mv in self.versions if mv.version == key), None)

    @on(VirtualTable.Highlighted, "#timeline")
    def _show_lineage(self) -> None:
        mv = self._current()
        if mv is None:
            return
        tree = self.query_one("#lineage", Tree)
        tree.clear()
        tree.root.set_label(f"{self.model} version {mv.version}")
        for branch, leaves in lineage_outline(mv):
            node = tree.root.add(branch, expand=True)
            for leaf in leaves:
                node.add_leaf(leaf)
        tree.root.expand()

    @on(VirtualTable.Selected, "#timeline")
    def action_review(self) -> None:
        mv = self._current()
        if mv is not None:
            self.post_message(OpenReview(self.model, mv.version))

    def action_mark(self) -> None:
        mv = self._current()
        if mv is None:
            return
        self.marked = None if self.marked == mv.version else mv.version
        self._fill_timeline()
        if self.marked:
            self.notify(f"version {self.marked} marked: move to another version and press d to diff")

    def action_diff(self) -> None:
        mv = self._current()
        if mv is None:
            return
        if self.marked is None:
            self.notify("mark a version with space first", severity="warning")
            return
        left = next(v for v in self.versions if v.version == self.marked)
        if left.version == mv.version:
            self.notify("move the cursor to another version to diff with the mark", severity="warning")
            return
        self.post_message(OpenDiff(left, mv))
