"""`?`: the keys of the screen underneath, with their ids (remap them in mrc.toml [console.keys])."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def screen_keys(screen: Screen) -> list[tuple[str, str, str]]:
    """(key, description, id) of every active binding of a screen and the app, as the footer shows them."""
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if not active.enabled or not binding.description or not binding.id or binding.id in seen:
            continue  # only the console's own keys (they all carry an id); navigation is one line below
        seen.add(binding.id or key)
        display = screen.app.get_key_display(binding)
        rows.append((display, binding.description, binding.id or ""))
    # the screen's own keys even where a focused widget shadows them (enter on a table opens too)
    for key, bindings in screen._bindings.key_to_bindings.items():
        for binding in bindings:
            if (not binding.description or not binding.id or binding.id in seen
                    or screen.check_action(binding.action, ()) is False):
                continue
            seen.add(binding.id or key)
            rows.append((screen.app.get_key_display(binding), binding.description, binding.id or ""))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="help.close"),
        Binding("question_mark", "dismiss", "Close", key_display="?", id="help.close_q"),
        Binding("q", "dismiss", "Close", show=False, id="help.close_quit"),
    ]

    def __init__(self, under: Screen) -> None:
        super().__init__(id="help")
        self.under = under
        self.keys = screen_keys(under)

    def compose(self) -> ComposeResult:
        table = Table(title=f"keys: {getattr(self.under, 'title', None) or type(self.under).__name__}",
                      expand=True, show_edge=False)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("does")
        table.add_column("binding id (remap in mrc.toml \\[console.keys])", style="dim")
        for key, description, binding_id in self.keys:
            table.add_row(key, description, binding_id)
        with VerticalScroll(id="help-box"):
            yield Static(table)
            yield Static("move: ↑ ↓ j k pgup pgdn home end · tab: next pane · mouse works too", classes="dim")
            yield Static("`:` command mode: review MODEL [VERSION] · history MODEL · train MODEL · audit · canary MODEL"
                         " · home · quit        esc closes", classes="dim")
