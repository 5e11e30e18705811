"""The weighted router in front of a model's servers: `python -m backends.local.serving.router ...`.

- POST /predict {"key", "rows", "id"?}: the key is hashed (sha256) to a bucket in [0, 10000);
  the buckets are dealt to the versions in split order, so a user keeps their variant while
  the canary grows (the canary comes first in the split: its buckets only ever extend).
- GET /control/split -> {"weights", "revision"}; PUT /control/split {"weights",
  "expected_revision"} is compare-and-swap (409 when the revision moved); POST
  /control/rollback {"stable"} sends everything to stable whatever the revision.
- PUT /control/backends {"version": "http://127.0.0.1:PORT" | {"url", "protocol", "columns"?,
  "task"?}}: where each version is served and which protocol its server speaks: "mrc" (our
  model server: POST /predict {"rows", "columns"}) or "mlflow-invocations" (MLflow's scoring
  server: the router translates to POST /invocations {"dataframe_split": …} and back).
- POST /control/fault {"version", "error_rate", "latency_ms", "shift"}: a rehearsal fault applied
  here, for versions whose server is not ours (ours take faults themselves).
- POST /label {"id", "label"}: a label that arrived later, for online accuracy.
- GET /control/shadow -> {"shadow", "revision", "counters"}; PUT /control/shadow {"version" | null,
  "sample", "expected_revision"} (compare-and-swap) mirrors a sampled copy of each request to
  that version's server, after the served response is written, through a bounded queue and
  worker threads (a full queue drops the copy and counts it: mirroring never blocks or delays a
  served request); both predictions and both latencies go to shadow.jsonl (rotated to
  shadow.jsonl.1 … past --shadow-log-max-bytes, whole lines only), the setting to shadow.json.
Every request (503 "no backend" and upstream failures included) and every label is appended to
requests.jsonl (the metrics backend reads it; rotated to requests.jsonl.1 … past
--request-log-max-bytes or --request-log-max-age-s), and the split is saved in split.json (atomic
rename) before it is answered, so a restart routes the same. stdlib only.

Every request passes jsonhttp.JsonHandler._admit: its own Host only, JSON bodies only, and the
workspace's control key (--key-file) on /control/* and /label.

With --capture-sample (mrc.toml [monitor] sample), a sample of requests by id hash has its
features, whole predictions, version and key hash written off the served path to
capture/seg-*.jsonl (backends/local/serving/capture.py); GET /control/capture shows its counters. /control/backends takes only
http://127.0.0.1:PORT of servers recorded in processes.json. Accepted state changes are
appended to control.jsonl.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import queue
import random
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from backends.local.serving.controlkey import read_key
from backends.local.serving.jsonhttp import JsonHandler

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


MRC, MLFLOW = "mrc", "mlflow-invocations"
PROTOCOLS = (MRC, MLFLOW)


def backend_entry(value) -> dict:
    """A backend as the router keeps it: {"url", "protocol", "columns", "task"}."""
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, dict) or not isinstance(value.get("url"), str):
        raise ValueError(f"backend {value!r}: a URL or {{'url', 'protocol'}} is required")
    protocol = value.get("protocol", MRC)
    if protocol not in PROTOCOLS:
        raise ValueError(f"backend protocol {protocol!r}: one of {', '.join(PROTOCOLS)}")
    columns = value.get("columns")
    if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        raise ValueError("backend columns: a list of column names")
    return {"url": value["url"], "protocol": protocol, "columns": columns, "task": str(value.get("task") or "binary")}


def p_one(prediction) -> float:
    """One MLflow prediction as a number: P(1) of a [p0, p1] pair, the value of [v], or of a
    dict (a DataFrame row) its probability-like column, else its only or last column."""
    if isinstance(prediction, bool):
        return float(prediction)
    if isinstance(prediction, (int, float)):
        return float(prediction)
    if isinstance(prediction, list):
        if len(prediction) in (1, 2):
            return p_one(prediction[-1])
        raise ValueError(f"prediction with {len(prediction)} values: expected 1 or 2 (a multi-class model: "
                         "task = \"multiclass\" under [models.X] in mrc.toml)")
    if isinstance(prediction, dict):
        for key in ("1", "1.0", "probability", "probabilities", "proba", "score", "prediction", "predictions"):
            if key in prediction:
                return p_one(prediction[key])
        if prediction:
            return p_one(list(prediction.values())[-1])
    raise ValueError(f"prediction {prediction!r}: not a number, a [p0, p1] pair or a row")


def prediction_of(prediction, task: str):
    """One MLflow prediction in its task's shape: a multi-class model's class-probability vector
    passes as a list of numbers, its class label as it is; a binary pair or row is reduced to
    P(1) (p_one), and three or more values there are refused; a regression's value is a number."""
    if isinstance(prediction, list) and task == "multiclass":
        return [float(p) for p in prediction]
    if task == "multiclass":
        if isinstance(prediction, dict):
            return [float(p) for p in prediction.values()]
        return prediction  # a predicted label (text or number)
    return p_one(prediction)


def predictions_from_mlflow(reply, task: str = "binary") -> list:
    """{"predictions": [...]} (MLflow 2 and 3), or a bare list (older servers), in the task's shape."""
    preds = reply.get("predictions") if isinstance(reply, dict) else reply
    if isinstance(preds, dict):  # a DataFrame in "columns" orient: {column: {row: value}}
        preds = [dict(zip(preds, values)) for values in zip(*(v.values() if isinstance(v, dict) else v
                                                               for v in preds.values()))]
    if not isinstance(preds, list):
        raise ValueError(f"answer without predictions: {str(reply)[:200]}")
    return [prediction_of(p, task) for p in preds]


class Fault:
    """A rehearsal fault the router applies to one version (error rate, latency, shift)."""

    def __init__(self, error_rate: float = 0.0, latency_ms: float = 0.0, shift: float = 0.0):
        values = [float(error_rate), float(latency_ms), float(shift)]
        if not all(math.isfinite(x) for x in values):
            raise ValueError("fault values must be finite numbers")
        self.error_rate = min(1.0, max(0.0, values[0]))
        self.latency_ms = max(0.0, values[1])
        self.shift = values[2]

    def to_dict(self) -> dict[str, float]:
        return {"error_rate": self.error_rate, "latency_ms": self.latency_ms, "shift": self.shift}


class RouterState:
    def __init__(self, state_dir: Path, model: str):
        self.dir = state_dir
        self.model = model
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.split_path = state_dir / "split.json"
        self.weights: list[tuple[str, int]] = []
        self.revision = 0
        self.backends: dict[str, dict] = {}
        self.faults: dict[str, Fault] = {}
        self.random = random.Random()
        if self.split_path.exists():
            data = json.loads(self.split_path.read_text())
            self.weights = [tuple(x) for x in data.get("weights", [])]
            self.revision = int(data.get("revision", 0))
        self.log = RotatingLog(state_dir / "requests.jsonl", REQUEST_LOG_MAX_BYTES, REQUEST_LOG_KEEP)
        self.mirror: ShadowMirror | None = None  # set by main: mirroring to a shadow version
        self.capture = None  # set by main with [monitor]: a sampled feature log (capture.FeatureCapture)

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

    def started_here(self, url: str) -> bool:
        """url is http://127.0.0.1:PORT of a server recorded in this folder's processes.json
        (written by the starter before it hands the router its backends)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.path not in ("", "/") \
                or parts.username or parts.query or port is None:
            return False
        try:
            servers = json.loads((self.dir / "processes.json").read_text()).get("servers", {})
        except (OSError, ValueError, AttributeError):
            return False
        return any(isinstance(s, dict) and s.get("port") == port for s in servers.values())

    def write_log(self, record: dict) -> None:
        self.log.write(json.dumps(record, separators=(",", ":")) + "\n")  # RotatingLog holds its own lock


_local = threading.local()


def _forward(url: str, body: bytes, path: str = "/predict", timeout: float = 30.0) -> tuple[int, bytes]:
    """POST to a model server over a per-thread keep-alive connection."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    for attempt in range(2):
        conn = conns.get(url)
        if conn is None:
            parts = urlsplit(url)
            conn = conns[url] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conns.pop(url, None)
            if attempt:
                raise
    raise OSError("unreachable")


def call_backend(backend: dict, rows, columns, timeout: float = 30.0) -> tuple[int, dict]:
    """One batch to one backend in its own protocol; (status, {"predictions"} or {"error"})."""
    if backend["protocol"] == MRC:
        body = {"rows": rows} if columns is None else {"rows": rows, "columns": columns}
        status, payload = _forward(backend["url"], json.dumps(body).encode(), timeout=timeout)
        return status, json.loads(payload)
    columns = columns or backend.get("columns")
    frame = {"data": rows} if columns is None else {"columns": columns, "data": rows}
    status, payload = _forward(backend["url"], json.dumps({"dataframe_split": frame}).encode(), "/invocations",
                               timeout=timeout)
    try:
        reply = json.loads(payload)
    except ValueError:
        reply = {"error": payload[:300].decode(errors="replace")}
    if status != 200:
        message = reply.get("message") or reply.get("error") if isinstance(reply, dict) else None
        return status, {"error": str(message or reply)[:500]}
    try:
        return 200, {"predictions": predictions_from_mlflow(reply, backend.get("task") or "binary")}
    except (ValueError, TypeError) as exc:
        return 502, {"error": f"unreadable MLflow answer: {exc}"}


SHADOW_QUEUE = 256  # copies waiting for the candidate; beyond this a copy is dropped and counted
SHADOW_WORKERS = 2
SHADOW_TIMEOUT_S = 10.0  # a hung candidate holds a worker this long at most
SHADOW_LOG_MAX_BYTES = 64 * 1024 * 1024  # shadow.jsonl is rotated to shadow.jsonl.1 past this size
SHADOW_LOG_KEEP = 1  # rotated generations kept: shadow.jsonl.1 … shadow.jsonl.<keep>
# requests.jsonl is rotated like shadow.jsonl (LocalMetrics reads windows across the generations)
REQUEST_LOG_MAX_BYTES = 256 * 1024 * 1024
REQUEST_LOG_KEEP = 4


def generation(path: Path, number: int) -> Path:
    """The rotated generation `number` of a log: shadow.jsonl.1 is the newest."""
    return path.with_name(f"{path.name}.{number}")


class RotatingLog:
    """An append-only JSON-lines file rotated at a size: the file becomes <name>.1, <name>.1
    becomes <name>.2 … up to `keep`, the oldest is dropped. Whole lines only: each line goes
    to one file in one write, and a rotation happens between two writes under the same lock."""

    def __init__(self, path: Path, max_bytes: int = SHADOW_LOG_MAX_BYTES, keep: int = SHADOW_LOG_KEEP,
                 max_age_s: float = 0.0):
        if max_bytes < 1 or keep < 1 or max_age_s < 0:
            raise ValueError(f"{path}: max_bytes and keep must be at least 1, max_age_s >= 0")
        self.path, self.max_bytes, self.keep, self.max_age_s = path, max_bytes, keep, max_age_s
        self.lock = threading.Lock()
        self.rotations = 0
        self._open()

    def _open(self) -> None:
        self.fh = open(self.path, "a", buffering=1, encoding="utf-8")  # line-buffered: each line is flushed whole
        self.size = os.fstat(self.fh.fileno()).st_size
        # the age counts from when this process opened the file (a restart gives a file one more age at most)
        self.opened = time.monotonic()

    def write(self, line: str) -> None:
        size = len(line.encode("utf-8"))
        with self.lock:
            if self.size and (self.size + size > self.max_bytes  # a longer line still goes whole, alone
                              or (self.max_age_s and time.monotonic() - self.opened >= self.max_age_s)):
                self._rotate()
            self.fh.write(line)
            self.size += size

    def _rotate(self) -> None:
        self.fh.close()
        try:
            for number in range(self.keep - 1, 0, -1):  # oldest first, so no generation is overwritten
                try:
                    os.replace(generation(self.path, number), generation(self.path, number + 1))
                except FileNotFoundError:
                    pass
            os.replace(self.path, generation(self.path, 1))
            self.rotations += 1
        finally:  # a rename refused (a full disk, permissions) keeps the log writable where it is
            self._open()


def validate_shadow(body, backends: dict) -> dict | None:
    """{"version", "sample"} of a PUT /control/shadow, checked; None stops mirroring."""
    if not isinstance(body, dict):
        raise ValueError("shadow: a JSON object is required")
    version = body.get("version")
    if version is None:
        return None
    if not isinstance(version, str) or not version:
        raise ValueError(f"shadow version {version!r}: a version name or null")
    if version not in backends:
        raise ValueError(f"shadow version {version}: not served by this router")
    sample = body.get("sample", 1.0)
    if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not math.isfinite(sample) \
            or not 0.0 < float(sample) <= 1.0:
        raise ValueError(f"shadow sample {sample!r}: a fraction in (0, 1]")
    return {"version": version, "sample": float(sample)}


class ShadowMirror:
    """Copies of served requests sent to a candidate off the serving path.

    `offer` runs after the served response is written and never waits: a copy goes into a
    bounded queue or, when it is full, is dropped and counted. Worker threads send the copies
    to the candidate's server and log both answers (shadow.jsonl, one line per request)."""

    COUNTERS = ("offered", "sampled_out", "queued", "dropped", "completed", "failed")

    def __init__(self, state: "RouterState", *, capacity: int = SHADOW_QUEUE, workers: int = SHADOW_WORKERS,
                 timeout_s: float = SHADOW_TIMEOUT_S, log_max_bytes: int = SHADOW_LOG_MAX_BYTES,
                 log_keep: int = SHADOW_LOG_KEEP):
        self.state = state
        self.path = state.dir / "shadow.json"
        self.setting: dict | None = None  # {"version", "sample", "started_at"}
        self.last: dict | None = None  # the setting before, with its stopped_at
        self.revision = 0
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.setting, self.last, self.revision = data.get("shadow"), data.get("last"), int(data.get("revision", 0))
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self.count_lock = threading.Lock()
        self.random = random.Random()
        self.log = RotatingLog(state.dir / "shadow.jsonl", log_max_bytes, log_keep)
        for i in range(workers):
            threading.Thread(target=self._work, name=f"shadow-{i}", daemon=True).start()

    def snapshot(self) -> dict:
        with self.count_lock:
            counters = dict(self.counts)
        return {"model": self.state.model, "shadow": self.setting, "last": self.last, "revision": self.revision,
                "counters": counters, "queue": self.queue.qsize(), "capacity": self.capacity,
                "log": {"max_bytes": self.log.max_bytes, "keep": self.log.keep, "rotations": self.log.rotations}}

    def set(self, setting: dict | None) -> dict:
        """Caller holds the router's lock. Persisted before it is live, like the split."""
        now = time.time()
        last = self.last
        if self.setting is not None and (setting is None or setting["version"] != self.setting["version"]):
            last = {**self.setting, "stopped_at": now}
        if setting is not None:
            same = self.setting is not None and self.setting["version"] == setting["version"]
            setting = {**setting, "started_at": self.setting["started_at"] if same else now}
        revision = self.revision + 1
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"shadow": setting, "last": last, "revision": revision, "at": now}))
        os.replace(tmp, self.path)
        if setting is not None and (self.setting is None or self.setting["version"] != setting["version"]):
            with self.count_lock:  # counters describe the current shadow run
                self.counts = dict.fromkeys(self.COUNTERS, 0)
        self.setting, self.last, self.revision = setting, last, revision
        return self.snapshot()

    def _count(self, name: str) -> None:
        with self.count_lock:
            self.counts[name] += 1

    def offer(self, request_id: str, key: str, served: str | None, rows, columns, status: int, preds, ms: float) -> None:
        setting = self.setting  # one read: a stop in between leaves this copy to the old setting
        if setting is None or served is None or served == setting["version"]:
            return
        self._count("offered")
        if setting["sample"] < 1.0 and self.random.random() >= setting["sample"]:
            self._count("sampled_out")
            return
        try:
            self.queue.put_nowait((setting["version"], time.time(), request_id, key, served, rows, columns,
                                   status, preds, ms))
        except queue.Full:
            self._count("dropped")
            return
        self._count("queued")

    def _work(self) -> None:
        # Not niced: a niced worker wakes late on a loaded machine, and the shadow's latency it
        # times would look worse than production's for no fault of the candidate.
        while True:
            version, t, request_id, key, served, rows, columns, status, preds, ms = self.queue.get()
            backend = self.state.backends.get(version)
            started = time.perf_counter()
            if backend is None:
                shadow_status, reply = 503, {"error": f"no backend for {version}"}
            else:
                try:
                    shadow_status, reply = call_backend(backend, rows, columns, timeout=self.timeout_s)
                except (OSError, ValueError, http.client.HTTPException) as exc:
                    shadow_status, reply = 502, {"error": f"{version} unreachable: {exc}"}
            shadow_ms = (time.perf_counter() - started) * 1000.0
            if not isinstance(reply, dict):
                shadow_status, reply = 502, {"error": f"{version}: answer is not a JSON object"}
            shadow_preds = reply.get("predictions") if shadow_status == 200 else None
            record = {"type": "shadow", "t": t, "id": request_id, "key": key, "v": served, "sv": version,
                      "status": status, "sstatus": shadow_status, "p": preds, "sp": shadow_preds,
                      "ms": round(ms, 3), "sms": round(shadow_ms, 3)}
            if shadow_preds is None:
                record["error"] = str(reply.get("error"))[:300]
            self.log.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._count("completed" if shadow_preds is not None else "failed")


def make_handler(state: RouterState):
    class Handler(JsonHandler):

        def _raw(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self):
            if not self._admit():
                return
            if self.path == "/control/split":
                with state.lock:
                    self._reply(200, state.split())
            elif self.path == "/control/shadow" and state.mirror is not None:
                self._reply(200, state.mirror.snapshot())
            elif self.path == "/control/capture":
                capture = state.capture
                self._reply(200, {"model": state.model, "capture": capture.snapshot() if capture else None,
                                  "request_log": {"max_bytes": state.log.max_bytes, "keep": state.log.keep,
                                                  "max_age_s": state.log.max_age_s,
                                                  "rotations": state.log.rotations}})
            elif self.path == "/health":
                self._reply(200, {"model": state.model, "pid": os.getpid(), "backends": state.backends,
                                  "faults": {v: f.to_dict() for v, f in state.faults.items()}})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_PUT(self):
            if not self._admit():
                return
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
                    result = state.set(weights)
                    self._journal(self.path, body, {"revision": result["revision"]})
                    self._reply(200, result)
            elif self.path == "/control/backends":
                try:
                    entries = {str(k): backend_entry(v) for k, v in body.items()}
                    foreign = [f"{v}: {e['url']}" for v, e in entries.items() if not state.started_here(e["url"])]
                except (ValueError, AttributeError) as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                if foreign:  # never send production rows to a server this workspace did not start
                    self._reply(403, {"error": "not a model server this workspace started on 127.0.0.1: "
                                               + ", ".join(foreign)})
                    return
                with state.lock:
                    state.backends.update(entries)
                    self._journal(self.path, body, {"backends": sorted(entries)})
                    self._reply(200, {"backends": state.backends})
            elif self.path == "/control/shadow" and state.mirror is not None:
                try:
                    setting = validate_shadow(body, state.backends)
                    expected = int(body["expected_revision"])
                except (ValueError, KeyError, TypeError) as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                with state.lock:
                    if expected != state.mirror.revision:
                        self._reply(409, {"error": "revision moved", **state.mirror.snapshot()})
                        return
                    result = state.mirror.set(setting)
                    self._journal(self.path, body, {"revision": result["revision"]})
                    self._reply(200, result)
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_POST(self):
            if not self._admit():
                return
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
                self._journal(self.path, body, {"revision": result["revision"]})
                self._reply(200, result)
            elif self.path == "/control/fault":
                version = body.get("version")
                try:
                    if not isinstance(version, str) or version not in state.backends:
                        raise ValueError(f"version {version!r}: not a backend of this router")
                    had = state.faults.get(version) or Fault(0.0, 0.0, 0.0)  # a key left out keeps its value
                    fault = Fault(body.get("error_rate", had.error_rate), body.get("latency_ms", had.latency_ms),
                                  body.get("shift", had.shift))
                except (TypeError, ValueError) as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                state.faults[version] = fault
                self._journal(self.path, body, {"fault": fault.to_dict()})
                self._reply(200, {"version": version, "fault": fault.to_dict(), "at": "router"})
            elif self.path == "/label":
                now = time.time()
                state.write_log({"type": "label", "t": now, "id": str(body.get("id")), "label": body.get("label")})
                if state.capture is not None:
                    state.capture.offer_label(str(body.get("id")), body.get("label"), now)
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def _predict(self, raw: bytes) -> None:
            started = time.perf_counter()
            upstream_ms = 0.0
            try:
                body = json.loads(raw or b"{}")
                key = str(body.get("key") or uuid.uuid4().hex)
                request_id = str(body.get("id") or uuid.uuid4().hex)
                columns = body.get("columns")
            except (json.JSONDecodeError, AttributeError) as exc:
                self._reply(400, {"error": f"bad JSON: {exc}"})
                return
            weights = state.weights  # one read: a split swap is atomic for this request
            version = choose(weights, key)
            backend = state.backends.get(version) if version else None
            fault = state.faults.get(version) if version else None
            if fault is not None and fault.latency_ms:
                time.sleep(fault.latency_ms / 1000.0)
            if backend is None:
                status, reply = 503, {"error": f"no backend for {version}"}
            elif fault is not None and fault.error_rate and state.random.random() < fault.error_rate:
                status, reply = 500, {"error": "injected fault (at the router)"}
            else:
                called = time.perf_counter()
                try:
                    status, reply = call_backend(backend, body.get("rows"), columns)
                    upstream_ms = (time.perf_counter() - called) * 1000.0
                except (OSError, ValueError, http.client.HTTPException) as exc:
                    status, reply = 502, {"error": f"{version} unreachable: {exc}"}
                if not isinstance(reply, dict):
                    status, reply = 502, {"error": f"{version}: answer is not a JSON object"}
            preds = reply.get("predictions") if status == 200 else None
            if preds is not None and fault is not None and fault.shift and backend["task"] != "multiclass":
                shifted = [float(p) + fault.shift for p in preds]
                preds = shifted if backend["task"] == "regression" else [min(1.0, max(0.0, p)) for p in shifted]
                reply["predictions"] = preds
            latency_ms = (time.perf_counter() - started) * 1000.0
            now = time.time()
            state.write_log({"type": "request", "t": now, "id": request_id, "key": key, "v": version,
                             "status": status, "ms": round(latency_ms, 3), "p": preds[0] if preds else None})
            reply.update({"id": request_id, "version": version})
            self._reply(status, reply)
            if state.capture is not None and preds is not None:  # after the answer is out; a put_nowait
                state.capture.offer(request_id, key, version, body.get("rows"), columns or backend.get("columns"),
                                    status, preds, now)
            if backend is not None and state.mirror is not None and state.mirror.setting is not None:  # after the answer is out
                state.mirror.offer(request_id, key, version, body.get("rows"), columns, status, preds,
                                   upstream_ms if status == 200 else latency_ms)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backends.local.serving.router")
    parser.add_argument("--dir", required=True, help="the model's serving folder (split.json, requests.jsonl)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--key-file", required=True, help="the workspace's serving/control.key (the key itself never in argv)")
    parser.add_argument("--shadow-log-max-bytes", type=int, default=SHADOW_LOG_MAX_BYTES,
                        help="rotate shadow.jsonl to shadow.jsonl.1 past this size")
    parser.add_argument("--shadow-log-keep", type=int, default=SHADOW_LOG_KEEP, help="rotated generations kept")
    parser.add_argument("--request-log-max-bytes", type=int, default=REQUEST_LOG_MAX_BYTES,
                        help="rotate requests.jsonl to requests.jsonl.1 past this size")
    parser.add_argument("--request-log-keep", type=int, default=REQUEST_LOG_KEEP, help="rotated generations kept")
    parser.add_argument("--request-log-max-age-s", type=float, default=0.0, help="rotate past this age (0: never)")
    parser.add_argument("--capture-sample", type=float, default=None,
                        help="[monitor] sample: the fraction of requests whose features are captured")
    parser.add_argument("--capture-max-bytes", type=int, default=None, help="a capture segment closes past this size")
    parser.add_argument("--capture-max-age-s", type=float, default=None, help="… or past this age")
    parser.add_argument("--capture-keep-bytes", type=int, default=None, help="all capture segments together")
    parser.add_argument("--capture-retain-s", type=float, default=None, help="a segment older than this is deleted")
    args = parser.parse_args(argv)

    state = RouterState(Path(args.dir), args.model)
    if (args.request_log_max_bytes, args.request_log_keep, args.request_log_max_age_s) != \
            (REQUEST_LOG_MAX_BYTES, REQUEST_LOG_KEEP, 0.0):
        state.log.fh.close()
        state.log = RotatingLog(Path(args.dir) / "requests.jsonl", args.request_log_max_bytes, args.request_log_keep,
                                args.request_log_max_age_s)
    if args.capture_sample is not None:
        from backends.local.serving.capture import FeatureCapture

        limits = {name: value for name, value in (
            ("max_bytes", args.capture_max_bytes), ("max_age_s", args.capture_max_age_s),
            ("keep_bytes", args.capture_keep_bytes), ("retain_s", args.capture_retain_s)) if value is not None}
        state.capture = FeatureCapture(Path(args.dir) / "capture", sample=args.capture_sample, **limits)
    state.mirror = ShadowMirror(state, log_max_bytes=args.shadow_log_max_bytes, log_keep=args.shadow_log_keep)
    handler = make_handler(state)
    handler.control_key = read_key(args.key_file)
    handler.journal_path = str(Path(args.dir) / "control.jsonl")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
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
