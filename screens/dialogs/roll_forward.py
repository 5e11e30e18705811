"""Roll forward: undo a rollback, back to the version production was rolled away from.

That version was judged bad minutes ago, so this is never the rollback key: `F` opens the
dialog, which names both versions, and only ctrl+y (a different key) confirms.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class RollForwardDialog(ModalScreen[bool]):
    BINDINGS = [
        Binding("ctrl+y", "confirm", "Roll forward", id="roll_forward.confirm"),
        Binding("escape", "cancel", "Cancel", id="roll_forward.cancel"),
    ]
    DEFAULT_CSS = """
    RollForwardDialog { align: center middle; }
    RollForwardDialog > Vertical { width: 80; height: auto; border: thick $warning; padding: 1 2; background: $surface; }
    """

    def __init__(self, model: str, production: str, target: str, *, why: str = "", health: str = "",
                 unhealthy: bool | None = None, fault: str = "") -> None:
        super().__init__(id="roll-forward")
        self.model, self.production, self.target = model, production, target
        # what the operator must see before undoing a rollback: why it happened, whether the target
        # is healthy by the team's thresholds (not by /health), and any drill still injected into it
        self.why, self.health, self.unhealthy, self.fault = why, health, unhealthy, fault

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(f"Roll {self.model} forward: production {self.production} → {self.target}\n\n", style="bold")
        text.append(f"Production was rolled back away from {self.target}. Sending traffic back to it undoes "
                    "that rollback.\n", style="yellow")
        if self.why:
            text.append(f"Why: {self.why}\n")
        if self.health:
            style = "bold red" if self.unhealthy else ("green" if self.unhealthy is False else "yellow")
            text.append(f"Health: {self.health}\n", style=style)
        if self.fault:
            text.append(f"{self.fault}\n", style="bold red")
        text.append("ctrl+y rolls forward · esc cancels")
        with Vertical():
            yield Static(text, id="roll-forward-statement")
        yield Footer()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
