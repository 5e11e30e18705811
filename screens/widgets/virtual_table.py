"""A virtual table: fixed columns, only the visible lines rendered (Textual's Line API).

DataTable lays out every row up front (≈ 1.4 s for 10,000 rows, input blocked meanwhile);
this renders the rows on screen and nothing else, so a filter over 10,000 versions repaints
in milliseconds.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = tuple[str, str]  # (text, rich style)


class VirtualTable(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    VirtualTable { height: 1fr; }
    VirtualTable > .virtual-table--header { text-style: bold; background: $panel; }
    VirtualTable > .virtual-table--cursor { background: $accent 40%; }
    """
    COMPONENT_CLASSES = {"virtual-table--header", "virtual-table--cursor"}
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False, id="table.up"),
        Binding("down", "cursor(1)", "Down", show=False, id="table.down"),
        Binding("k", "cursor(-1)", "Up", show=False, id="table.up_k"),
        Binding("j", "cursor(1)", "Down", show=False, id="table.down_j"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="table.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="table.page_down"),
        Binding("home", "edge(0)", "First", show=False, id="table.first"),
        Binding("end", "edge(1)", "Last", show=False, id="table.last"),
        Binding("enter", "select", "Open", show=False, id="table.select"),
    ]

    cursor_row: reactive[int] = reactive(0)

    class Highlighted(Message):
        def __init__(self, table: "VirtualTable", index: int, key: Any) -> None:
            super().__init__()
            self.table = table
            self.index = index
            self.key = key

        @property
        def control(self) -> "VirtualTable":
            return self.table

    class Selected(Highlighted):
        pass

    def __init__(self, columns: Sequence[tuple[str, int]], *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = list(columns)
        self.rows: list[list[Cell]] = []
        self.keys: list[Any] = []
        self.empty_text = "nothing to show"

    # -- data ------------------------------------------------------------------------------
    def set_rows(self, rows: list[list[Cell]], keys: list[Any] | None = None, *, keep_key: bool = True) -> None:
        current = self.current_key if keep_key else None
        self.rows = rows
        self.keys = list(keys) if keys is not None else list(range(len(rows)))
        width = sum(w + 1 for _, w in self.columns)
        self._set_virtual_size(Size(width, len(rows) + 1))
        index = 0
        if current is not None:
            try:
                index = self.keys.index(current)
            except ValueError:
                index = 0
        self.cursor_row = min(index, max(0, len(rows) - 1))
        self._scroll_cursor_into_view()
        self.refresh()

    def _set_virtual_size(self, size: Size) -> None:
        """virtual_size is a layout reactive: assigning it re-lays out the whole screen (≈ 20 ms
        here). A filter keystroke changes only how far this list scrolls, so update the scroll
        range and repaint this widget alone; a scrollbar that appears or goes still re-lays out."""
        if not self.is_mounted or not self.container_size:
            self.virtual_size = size
            return
        self.set_reactive(VirtualTable.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    @property
    def current_key(self) -> Any:
        if 0 <= self.cursor_row < len(self.keys):
            return self.keys[self.cursor_row]
        return None

    @property
    def row_count(self) -> int:
        return len(self.rows)

    # -- rendering -------------------------------------------------------------------------
    def _line(self, cells: Sequence[Cell], base: Style, style_cache: dict[str, Style]) -> list[Segment]:
        segments: list[Segment] = []
        for (text, style), (_, width) in zip(cells, self.columns):
            text = text if len(text) <= width else text[: max(0, width - 1)] + "…"
            cell_style = style_cache.get(style)
            if cell_style is None:
                cell_style = style_cache[style] = Style.parse(style) if style else Style()
            segments.append(Segment(text.ljust(width) + " ", base + cell_style))
        return segments

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        cache: dict[str, Style] = {}
        base = self.rich_style
        if y == 0:  # the header stays put while the body scrolls
            header = self.get_component_rich_style("virtual-table--header")
            segments = self._line([(name, "") for name, _ in self.columns], base + header, cache)
            return Strip(segments).crop(scroll_x, scroll_x + width).extend_cell_length(width, base + header)
        index = scroll_y + y - 1
        if index >= len(self.rows):
            if index == 0 and not self.rows:
                return Strip([Segment(self.empty_text, base + Style(dim=True))]).extend_cell_length(width, base)
            return Strip.blank(width, base)
        style = base
        if index == self.cursor_row and self.has_focus:
            style = base + self.get_component_rich_style("virtual-table--cursor")
        elif index == self.cursor_row:
            style = base + Style(reverse=False, bgcolor="grey23")
        segments = self._line(self.rows[index], style, cache)
        return Strip(segments).crop(scroll_x, scroll_x + width).extend_cell_length(width, style)

    # -- cursor ----------------------------------------------------------------------------
    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh()
        if self.rows:
            self.post_message(self.Highlighted(self, new, self.current_key))

    def _scroll_cursor_into_view(self) -> None:
        body = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + body:
            self.scroll_to(y=self.cursor_row - body + 1, animate=False)

    def move_cursor(self, row: int) -> None:
        if not self.rows:
            return
        self.cursor_row = min(max(row, 0), len(self.rows) - 1)
        self._scroll_cursor_into_view()

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * max(1, self.size.height - 2))

    def action_edge(self, end: int) -> None:
        self.move_cursor(len(self.rows) - 1 if end else 0)

    def action_select(self) -> None:
        if self.rows:
            self.post_message(self.Selected(self, self.cursor_row, self.current_key))

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_offset.y) + event.y - 1
        if 0 <= index < len(self.rows):
            self.move_cursor(index)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
