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

    def __init__(self, model: str, production: str, target: str) -> None:
        super().__init__(id="roll-forward")
        self.model, self.production, self.target = model, production, target

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(f"Roll {self.model} forward: production {self.production} → {self.target}\n\n", style="bold")
        text.append(f"Production was rolled back away from {self.target}. Sending traffic back to it undoes "
                    "that rollback.\n", style="yellow")
        text.append("ctrl+y rolls forward · esc cancels")
        with Vertical():
            yield Static(text, id="roll-forward-statement")
        yield Footer()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
