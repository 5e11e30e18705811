"""Audit: the hash-chained event log, newest last, with the chain check on top."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer, Header, Static

from screens.base import ConsoleScreen
from screens.loaders import load_audit
from screens.presenters import AUDIT_COLUMNS, audit_cells
from screens.widgets.virtual_table import VirtualTable


class AuditScreen(ConsoleScreen):
    BINDINGS = [
        Binding("v", "verify", "Verify chain", id="audit.verify"),
        Binding("escape", "back", "Back", id="audit.back"),
    ]

    class Loaded(Message):
        def __init__(self, events: list[Any], check: Any, error: str = "") -> None:
            super().__init__()
            self.events = events
            self.check = check
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.title = "audit log"
        self.events: list[Any] = []
        self.check: Any = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("checking the chain…", id="chain")
        table = VirtualTable(AUDIT_COLUMNS, id="events")
        table.empty_text = "no audit events yet"
        table.loading = True
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="audit-load", exit_on_error=False)
    def _load(self) -> None:
        try:
            events, check = load_audit(self.app.workspace)
        except Exception as exc:
            self.post_message(self.Loaded([], None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Loaded(events, check))

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        table = self.query_one("#events", VirtualTable)
        table.loading = False
        chain = self.query_one("#chain", Static)
        if message.error:
            chain.update(Text(f"⚠ {message.error}", style="bold red"))
            return
        self.events, self.check = message.events, message.check
        table.set_rows([audit_cells(e) for e in self.events], [e.seq for e in self.events], keep_key=False)
        table.move_cursor(len(self.events) - 1)
        table.focus()
        if message.check.ok:
            chain.update(Text(f"✔ chain intact: {message.check.events} events, every hash verified", style="bold green"))
        else:
            chain.update(Text(f"✘ CHAIN BROKEN at event {message.check.first_broken}: {message.check.reason}",
                              style="bold white on red"))

    def action_verify(self) -> None:
        self.query_one("#chain", Static).update("checking the chain…")
        self._load()
