"""The monitor's first source: the local router's capture segments (serving/MODEL/capture/).

The cursor is (segment name, byte offset of the next line). Segments sort by name in the order
they were written and a closed one never changes, so a read continues where the last one
stopped; a segment deleted by retention before it was read is skipped and counted in `bad`.
Only complete lines are read (the newest segment may end in a line being written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.base import FieldMapping, SourceBatch, check_name
from backends.local.serving.capture import segment_paths
from backends.support.prediction_records import batch_from_json_lines

READ_BYTES = 64 * 1024 * 1024  # one read's budget (≈ 100 k rows of 50 features)


class RouterLogSource:
    name = "router"

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.mapping = FieldMapping()

    def open(self, ws_root: str, model: str, mapping: FieldMapping, options: dict[str, Any]) -> None:
        self.folder = Path(ws_root) / "serving" / check_name(model, "model") / "capture"
        self.mapping = mapping

    def read(self, cursor: dict[str, Any] | None, max_records: int = 200_000) -> SourceBatch:
        assert self.folder is not None, "open() first"
        cursor = dict(cursor or {})
        segment, offset = str(cursor.get("segment") or ""), int(cursor.get("offset") or 0)
        budget = READ_BYTES
        chunks: list[bytes] = []
        skipped = 0
        paths = segment_paths(self.folder)
        if segment and paths and segment < paths[0].name:
            skipped = 1  # the segment the cursor was in is gone (retention) before it was read to its end
        for path in paths:
            if path.name < segment:
                continue
            start = offset if path.name == segment else 0
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    data = fh.read(budget)
            except FileNotFoundError:
                skipped += 1
                continue
            end = data.rfind(b"\n") + 1
            if end:
                chunks.append(data[:end])
                budget -= end
            segment, offset = path.name, start + end
            if budget <= 0 or (end < len(data)):  # budget spent, or a line still being written: stop here
                break
        batch = batch_from_json_lines(b"".join(chunks), self.mapping, f"router log {self.folder}")
        if skipped:
            batch.bad[f"router log {self.folder}: segment: deleted before it was read"] = skipped
        batch.cursor = {"segment": segment, "offset": offset}
        return batch
