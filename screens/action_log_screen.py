"""`@`: the exact backend call behind each key, newest last (lazygit's command log)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, RichLog

from screens.base import ConsoleScreen


class ActionLogScreen(ConsoleScreen):
    BINDINGS = [Binding("escape", "back", "Back", id="action_log.back")]

    def __init__(self) -> None:
        super().__init__()
        self.title = "action log"

    def compose(self) -> ComposeResult:
        yield Header()
        yield RichLog(id="action-log", wrap=True, max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        log = self.query_one("#action-log", RichLog)
        calls = list(self.app.calls)
        if not calls:
            log.write(Text("no backend call yet", style="dim"))
        for at, call in calls:
            log.write(Text.assemble((at + "  ", "dim"), call))
