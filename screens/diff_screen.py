"""Side-by-side diff of two versions: params, data, code, metrics, artifact, approval."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from screens.presenters import diff_versions
from screens.base import ConsoleScreen


class DiffScreen(ConsoleScreen):
    BINDINGS = [
        Binding("c", "toggle_changed", "Changed only", id="diff.changed_only"),
        Binding("escape", "back", "Back", id="diff.back"),
    ]

    def __init__(self, left: Any, right: Any) -> None:
        super().__init__()
        self.left = left
        self.right = right
        self.rows = diff_versions(left, right)
        self.changed_only = False
        self.title = f"diff {left.model} {left.version} ↔ {right.version}"

    def compose(self) -> ComposeResult:
        yield Header()
        changed = sum(r.changed for r in self.rows)
        yield Static(f"{self.left.model}: version {self.left.version} ↔ version {self.right.version} · "
                     f"{changed} of {len(self.rows)} fields differ", id="diff-title", classes="pane-title")
        yield DataTable(id="diff", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#diff", DataTable)
        table.add_columns("", "section", "field", f"version {self.left.version}", f"version {self.right.version}")
        self._fill()
        table.focus()

    def _fill(self) -> None:
        table = self.query_one("#diff", DataTable)
        table.clear()
        for row in self.rows:
            if self.changed_only and not row.changed:
                continue
            style = "bold yellow" if row.changed else "dim"
            table.add_row(Text("≠" if row.changed else "=", style=style), row.section, row.key,
                          Text(row.left, style=style), Text(row.right, style=style))

    def action_toggle_changed(self) -> None:
        self.changed_only = not self.changed_only
        self._fill()
