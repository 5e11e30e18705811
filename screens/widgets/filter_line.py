"""The `/` filter line: one line of text that takes keys and repaints itself alone.

Textual's Input re-lays out the whole screen on every keystroke (its value is a layout
reactive); over a 10,000-row screen that is most of a 50 ms budget. This line has a fixed
height and width, so a keystroke repaints one line.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget


class FilterLine(Widget, can_focus=True):
    DEFAULT_CSS = """
    FilterLine { height: 1; width: 1fr; padding: 0 1; background: $boost; }
    FilterLine:focus { background: $accent 30%; }
    """

    value: reactive[str] = reactive("", layout=False)

    class Changed(Message):
        def __init__(self, filter_line: "FilterLine", value: str) -> None:
            super().__init__()
            self.filter_line = filter_line
            self.value = value

        @property
        def control(self) -> "FilterLine":
            return self.filter_line

    class Submitted(Changed):
        pass

    def __init__(self, placeholder: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.placeholder = placeholder

    def render(self) -> Text:
        text = Text("/ ", style="bold")
        if self.value:
            text.append(self.value)
        elif not self.has_focus:
            text.append(self.placeholder, style="dim")
        if self.has_focus:
            text.append("▏", style="blink bold")
            if not self.value:
                text.append(self.placeholder, style="dim")
        return text

    def watch_value(self, value: str) -> None:
        self.post_message(self.Changed(self, value))

    def on_key(self, event: events.Key) -> None:
        if event.key == "backspace":
            self.value = self.value[:-1]
        elif event.key == "ctrl+u":
            self.value = ""
        elif event.key == "enter":
            self.post_message(self.Submitted(self, self.value))
        elif event.is_printable and event.character:
            self.value += event.character
        else:
            return  # escape, tab, arrows: the screen's keys
        event.stop()
        event.prevent_default()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
