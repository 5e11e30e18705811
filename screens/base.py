"""What every console screen shares: read-only hides write keys; `esc` goes back."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen

from screens.presenters import WRITE_ACTIONS


class ConsoleScreen(Screen):
    BINDINGS = [Binding("escape", "back", "Back", id="screen.back")]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if getattr(self.app, "read_only", False) and action in WRITE_ACTIONS:
            return False  # hidden from the footer and never run
        return True

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    @property
    def workspace(self):
        return self.app.workspace
