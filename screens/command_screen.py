"""`:` command mode (k9s): `review breast-cancer 5`, `history breast-cancer`, `audit`, `quit`."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

from screens.presenters import COMMANDS


class CommandScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="command.cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="command-box"):
            yield Input(placeholder=":review MODEL · :history MODEL · :train MODEL · :audit · :quit", id="command",
                        suggester=SuggestFromList(list(COMMANDS), case_sensitive=False))
            yield Static("  ".join(f":{name}" for name in COMMANDS), classes="dim")

    def on_mount(self) -> None:
        self.query_one("#command", Input).focus()

    @on(Input.Submitted, "#command")
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
