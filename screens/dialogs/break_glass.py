"""Break glass from the console: all traffic to the fallback, or the split put back.

Either sends every user somewhere else at once, so `G` opens this dialog, which names the split
now and the split after, and only ctrl+y (not G again) confirms.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class BreakGlassDialog(ModalScreen[bool]):
    BINDINGS = [
        Binding("ctrl+y", "confirm", "Confirm", id="break_glass.confirm"),
        Binding("escape", "cancel", "Cancel", id="break_glass.cancel"),
    ]
    DEFAULT_CSS = """
    BreakGlassDialog { align: center middle; }
    BreakGlassDialog > Vertical { width: 80; height: auto; border: thick $error; padding: 1 2; background: $surface; }
    """

    def __init__(self, model: str, *, now: str, after: str, restoring: bool, why: str = "") -> None:
        super().__init__(id="break-glass")
        self.model, self.now, self.after, self.restoring, self.why = model, now, after, restoring, why

    def compose(self) -> ComposeResult:
        text = Text()
        head = "Restore" if self.restoring else "Break glass:"
        text.append(f"{head} {self.model}: traffic {self.now} → {self.after}\n\n", style="bold")
        if self.restoring:
            text.append("Puts back the split the break glass replaced.\n", style="yellow")
        else:
            text.append("Every user is sent to the fallback now; production's pointer does not move. "
                        "G again offers to restore.\n", style="yellow")
        if self.why:
            text.append(f"{self.why}\n")
        text.append("ctrl+y " + ("restores" if self.restoring else "breaks the glass") + " · esc cancels")
        with Vertical():
            yield Static(text, id="break-glass-statement")
        yield Footer()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
