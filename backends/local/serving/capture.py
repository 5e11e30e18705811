"""The router's feature capture for the monitor: a sampled copy of what production answered.

For a sample of requests, chosen by a hash of the request id (so a label posted later for the
same id is kept or dropped with it, and two routers agree), the router hands the rows, the
columns, the whole predictions, the version, the request id and a hash of the routing key to
`FeatureCapture.offer`. That call only puts a tuple on a bounded queue (a full queue drops the
copy and counts it: capture never blocks or delays a served request); one writer thread turns
it into JSON lines in rotated segments:

    serving/MODEL/capture/seg-<start ms>-<n>.jsonl

A segment is closed past `max_bytes` or `max_age_s` and never written again, so a reader may keep
a cursor (segment name, byte offset); the newest segment grows by whole lines. Segments beyond
`keep_bytes` in all, or older than `retain_s`, are deleted oldest first.

One line per served row:
    {"t", "id", "v", "k" (sha256 of the key, 16 hex), "x" {column: value}, "p" (the row's whole
     prediction as the server answered it), "status"}
and one per sampled label: {"type": "label", "t", "id", "label"}.

Why JSON lines and not Parquet here: the router stays stdlib-only (no pyarrow in the served
process, ~0.3 s and ~60 MB more per router); the monitor reads the segments with pyarrow's C++
JSON reader (tests/bench/bench_monitor.py measures it against Parquet).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from pathlib import Path

CAPTURE_QUEUE = 4096  # rows waiting for the writer; beyond this a copy is dropped and counted
SEGMENT_MAX_BYTES = 32 * 1024 * 1024
SEGMENT_MAX_AGE_S = 3600.0
KEEP_BYTES = 2 * 1024 * 1024 * 1024  # all segments together
RETAIN_S = 14 * 86400.0  # a segment older than this is deleted (labels join for as long)
SEGMENT_PREFIX = "seg-"


def sampled(request_id: str, sample: float) -> bool:
    """Deterministic by id: the same id is always in or always out of a sample."""
    if sample >= 1.0:
        return True
    if sample <= 0.0:
        return False
    h = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big")
    return h < sample * 2.0 ** 64


def key_hash(key: str) -> str:
    """The routing key as the monitor sees it: enough to count users, not to name them."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def segment_paths(folder: Path) -> list[Path]:
    """The capture segments in the order they were written (their names sort by start time)."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(SEGMENT_PREFIX) and n.endswith(".jsonl")]
    except FileNotFoundError:
        return []
    return [folder / n for n in sorted(names)]


class SegmentLog:
    """Append-only JSON lines in rotated segments (see the module's docstring). One writer."""

    def __init__(self, folder: Path, *, max_bytes: int = SEGMENT_MAX_BYTES, max_age_s: float = SEGMENT_MAX_AGE_S,
                 keep_bytes: int = KEEP_BYTES, retain_s: float = RETAIN_S, clock=time.time):
        if max_bytes < 1 or max_age_s <= 0 or keep_bytes < 1 or retain_s <= 0:
            raise ValueError(f"{folder}: segment limits must be positive")
        self.folder = folder
        self.max_bytes, self.max_age_s, self.keep_bytes, self.retain_s = max_bytes, max_age_s, keep_bytes, retain_s
        self.clock = clock
        self.rotations = 0
        self.deleted = 0
        folder.mkdir(parents=True, exist_ok=True)
        self.fh = None
        self.size = 0
        self.started = 0.0
        self.seq = 0

    def _open(self, now: float) -> None:
        self.seq += 1
        path = self.folder / f"{SEGMENT_PREFIX}{int(now * 1000):013d}-{os.getpid()}-{self.seq:04d}.jsonl"
        self.fh = open(path, "ab")
        self.size, self.started = 0, now

    def write(self, lines: list[bytes]) -> None:
        now = self.clock()
        if self.fh is not None and self.size and (self.size >= self.max_bytes or now - self.started >= self.max_age_s):
            self.fh.close()
            self.fh = None
            self.rotations += 1
            self._prune(now)
        if self.fh is None:
            self._open(now)
        data = b"".join(lines)
        self.fh.write(data)
        self.fh.flush()  # whole lines reach the file together: a reader never sees a torn batch for long
        self.size += len(data)

    def _prune(self, now: float) -> None:
        paths = segment_paths(self.folder)
        sizes = []
        for p in paths:
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            sizes.append((p, st.st_size, st.st_mtime))
        total = sum(s for _, s, _ in sizes)
        for path, size, mtime in sizes[:-1]:  # never the one just closed
            if total <= self.keep_bytes and now - mtime <= self.retain_s:
                break
            try:
                path.unlink()
                self.deleted += 1
            except FileNotFoundError:
                pass
            total -= size

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class FeatureCapture:
    COUNTERS = ("offered", "sampled_out", "queued", "dropped", "written", "labels")

    def __init__(self, folder: Path, *, sample: float, capacity: int = CAPTURE_QUEUE, **segment_limits):
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"capture sample {sample!r}: a fraction in [0, 1]")
        self.sample = sample
        self.capacity = capacity
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self.count_lock = threading.Lock()
        self.log = SegmentLog(folder, **segment_limits)
        self.idle = threading.Event()  # set when the queue is empty and everything taken is written
        self.idle.set()
        threading.Thread(target=self._work, name="capture", daemon=True).start()

    def _count(self, name: str, n: int = 1) -> None:
        with self.count_lock:
            self.counts[name] += n

    def snapshot(self) -> dict:
        with self.count_lock:
            counters = dict(self.counts)
        return {"sample": self.sample, "counters": counters, "queue": self.queue.qsize(), "capacity": self.capacity,
                "segments": {"max_bytes": self.log.max_bytes, "max_age_s": self.log.max_age_s,
                             "rotations": self.log.rotations, "deleted": self.log.deleted}}

    def _put(self, item: tuple) -> None:
        try:
            self.idle.clear()
            self.queue.put_nowait(item)
        except queue.Full:
            self._count("dropped")
            return
        self._count("queued")

    def offer(self, request_id: str, key: str, version: str | None, rows, columns, status: int, preds, t: float) -> None:
        """On the served path: a hash, a counter and a put_nowait; nothing else."""
        self._count("offered")
        if not sampled(request_id, self.sample):
            self._count("sampled_out")
            return
        self._put(("request", t, request_id, key, version, rows, columns, status, preds))

    def offer_label(self, request_id: str, label, t: float) -> None:
        if sampled(request_id, self.sample):
            self._put(("label", t, request_id, label))

    def _lines(self, item: tuple) -> list[bytes]:
        if item[0] == "label":
            _, t, request_id, label = item
            self._count("labels")
            return [json.dumps({"type": "label", "t": t, "id": request_id, "label": label},
                               separators=(",", ":")).encode() + b"\n"]
        _, t, request_id, key, version, rows, columns, status, preds = item
        if not isinstance(rows, list):
            return []
        k = key_hash(key)
        out = []
        many = len(rows) > 1
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                features = row
            elif isinstance(row, list):
                names = columns if isinstance(columns, list) and len(columns) == len(row) else \
                    [f"x{j}" for j in range(len(row))]
                features = dict(zip(names, row))
            else:
                continue
            pred = preds[i] if isinstance(preds, list) and i < len(preds) else None
            rec = {"t": t, "id": f"{request_id}#{i}" if many else request_id, "v": version, "k": k, "x": features,
                   "p": pred, "status": status}
            out.append(json.dumps(rec, separators=(",", ":"), default=str).encode() + b"\n")
        self._count("written", len(out))
        return out

    def _work(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < 512:  # one write per burst, not per row
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                lines = [line for item in batch for line in self._lines(item)]
                if lines:
                    self.log.write(lines)
            except Exception:  # noqa: BLE001  (a full disk: the copies are lost, serving goes on)
                self._count("dropped", len(batch))
            if self.queue.empty():
                self.idle.set()
