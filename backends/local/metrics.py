"""LocalMetrics: health windows per variant from the router's request log (requests.jsonl).

A window read costs what the window holds, not the whole log. The router appends in time order
(it stamps `t` just before taking the log lock, so neighbours can be a little out of order), so
the first read bisects the file by timestamp to a point safely before the window and parses only
from there to the end; later reads parse only the new bytes. Per version the requests are kept
sorted by `t` (ties and reporting in file order), so a window is two bisects and a slice.

Labels arrive as separate lines and join their request by id, the last label in the file winning,
wherever it is: the part of the log before the parsed tail is searched for label lines with a byte
search (no JSON parse of request lines), so a label posted before its request still counts.

What the bisect assumes, and what is checked: no line is stamped more than DISORDER_S before one
written ahead of it. Disorder beyond that seen in the parsed part (a clock stepped back, a request
without t, which counts as t = 0) makes the index read the whole log from then on; a step back
hidden entirely in the unread part before the tail cannot be seen without reading it: a line
stamped more than DISORDER_S late there is left out of the window, silently (the router stamps
each line right before writing it, so only a clock stepped back makes one).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import threading
from bisect import bisect_left
from pathlib import Path
from typing import Any

from backends.base import HealthWindow, check_name

# How far back (seconds) a line may be stamped behind one written before it. The router stamps t
# before it takes the log lock, so a stalled thread lands a little late; a minute also absorbs a
# small clock step. Larger disorder, once seen in the parsed part, falls back to reading it all.
DISORDER_S = 60.0
_PROBE_SPAN = 64 * 1024  # bisect down to this many bytes, then parse the rest
_CHUNK = 8 * 1024 * 1024
# A label line exactly as the router writes it (compact JSON, an ASCII id without escapes),
# preceded by the newline before it: its id and label are read without a JSON parse.
_ROUTER_LABEL = re.compile(
    rb'\n\{"type":"label","t":-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?,'
    rb'"id":"([\x20\x21\x23-\x5b\x5d-\x7e]*)","label":(true|false|null)\}(?=\n)')
_LABEL_VALUES = {b"true": True, b"false": False, b"null": None}
_LABEL_WORD = re.compile(rb'"label"')


def quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


def _stamp(rec: dict[str, Any]) -> float | None:
    """The record's t as the window filter compares it (a missing t counts as 0); None when no
    window could ever hold it (NaN, or not a number)."""
    t = rec.get("t", 0)
    if not isinstance(t, (int, float)) or t != t:
        return None
    return t


def _records(data: bytes, base: int):
    """(byte offset, record) for each JSON object line of data, split as bytes.splitlines does
    (\\n, \\r\\n, \\r); a line that does not parse (a torn write) or is not an object is skipped."""
    pos = 0
    for line in data.split(b"\n"):
        start = pos
        pos += len(line) + 1
        pieces = line.split(b"\r") if b"\r" in line else (line,)
        for piece in pieces:
            if piece:
                try:
                    rec = json.loads(piece)
                except ValueError:
                    rec = None
                if isinstance(rec, dict):
                    yield base + start, rec
            start += len(piece) + 1


class _Version:
    """One version's requests, sorted by (t, file offset)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.keys: list[tuple[float, int]] = []
        self.rows: dict[int, dict[str, Any]] = {}

    def add(self, t: float, offset: int, rec: dict[str, Any], bulk: bool = False) -> None:
        if offset in self.rows:
            return
        self.rows[offset] = rec
        key = (t, offset)
        if bulk or not self.keys or key > self.keys[-1]:
            self.keys.append(key)  # in bulk (an earlier stretch read), sorted once in settle()
            self.stamps.append(t)
        else:  # a late writer: near the end, so the insert moves little
            at = bisect_left(self.keys, key)
            self.keys.insert(at, key)
            self.stamps.insert(at, t)

    def settle(self) -> None:
        self.keys.sort()  # two sorted runs: one merge
        self.stamps = [t for t, _ in self.keys]

    def window(self, start: float, end: float) -> list[dict[str, Any]]:
        if not start < end:
            return []
        lo, hi = bisect_left(self.stamps, start), bisect_left(self.stamps, end)
        offsets = sorted(offset for _, offset in self.keys[lo:hi])  # file order, as a scan sees them
        return [self.rows[o] for o in offsets]


class _LogIndex:
    """The requests of the byte range [first, offset) of the log, and every label of [0, offset).
    Every request before `first` is stamped below `covers_after` (given DISORDER_S)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self._reset()

    def _reset(self, identity: tuple[int, int] | None = None) -> None:
        self.identity = identity
        self.first = 0
        self.offset = 0
        self.covers_after = -math.inf
        self.versions: dict[str, _Version] = {}
        self.labels: dict[str, tuple[int, Any]] = {}  # id -> (offset of its line, label), from [first, offset)
        self.early: dict[str, Any] = {}  # id -> label, the last one in [0, first) as the tail was first read
        self.max_t = -math.inf  # over [first, offset), in file order
        self.min_t = math.inf
        self.whole = False  # disorder beyond DISORDER_S was seen: index from byte 0

    def read(self, start: float, end: float) -> None:
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return
        with fh:
            st = os.fstat(fh.fileno())
            identity = (st.st_dev, st.st_ino)
            if identity != self.identity or st.st_size < self.offset:  # replaced or truncated
                self._reset(identity)
            if self.offset == 0 and self.first == 0 and not self.whole and st.st_size:
                self._start_tail(fh, st.st_size, start)
            if self._append(fh, st.st_size) and self.first > 0:
                self._read_whole(fh, st.st_size)
            if start <= self.covers_after:
                self._extend_back(fh, start)

    def find_label(self, request_id: Any) -> tuple[bool, Any]:
        """(whether this file holds a label line for the id, its last label)."""
        key = str(request_id)
        known = self.labels.get(key)
        if known is not None:
            return True, known[1]
        return (True, self.early[key]) if key in self.early else (False, None)

    def label(self, request_id: Any) -> Any:
        """The request's label: the last label line for its id anywhere in the log read so far
        (a line of the parsed part is later than any of `early`, or the same one)."""
        key = str(request_id)
        known = self.labels.get(key)
        return known[1] if known is not None else self.early.get(key)

    # -- reading -------------------------------------------------------------------------------

    def _complete_end(self, fh, size: int) -> int:
        """The end of the last complete line at or before size (a partly written line waits)."""
        pos = size
        while pos > 0:
            step = min(_CHUNK, pos)
            fh.seek(pos - step)
            at = fh.read(step).rfind(b"\n")
            if at >= 0:
                return pos - step + at + 1
            pos -= step
        return 0

    def _ingest(self, data: bytes, base: int, bulk: bool = False) -> bool:
        """Index data read from `base`; True when a line is stamped more than DISORDER_S before
        one written ahead of it (the bisect's assumption does not hold for this log)."""
        disorder = False
        for offset, rec in _records(data, base):
            if rec.get("type") == "label":
                self._label(offset, rec)
            t = _stamp(rec)
            if t is None:
                continue
            if t < self.max_t - DISORDER_S:
                disorder = True
            self.max_t, self.min_t = max(self.max_t, t), min(self.min_t, t)
            if rec.get("type") != "label":
                version = rec.get("v")
                if isinstance(version, str):
                    self.versions.setdefault(version, _Version()).add(t, offset, rec, bulk)
        return disorder

    def _label(self, offset: int, rec: dict[str, Any]) -> None:
        self._set_label(offset, str(rec.get("id")), rec.get("label"))

    def _set_label(self, offset: int, key: str, label: Any) -> None:
        known = self.labels.get(key)
        if known is None or known[0] <= offset:
            self.labels[key] = (offset, label)

    def _append(self, fh, size: int, bulk: bool = False) -> bool:
        fh.seek(self.offset)
        data = fh.read(size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return False
        base, self.offset = self.offset, self.offset + end + 1
        disorder = self._ingest(data[: end + 1], base, bulk)
        if bulk:
            for variant in self.versions.values():
                variant.settle()
        return disorder

    def _read_whole(self, fh, size: int) -> None:
        identity = self.identity
        self._reset(identity)
        self.whole = True
        self._append(fh, size, bulk=True)

    def _start_tail(self, fh, size: int, start: float) -> None:
        complete = self._complete_end(fh, size)
        first, stamp = self._bisect(fh, 0, complete, start - DISORDER_S)
        if first > 0:
            self.first = self.offset = first
            self.covers_after = stamp + DISORDER_S
            self._scan_labels(fh, 0, first)

    def _extend_back(self, fh, start: float) -> None:
        first, stamp = self._bisect(fh, 0, self.first, start - DISORDER_S)
        fh.seek(first)
        data = fh.read(self.first - first)
        old_max, old_min = self.max_t, self.min_t
        self.max_t = -math.inf
        disorder = self._ingest(data, first, bulk=True)
        if disorder or old_min < self.max_t - DISORDER_S:  # also across the seam
            self._read_whole(fh, os.fstat(fh.fileno()).st_size)
            return
        self.max_t = max(old_max, self.max_t)
        for variant in self.versions.values():
            variant.settle()
        self.first = first
        self.covers_after = stamp + DISORDER_S if first > 0 else -math.inf

    def _bisect(self, fh, lo: int, hi: int, target: float) -> tuple[int, float]:
        """A line start in [lo, hi) whose line is stamped below target, as late as the probes
        find; (lo, -inf) when none is (then read from lo)."""
        found, stamp = lo, -math.inf
        while hi - lo > _PROBE_SPAN:
            mid = (lo + hi) // 2
            probe = self._stamp_after(fh, mid, hi)
            if probe is None or probe[1] >= target:
                hi = mid
            else:
                found, stamp = probe
                lo = found + 1
        return found, stamp

    def _stamp_after(self, fh, pos: int, hi: int) -> tuple[int, float] | None:
        """The first line starting after pos (and before hi) with a usable t: (its start, t)."""
        fh.seek(pos)
        buf = fh.read(min(_PROBE_SPAN, hi - pos))
        at = buf.find(b"\n")
        while at >= 0:
            line_start = pos + at + 1
            nxt = buf.find(b"\n", at + 1)
            if nxt < 0:
                if len(buf) < hi - pos and len(buf) < 4 * _PROBE_SPAN:  # a very long line: read on
                    fh.seek(pos)
                    buf = fh.read(min(4 * _PROBE_SPAN, hi - pos))
                    continue
                return None
            for offset, rec in _records(buf[at + 1: nxt], line_start):
                t = _stamp(rec)
                if t is not None and "t" in rec:
                    return offset, t
            at = nxt
        return None

    def _scan_labels(self, fh, lo: int, hi: int) -> None:
        """Every label line of [lo, hi) (lo a line start, hi a line end), without parsing the
        request lines around them: the router's own label lines are read by one regex; if the
        range holds any other mention of "label", each such line is parsed instead."""
        if hi <= lo:
            return
        with mmap.mmap(fh.fileno(), hi, access=mmap.ACCESS_READ) as mm:
            first_end = mm.find(b"\n", lo, hi)  # the regex wants the \n before a line: line one apart
            self._parse_labels(mm, lo, first_end + 1)
            found = _ROUTER_LABEL.findall(mm, first_end, hi)
            if 2 * len(found) == len(_LABEL_WORD.findall(mm, first_end, hi)):  # type and key per line
                values = _LABEL_VALUES
                self.early.update({label_id.decode("ascii"): values[value] for label_id, value in found})
            else:
                self._parse_labels(mm, first_end + 1, hi)

    def _parse_labels(self, mm, lo: int, hi: int) -> None:
        at = mm.find(b'"label"', lo, hi)
        while at >= 0:
            line_start = max(mm.rfind(b"\n", lo, at) + 1, lo)
            line_end = mm.find(b"\n", at, hi)
            line_end = hi if line_end < 0 else line_end
            for offset, rec in _records(mm[line_start:line_end], line_start):
                if rec.get("type") == "label":
                    self.early[str(rec.get("id"))] = rec.get("label")
            at = mm.find(b'"label"', line_end, hi)


class LocalMetrics:
    """Windows over requests.jsonl and its rotated generations (requests.jsonl.1 the newest of
    them): one index per file, kept by the file's identity, so a rotation (a rename) keeps every
    index built so far; a request's label is the last one for its id in the newest file holding one."""

    def __init__(self, root: str | Path, config: dict[str, Any] | None = None):
        self.root = Path(root)
        self.config = config or {}
        self._indexes: dict[tuple[str, tuple[int, int]], _LogIndex] = {}  # (model, (dev, inode)) -> index

    def _generations(self, model: str) -> list[tuple[Path, tuple[int, int]]]:
        """(path, identity) of the log's files, oldest first."""
        check_name(model, "model")
        base = self.root / "serving" / model / "requests.jsonl"
        try:
            names = os.listdir(base.parent)
        except FileNotFoundError:
            return []
        numbers = sorted((int(n.rsplit(".", 1)[1]) for n in names
                          if n.startswith("requests.jsonl.") and n.rsplit(".", 1)[1].isdigit()), reverse=True)
        out = []
        for path in [base.with_name(f"requests.jsonl.{n}") for n in numbers] + [base]:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            out.append((path, (st.st_dev, st.st_ino)))
        return out

    def _read(self, model: str, start: float, end: float) -> list[_LogIndex]:
        """Every generation's index, read for the window, oldest first (a rotation during the read
        is read again: each index must match the file at its path)."""
        for _ in range(5):
            files = self._generations(model)
            indexes = []
            for path, identity in files:
                index = self._indexes.get((model, identity))
                if index is None:
                    index = self._indexes[(model, identity)] = _LogIndex(path)
                index.path = path  # renamed by a rotation: the same file, the same index
                with index.lock:
                    index.read(start, end)
                indexes.append(index)
            if [ix.identity for ix in indexes] == [i for _, i in files] == [i for _, i in self._generations(model)]:
                live = {(model, i) for _, i in files}
                for key in [k for k in self._indexes if k[0] == model and k not in live]:
                    del self._indexes[key]  # a generation past `keep` was deleted
                return indexes
        return indexes

    def _index(self, model: str) -> _LogIndex:
        """The index of requests.jsonl itself (the generation being written)."""
        files = self._generations(model)
        if not files or files[-1][0].name != "requests.jsonl":
            return _LogIndex(self.root / "serving" / model / "requests.jsonl")
        return self._indexes.setdefault((model, files[-1][1]), _LogIndex(files[-1][0]))

    def health(self, model: str, version: str, start: float, end: float) -> HealthWindow:
        indexes = self._read(model, start, end)
        rows: list[dict[str, Any]] = []
        for index in indexes:
            with index.lock:
                variant = index.versions.get(version)
                if variant is not None:
                    rows.extend(variant.window(start, end))

        def label_of(request_id: Any) -> Any:
            for index in reversed(indexes):  # the newest file holding a label for the id wins
                found, label = index.find_label(request_id)
                if found:
                    return label
            return None

        window = HealthWindow(model, version, start, end, requests=len(rows))
        latencies = sorted(float(r.get("ms", 0.0)) for r in rows)
        window.errors = sum(1 for r in rows if int(r.get("status", 500)) >= 500)
        window.latencies_ms = [float(r.get("ms", 0.0)) for r in rows]
        window.latency_p50_ms = quantile(latencies, 0.5)
        window.latency_p99_ms = quantile(latencies, 0.99)
        window.predictions = [float(r["p"]) for r in rows if r.get("p") is not None]
        for r in rows:
            label = label_of(r.get("id"))
            if label is None or r.get("p") is None:
                continue
            window.labelled += 1
            window.correct += int((float(r["p"]) >= 0.5) == bool(label))
        # The router is sticky by the request's key: the user is the unit it randomises.
        if rows and all(isinstance(r.get("key"), str) for r in rows):
            window.unit_kind = "user"
            window.units = _per_unit(rows, label_of)
        return window


def _per_unit(rows: list[dict[str, Any]], label_of) -> dict[str, dict[str, Any]]:
    """The window's requests grouped by routing key (user): what a user-level test needs."""
    units: dict[str, dict[str, Any]] = {}
    for r in rows:
        unit = units.setdefault(r["key"], {"requests": 0, "errors": 0, "latencies_ms": [], "predictions": [],
                                           "labelled": 0, "wrong": 0})
        unit["requests"] += 1
        unit["errors"] += int(int(r.get("status", 500)) >= 500)
        unit["latencies_ms"].append(float(r.get("ms", 0.0)))
        if r.get("p") is not None:
            unit["predictions"].append(float(r["p"]))
            label = label_of(r.get("id"))
            if label is not None:
                unit["labelled"] += 1
                unit["wrong"] += int((float(r["p"]) >= 0.5) != bool(label))
    return units
