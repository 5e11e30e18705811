"""LocalMetrics: health windows per variant from the router's request log (requests.jsonl).

The log is read incrementally (from the last offset), so an analysis every few seconds does
not re-read the whole file. Labels arrive as separate lines and join their request by id.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

from backends.base import HealthWindow, check_name


def quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


class _LogIndex:
    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.requests: list[dict[str, Any]] = []  # in arrival order (t ascending, nearly)
        self.labels: dict[str, Any] = {}
        self.lock = threading.Lock()

    def refresh(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in chunk[: end + 1].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn line from a killed router: skip it
            if rec.get("type") == "label":
                self.labels[str(rec.get("id"))] = rec.get("label")
            else:
                self.requests.append(rec)


class LocalMetrics:
    def __init__(self, root: str | Path, config: dict[str, Any] | None = None):
        self.root = Path(root)
        self.config = config or {}
        self._indexes: dict[str, _LogIndex] = {}

    def _index(self, model: str) -> _LogIndex:
        check_name(model, "model")
        if model not in self._indexes:
            self._indexes[model] = _LogIndex(self.root / "serving" / model / "requests.jsonl")
        return self._indexes[model]

    def health(self, model: str, version: str, start: float, end: float) -> HealthWindow:
        index = self._index(model)
        with index.lock:
            index.refresh()
            rows = [r for r in index.requests if r.get("v") == version and start <= r.get("t", 0) < end]
            labels = index.labels
            window = HealthWindow(model, version, start, end, requests=len(rows))
            latencies = sorted(float(r.get("ms", 0.0)) for r in rows)
            window.errors = sum(1 for r in rows if int(r.get("status", 500)) >= 500)
            window.latencies_ms = [float(r.get("ms", 0.0)) for r in rows]
            window.latency_p50_ms = quantile(latencies, 0.5)
            window.latency_p99_ms = quantile(latencies, 0.99)
            window.predictions = [float(r["p"]) for r in rows if r.get("p") is not None]
            for r in rows:
                label = labels.get(str(r.get("id")))
                if label is None or r.get("p") is None:
                    continue
                window.labelled += 1
                window.correct += int((float(r["p"]) >= 0.5) == bool(label))
        return window
