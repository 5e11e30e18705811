"""The weighted router in front of a model's servers: `python -m backends.local.router ...`.

- POST /predict {"key", "rows", "id"?}: the key is hashed (sha256) to a bucket in [0, 10000);
  the buckets are dealt to the versions in split order, so a user keeps their variant while
  the canary grows (the canary comes first in the split: its buckets only ever extend).
- GET /control/split -> {"weights", "revision"}; PUT /control/split {"weights",
  "expected_revision"} is compare-and-swap (409 when the revision moved); POST
  /control/rollback {"stable"} sends everything to stable whatever the revision.
- PUT /control/backends {"version": "http://127.0.0.1:PORT"}: where each version is served.
- POST /label {"id", "label"}: a label that arrived later, for online accuracy.
Every request and label is appended to requests.jsonl (the metrics backend reads it), and the
split is saved in split.json (atomic rename) before it is answered, so a restart routes the same.
stdlib only.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from backends.local.jsonhttp import JsonHandler

BUCKETS = 10_000


def bucket_of(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % BUCKETS


def choose(weights: list[tuple[str, int]], key: str) -> str | None:
    """Deterministic: the same key and split always give the same version."""
    b = bucket_of(key)
    edge = 0
    chosen = None
    for version, weight in weights:
        if weight <= 0:
            continue
        edge += weight * BUCKETS // 100
        chosen = version
        if b < edge:
            return version
    return chosen  # rounding: the last bucket belongs to the last version


def validate_weights(weights) -> list[tuple[str, int]]:
    if isinstance(weights, dict):
        items = list(weights.items())
    else:
        items = [tuple(x) for x in weights]
    if not items:
        raise ValueError("weights: at least one version")
    out = []
    for version, weight in items:
        if not isinstance(version, str) or not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise ValueError(f"weights: {version!r} -> {weight!r} must be a version and an integer percent")
        out.append((version, weight))
    if sum(w for _, w in out) != 100:
        raise ValueError(f"weights: must sum to 100 (got {sum(w for _, w in out)})")
    return out


class RouterState:
    def __init__(self, state_dir: Path, model: str):
        self.dir = state_dir
        self.model = model
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.split_path = state_dir / "split.json"
        self.weights: list[tuple[str, int]] = []
        self.revision = 0
        self.backends: dict[str, str] = {}
        if self.split_path.exists():
            data = json.loads(self.split_path.read_text())
            self.weights = [tuple(x) for x in data.get("weights", [])]
            self.revision = int(data.get("revision", 0))
        self.log = open(state_dir / "requests.jsonl", "a", buffering=1)

    def split(self) -> dict:
        return {"model": self.model, "weights": dict(self.weights), "order": [v for v, _ in self.weights],
                "revision": self.revision}

    def set(self, weights: list[tuple[str, int]]) -> dict:
        """Caller holds the lock. Persist first: a split is live only once it is on disk."""
        revision = self.revision + 1
        tmp = self.split_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"weights": weights, "revision": revision, "at": time.time()}))
        os.replace(tmp, self.split_path)
        self.weights, self.revision = weights, revision
        return self.split()

    def write_log(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.log_lock:
            self.log.write(line)


_local = threading.local()


def _forward(url: str, body: bytes) -> tuple[int, bytes]:
    """POST to a model server over a per-thread keep-alive connection."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    for attempt in range(2):
        conn = conns.get(url)
        if conn is None:
            parts = urlsplit(url)
            conn = conns[url] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conns.pop(url, None)
            if attempt:
                raise
    raise OSError("unreachable")


def make_handler(state: RouterState):
    class Handler(JsonHandler):

        def _raw(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self):
            if self.path == "/control/split":
                with state.lock:
                    self._reply(200, state.split())
            elif self.path == "/health":
                self._reply(200, {"model": state.model, "pid": os.getpid(), "backends": state.backends})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_PUT(self):
            try:
                body = json.loads(self._raw() or b"{}")
            except json.JSONDecodeError as exc:
                self._reply(400, {"error": f"bad JSON: {exc}"})
                return
            if self.path == "/control/split":
                try:
                    weights = validate_weights(body.get("weights"))
                    expected = int(body["expected_revision"])
                except (ValueError, KeyError, TypeError) as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                missing = [v for v, w in weights if w and v not in state.backends]
                if missing:
                    self._reply(400, {"error": f"not served: {', '.join(missing)}"})
                    return
                with state.lock:
                    if expected != state.revision:
                        self._reply(409, {"error": "revision moved", **state.split()})
                        return
                    self._reply(200, state.set(weights))
            elif self.path == "/control/backends":
                with state.lock:
                    state.backends.update({str(k): str(v) for k, v in body.items()})
                    self._reply(200, {"backends": state.backends})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_POST(self):
            raw = self._raw()
            if self.path == "/predict":
                self._predict(raw)
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as exc:
                self._reply(400, {"error": f"bad JSON: {exc}"})
                return
            if self.path == "/control/rollback":
                stable = body.get("stable")
                if not isinstance(stable, str) or not stable:
                    self._reply(400, {"error": "stable: a version is required"})
                    return
                with state.lock:
                    current = dict(state.weights)
                    result = state.split() if current == {stable: 100} else state.set([(stable, 100)])
                self._reply(200, result)
            elif self.path == "/label":
                state.write_log({"type": "label", "t": time.time(), "id": str(body.get("id")), "label": body.get("label")})
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def _predict(self, raw: bytes) -> None:
            started = time.perf_counter()
            try:
                body = json.loads(raw or b"{}")
                key = str(body.get("key") or uuid.uuid4().hex)
                request_id = str(body.get("id") or uuid.uuid4().hex)
            except (json.JSONDecodeError, AttributeError) as exc:
                self._reply(400, {"error": f"bad JSON: {exc}"})
                return
            weights = state.weights  # one read: a split swap is atomic for this request
            version = choose(weights, key)
            url = state.backends.get(version) if version else None
            if url is None:
                self._reply(503, {"error": f"no backend for {version}"})
                return
            try:
                status, payload = _forward(url, json.dumps({"rows": body.get("rows")}).encode())
                reply = json.loads(payload)
            except (OSError, ValueError) as exc:
                status, reply = 502, {"error": f"{version} unreachable: {exc}"}
            latency_ms = (time.perf_counter() - started) * 1000.0
            preds = reply.get("predictions") if status == 200 else None
            state.write_log({"type": "request", "t": time.time(), "id": request_id, "key": key, "v": version,
                             "status": status, "ms": round(latency_ms, 3), "p": preds[0] if preds else None})
            reply.update({"id": request_id, "version": version})
            self._reply(status, reply)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backends.local.router")
    parser.add_argument("--dir", required=True, help="the model's serving folder (split.json, requests.jsonl)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)
    state = RouterState(Path(args.dir), args.model)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    server.daemon_threads = True
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"pid": os.getpid(), "port": server.server_address[1]}, fh)
    os.replace(tmp, args.ready_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
