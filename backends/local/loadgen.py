"""A load generator: replays test rows against a model's router at a chosen rate.

Each request carries a user key (drawn from a fixed pool, so users keep their variant), the
row and, when known, the column names (so any model server can pick its features by name); the
row's true label is posted to /label `label_delay_s` later, as labels arrive in life.
Use it in-process (`LoadGenerator(...).start()` / `.stop()`, or `.run(duration)`), through
or through `LocalTraffic.load` (`mrc load MODEL --data REF --rate R`). A library only: its old
`python -m` entry point imported LocalTraffic back, a cycle with traffic.py.
"""

from __future__ import annotations

import heapq
import http.client
import json
import random
import threading
import time
import tomllib
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from backends.native.datasets import DatasetStore


class LoadGenerator:
    def __init__(self, port: int, rows: list[list[float]], labels: list[int] | None = None, *, rate: float = 50.0,
                 users: int = 1000, label_delay_s: float = 0.5, workers: int = 8, seed: int = 0,
                 columns: list[str] | None = None, headers: dict[str, str] | None = None):
        self.port = port
        self.label_headers = dict(headers or {})  # the workspace's control key: /label is a control route
        self.rows = rows
        self.columns = columns
        self.labels = labels
        self.rate = rate
        self.users = users
        self.label_delay_s = label_delay_s
        self.random = random.Random(seed)
        self.stats = {"sent": 0, "ok": 0, "errors": 0, "failed": 0}
        self._stats_lock = threading.Lock()  # += from the pool's threads would lose counts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._local = threading.local()
        self._labels_due: list[tuple[float, str, int]] = []
        self._labels_lock = threading.Lock()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        return conn

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> int:
        data = json.dumps(body).encode()
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request("POST", path, data, {"Content-Type": "application/json", **(headers or {})})
                resp = conn.getresponse()
                resp.read()
                return resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        return 0

    def _one(self, index: int, key: str) -> None:
        request_id = uuid.uuid4().hex
        try:
            body = {"id": request_id, "key": key, "rows": [self.rows[index]]}
            if self.columns is not None:
                body["columns"] = self.columns
            status = self._post("/predict", body)
        except (OSError, http.client.HTTPException):
            self._count("failed")
            return
        self._count("ok" if status == 200 else "errors")
        if self.labels is not None and status == 200:
            with self._labels_lock:
                heapq.heappush(self._labels_due, (time.monotonic() + self.label_delay_s, request_id, int(self.labels[index])))

    def _count(self, what: str) -> None:
        with self._stats_lock:
            self.stats[what] += 1

    def _send_due_labels(self) -> None:
        now = time.monotonic()
        while True:
            with self._labels_lock:
                if not self._labels_due or self._labels_due[0][0] > now:
                    return
                _, request_id, label = heapq.heappop(self._labels_due)
            self._pool.submit(self._label, request_id, label)

    def _label(self, request_id: str, label: int) -> None:
        try:
            self._post("/label", {"id": request_id, "label": label}, self.label_headers)
        except (OSError, http.client.HTTPException):
            pass

    def _run(self, duration: float | None) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        end = None if duration is None else next_at + duration
        while not self._stop.is_set() and (end is None or time.monotonic() < end):
            index = self.random.randrange(len(self.rows))
            key = f"user-{self.random.randrange(self.users)}"
            self._count("sent")
            self._pool.submit(self._one, index, key)
            self._send_due_labels()
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1.0:
                next_at = time.monotonic()  # fell behind by a second: do not burst to catch up

    def start(self, duration: float | None = None) -> "LoadGenerator":
        self._thread = threading.Thread(target=self._run, args=(duration,), daemon=True, name="loadgen")
        self._thread.start()
        return self

    def run(self, duration: float, drain_s: float = 30.0) -> dict[str, int]:
        """Send for `duration` seconds, wait (up to drain_s) for the answers, post the labels
        still due, and return the counts."""
        self.start(duration)
        self._thread.join()
        deadline = time.monotonic() + drain_s
        while self.stats["ok"] + self.stats["errors"] + self.stats["failed"] < self.stats["sent"] \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._labels_lock:
            due, self._labels_due = sorted(self._labels_due), []
        for when, request_id, label in due:  # in life labels come late, not never
            delay = when - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._label(request_id, label)
        return self.stop()

    def stop(self) -> dict[str, int]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        return dict(self.stats)


def holdout_rows(ws_root: str | Path, ref: str, label: str | None = None) -> tuple[list[str], list[list[float]], list[int]]:
    """(feature columns, rows, labels) of a dataset name@version in mrc's own dataset store."""
    dataset, columns, data = DatasetStore(Path(ws_root)).load(ref)
    label = label or dataset.label
    if label not in columns:
        raise ValueError(f"{ref}: has no label column {label!r}")
    label_index = columns.index(label)
    features = [i for i in range(len(columns)) if i != label_index]
    return [columns[i] for i in features], data[:, features].tolist(), [int(x) for x in data[:, label_index]]


def holdout(ws_root: str, model: str, ref: str | None = None) -> tuple[list[list[float]], list[int]]:
    """The model's holdout rows (features in the dataset's order) and labels, from mrc.toml's
    [models.<model>] test_data (read here with tomllib: a backend does not open console/)."""
    try:
        table = tomllib.loads((Path(ws_root) / "mrc.toml").read_text()).get("models", {}).get(model, {})
    except (OSError, tomllib.TOMLDecodeError):
        table = {}
    ref = ref or table.get("test_data")
    if not ref:
        raise ValueError(f"{model}: no test_data in mrc.toml; pass --data name@version")
    _, rows, labels = holdout_rows(ws_root, ref, table.get("label"))
    return rows, labels
