"""A load generator: replays holdout rows against a model's router at a chosen rate.

Each request carries a user key (drawn from a fixed pool, so users keep their variant) and the
row; the row's true label is posted to /label `label_delay_s` later, as labels arrive in life.
Use it in-process (`LoadGenerator(...).start()` / `.stop()`) or as
`python -m backends.local.loadgen --workspace WS --model M --data name@version --rate 50 --duration 30`.
"""

from __future__ import annotations

import argparse
import heapq
import http.client
import json
import random
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class LoadGenerator:
    def __init__(self, port: int, rows: list[list[float]], labels: list[int] | None = None, *, rate: float = 50.0,
                 users: int = 1000, label_delay_s: float = 0.5, workers: int = 8, seed: int = 0):
        self.port = port
        self.rows = rows
        self.labels = labels
        self.rate = rate
        self.users = users
        self.label_delay_s = label_delay_s
        self.random = random.Random(seed)
        self.stats = {"sent": 0, "ok": 0, "errors": 0, "failed": 0}
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

    def _post(self, path: str, body: dict[str, Any]) -> int:
        data = json.dumps(body).encode()
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request("POST", path, data, {"Content-Type": "application/json"})
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
            status = self._post("/predict", {"id": request_id, "key": key, "rows": [self.rows[index]]})
        except OSError:
            self.stats["failed"] += 1
            return
        self.stats["ok" if status == 200 else "errors"] += 1
        if self.labels is not None and status == 200:
            with self._labels_lock:
                heapq.heappush(self._labels_due, (time.monotonic() + self.label_delay_s, request_id, int(self.labels[index])))

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
            self._post("/label", {"id": request_id, "label": label})
        except OSError:
            pass

    def _run(self, duration: float | None) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        end = None if duration is None else next_at + duration
        while not self._stop.is_set() and (end is None or time.monotonic() < end):
            index = self.random.randrange(len(self.rows))
            key = f"user-{self.random.randrange(self.users)}"
            self.stats["sent"] += 1
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

    def stop(self) -> dict[str, int]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        return dict(self.stats)


def holdout(ws_root: str, model: str, ref: str | None = None) -> tuple[list[list[float]], list[int]]:
    """The model's holdout rows (features in the artifact's order) and labels."""
    from backends.local.datasets import DatasetStore
    from console.workspace import Workspace

    ws = Workspace.open(ws_root)
    cfg = ws.model_config(model)
    ref = ref or cfg.get("test_data")
    if not ref:
        raise ValueError(f"{model}: no test_data in mrc.toml; pass --data name@version")
    dataset, columns, data = DatasetStore(ws.root).load(ref)
    label = cfg.get("label") or dataset.label
    label_index = columns.index(label)
    features = [i for i in range(len(columns)) if i != label_index]
    return data[:, features].tolist(), [int(x) for x in data[:, label_index]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backends.local.loadgen")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", help="dataset name@version (default: the model's test_data)")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--label-delay", type=float, default=0.5)
    args = parser.parse_args(argv)
    from backends.local.traffic import LocalTraffic

    port = LocalTraffic(args.workspace).router_port(args.model)
    if port is None:
        print(f"{args.model}: not served (run `mrc serve-models {args.model}`)", file=sys.stderr)
        return 2
    rows, labels = holdout(args.workspace, args.model, args.data)
    gen = LoadGenerator(port, rows, labels, rate=args.rate, label_delay_s=args.label_delay).start(args.duration)
    gen._thread.join()
    print(json.dumps(gen.stop()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
