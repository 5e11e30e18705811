"""The rejection dialog: `x` opens it, a reason is required, ctrl+y confirms."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from screens.dialogs.approve import CONFIRM_GUARD_S, Decision, ReasonInput


class RejectDialog(ModalScreen[Decision | None]):
    AUTO_FOCUS = "#reason"
    BINDINGS = [
        Binding("ctrl+y", "confirm", "Confirm rejection", key_display="ctrl+y", id="reject.confirm"),
        Binding("escape", "cancel", "Cancel", id="reject.cancel"),
    ]

    def __init__(self, model: str, version: str, artifact_sha256: str, opened_by: str = "x") -> None:
        super().__init__(id="reject-dialog")
        self.model = model
        self.version = version
        self.artifact_sha256 = artifact_sha256
        self.opened_at = time.monotonic()
        self.opened_by = opened_by

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box", classes="dialog"):
            yield Static(Text(f"Reject {self.model} version {self.version}?", style="bold"), classes="dialog-title")
            yield Static(f"model      {self.model}\nversion    {self.version}\nartifact   sha256 {self.artifact_sha256}")
            yield ReasonInput(self.opened_by, placeholder="reason (required): what is wrong with it?", id="reason")
            yield Static("", id="dialog-error")
            yield Footer()

    def on_mount(self) -> None:
        self.query_one("#reason").focus()  # before the first paint: keys typed at once land in the reason

    def action_confirm(self) -> None:
        if time.monotonic() - self.opened_at < CONFIRM_GUARD_S:
            return
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#dialog-error", Static).update(Text("a reason is required", style="bold red"))
            return
        self.dismiss(Decision(reason))

    @on(Input.Submitted, "#reason")
    def _enter_does_not_confirm(self) -> None:
        self.query_one("#dialog-error", Static).update(Text("press ctrl+y to confirm", style="bold red"))

    def action_cancel(self) -> None:
        self.dismiss(None)
