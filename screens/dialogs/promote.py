"""Confirm a move toward the candidate (promote, or the canary's next step), with the evidence.

The canary screen's `P` and `p` open it instead of acting on one key: it shows what the judge
has seen so far (the sequential statistic, "needs ~N more requests", failures), and ctrl+y (a
different key) confirms. An optional reason goes into the audit event.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from console.assets import asset_path
from screens.dialogs.approve import CONFIRM_GUARD_S, ReasonInput


class PromoteDialog(ModalScreen[str | None]):
    """Dismisses with the reason ("" when none was given), or None when cancelled."""

    CSS_PATH = str(asset_path("canary_dialogs.tcss"))

    AUTO_FOCUS = "#reason"
    BINDINGS = [
        Binding("ctrl+y", "confirm", "Confirm", key_display="ctrl+y", id="promote.confirm"),
        Binding("escape", "cancel", "Cancel", id="promote.cancel"),
    ]

    def __init__(self, title: str, evidence: list[str], warning: str = "", opened_by: str = "P") -> None:
        super().__init__(id="promote-dialog")
        self.title_text = title
        self.evidence = list(evidence)
        self.warning = warning
        self.opened_by = opened_by
        self.opened_at = time.monotonic()

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box", classes="dialog"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Static(Text("\n".join(self.evidence)), id="promote-evidence")
            if self.warning:
                yield Static(Text(self.warning, style="bold yellow"), id="promote-warning")
            yield ReasonInput(self.opened_by, placeholder="reason (optional, goes into the audit log)", id="reason")
            yield Static("", id="dialog-error")
            yield Footer()

    def on_mount(self) -> None:
        self.query_one("#reason").focus()

    def action_confirm(self) -> None:
        if time.monotonic() - self.opened_at < CONFIRM_GUARD_S:
            return  # a held key, not a decision
        self.dismiss(self.query_one("#reason", Input).value.strip())

    @on(Input.Submitted, "#reason")
    def _enter_does_not_confirm(self) -> None:
        self.query_one("#dialog-error", Static).update(Text("press ctrl+y to confirm (enter does not)", style="bold red"))

    def action_cancel(self) -> None:
        self.dismiss(None)
