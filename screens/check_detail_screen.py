"""Enter on a gate check in review: the whole check, nothing cut off — verdict, value against
threshold and baseline, the full detail line wrapped, and every `extra` field. Escape closes."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from console.assets import asset_path
from screens.presenters import check_cells, fmt_number
from backends.support.redact import escape_control


def check_lines(check: Any) -> Table:
    """Pure: the check as a two-column table of plain Text (no markup: details come from data)."""
    verdict, _, _, _, _, _, _ = check_cells(check)
    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    table.add_row("verdict", Text(verdict[0], style=verdict[1]))
    for label, value in (("check", check.name), ("kind", check.kind), ("status", getattr(check, "status", "")),
                         ("value", fmt_number(check.value)), ("threshold", fmt_number(check.threshold)),
                         ("baseline", fmt_number(check.baseline_value))):
        table.add_row(label, Text(escape_control(str(value))))
    table.add_row("detail", Text(escape_control(check.detail or "—")))
    for key, value in sorted((getattr(check, "extra", None) or {}).items()):
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        table.add_row(Text(escape_control(str(key)), style="dim"), Text(escape_control(shown)))
    return table


class CheckDetailScreen(ModalScreen[None]):
    CSS_PATH = str(asset_path("check_detail.tcss"))
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="check.close"),
        Binding("q", "dismiss", "Close", show=False, id="check.close_q"),
    ]

    def __init__(self, check: Any, where: str = "") -> None:
        super().__init__(id="check-detail")
        self.check = check
        self.where = where

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="check-box"):
            yield Static(Text(f"gate check {self.check.name}" + (f" · {self.where}" if self.where else ""),
                              style="bold"), id="check-title")
            yield Static(check_lines(self.check), id="check-body")
            yield Static("esc closes", classes="dim")
        yield Footer()
