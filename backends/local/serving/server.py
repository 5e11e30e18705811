"""A model server for one registered version: `python -m backends.local.serving.server ...`.

Loads the artifact through its model format (`--format NAME --format-class module:Class`, the
class its starter resolved: a backend does not look formats up in console/) after checking its
sha256, answers POST /predict {"rows": [[...]], "columns": [...]?} with {"version",
"predictions"} on 127.0.0.1 (rows in the model's feature order when columns are left out), and
takes faults for rehearsals on POST /control/fault {"error_rate", "latency_ms", "shift"} (a key left
out keeps its value, so drills add to each other; all 0 =
healthy again; the workspace's control key required, see jsonhttp.JsonHandler._admit). Writes {"pid", "port"} to --ready-file once it listens, so its starter needs no
port guessing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import random
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from backends.base import BackendError
from backends.capabilities import PredictsTask
from backends.local.artifacts import sha256_file
from backends.local.serving.controlkey import read_key
from backends.local.serving.jsonhttp import JsonHandler


def sha256_of(path: str) -> str:
    return sha256_file(path)[0]


class Fault:
    """The injected fault of this server; read by every request, set by /control/fault."""

    def __init__(self) -> None:
        self.error_rate = 0.0
        self.latency_ms = 0.0
        self.shift = 0.0
        self.random = random.Random()

    def to_dict(self) -> dict[str, float]:
        return {"error_rate": self.error_rate, "latency_ms": self.latency_ms, "shift": self.shift}


def load_format(target: str):
    """An instance of the ModelFormat class at "module:Class"."""
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj()


def predictor(loaded, task: str):
    """predict(rows, columns) -> list of floats: columns default to the model's features.

    A regression or multi-class model that answers in its task's shape (PredictsTask) is
    asked exactly as the gates ask it, on a DataFrame of the rows as sent (text, booleans,
    nulls kept): a value per row, or a class-probability vector per row (`predict.classes`
    names its columns). Served = gated, by construction."""
    import numpy as np  # numpy: ~0.08 s

    task = task or (getattr(loaded, "task", None) if isinstance(loaded, PredictsTask) else None) or "binary"
    if task in ("regression", "multiclass") and isinstance(loaded, PredictsTask):
        return _task_predictor(loaded, task)

    def predict(rows, columns):
        matrix = np.asarray(rows, dtype=float)
        if matrix.ndim != 2:
            raise ValueError("rows: a list of rows of numbers")
        if columns is None:
            columns = list(loaded.features) if loaded.features else [f"x{i}" for i in range(matrix.shape[1])]
        if not isinstance(columns, list) or len(columns) != matrix.shape[1]:
            raise ValueError(f"columns: {matrix.shape[1]} names expected, one per value of a row")
        values = [float(p) for p in np.asarray(loaded.predict(matrix, [str(c) for c in columns]), dtype=float).ravel()]
        if len(values) != matrix.shape[0] or not all(math.isfinite(p) for p in values):
            raise ValueError(f"the model answered {len(values)} values (finite expected) for {matrix.shape[0]} rows")
        return values

    predict.task = task
    predict.features = list(loaded.features) if loaded.features else None
    return predict


def _task_predictor(loaded, task: str):
    import numpy as np
    import pandas as pd  # ~0.3 s, loaded with the model's library already

    def predict(rows, columns):
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ValueError("rows: a list of rows")
        if columns is None:
            columns = list(loaded.features) if loaded.features else None
        width = len(rows[0]) if rows else len(columns or [])
        if columns is None or not isinstance(columns, list) or any(len(r) != len(columns) for r in rows):
            raise ValueError(f"columns: {width} names expected, one per value of a row")
        frame = pd.DataFrame(rows, columns=[str(c) for c in columns])
        if loaded.features:
            missing = [f for f in loaded.features if f not in frame.columns]
            if missing:
                raise ValueError(f"columns: the model needs {missing[0]!r}")
            frame = frame[list(loaded.features)]
        for name in frame.columns:  # JSON null: NaN, as the gates read a CSV's blank (a number or a text column)
            if frame[name].dtype != object:
                continue
            if all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in frame[name]):
                frame[name] = frame[name].astype(float)
            else:
                frame[name] = [np.nan if v is None else v for v in frame[name]]
        out = np.asarray(loaded.predict_task(frame))
        if out.shape[0] != len(rows):
            raise ValueError(f"the model answered {out.shape[0]} predictions for {len(rows)} rows")
        if task == "regression":
            values = [float(v) for v in out.reshape(-1)]
            if not all(math.isfinite(v) for v in values):
                raise ValueError("the model answered a non-finite value")
            return values
        predict.classes = list(loaded.classes) if loaded.classes is not None else None
        if out.ndim == 2:
            return [[float(p) for p in row] for row in out]
        return [v.item() if hasattr(v, "item") else v for v in out]

    predict.task = task
    predict.features = list(loaded.features) if loaded.features else None
    predict.classes = list(loaded.classes) if getattr(loaded, "classes", None) is not None else None
    return predict


def make_handler(version: str, predict, fault: Fault, lock: threading.Lock):
    class Handler(JsonHandler):

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self):
            if not self._admit():
                return
            if self.path == "/health":
                self._reply(200, {"version": version, "fault": fault.to_dict(), "pid": os.getpid(),
                                  "features": predict.features})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_POST(self):
            if not self._admit():
                return
            try:
                body = self._body()
            except (ValueError, json.JSONDecodeError) as exc:
                self._reply(400, {"error": f"bad JSON: {exc}"})
                return
            if self.path == "/control/fault":
                try:
                    # a value left out keeps the fault it had: drills add to each other
                    error_rate = min(1.0, max(0.0, float(body.get("error_rate", fault.error_rate))))
                    latency_ms = max(0.0, float(body.get("latency_ms", fault.latency_ms)))
                    shift = float(body.get("shift", fault.shift))
                    fault.error_rate, fault.latency_ms, fault.shift = error_rate, latency_ms, shift
                except (TypeError, ValueError) as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                self._journal(self.path, body, {"version": version, "fault": fault.to_dict()})
                self._reply(200, {"version": version, "fault": fault.to_dict()})
                return
            if self.path != "/predict":
                self._reply(404, {"error": f"no route {self.path}"})
                return
            if fault.latency_ms:
                time.sleep(fault.latency_ms / 1000.0)
            if fault.error_rate and fault.random.random() < fault.error_rate:
                self._reply(500, {"error": "injected fault", "version": version})
                return
            try:
                rows = body["rows"]
                with lock:  # torch on 2 shared cores: one forward pass at a time is fastest
                    probs = predict(rows, body.get("columns"))
            except Exception as exc:  # noqa: BLE001  (a bad row is the caller's problem: 400)
                self._reply(400, {"error": f"{type(exc).__name__}: {exc}", "version": version})
                return
            if predict.task == "multiclass":  # probability vectors or labels: a drill's shift does not apply
                answer = {"version": version, "predictions": probs}
                if predict.classes is not None:
                    answer["classes"] = predict.classes
                self._reply(200, answer)
                return
            preds = [float(p) + fault.shift for p in probs]
            if predict.task != "regression":
                preds = [min(1.0, max(0.0, p)) for p in preds]
            self._reply(200, {"version": version, "predictions": preds})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backends.local.serving.server")
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--format", required=True, help="the format's name (for messages)")
    parser.add_argument("--format-class", required=True, help="module:Class of its ModelFormat")
    parser.add_argument("--options", default="{}", help="the model's [models.X] table as JSON")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--key-file", required=True, help="the workspace's serving/control.key (the key itself never in argv)")
    args = parser.parse_args(argv)

    try:
        control_key = read_key(args.key_file)
    except BackendError as exc:
        print(str(exc), file=sys.stderr)
        return 2

    if os.path.isfile(args.artifact):  # a folder (an MLflow model) was verified by fetch_artifact
        actual = sha256_of(args.artifact)
        if actual != args.sha256:
            print(f"{args.artifact}: sha256 {actual} does not match the registry's {args.sha256}", file=sys.stderr)
            return 2
    options = json.loads(args.options)
    try:
        fmt = load_format(args.format_class)
        loaded = fmt.load(args.artifact, options)
    except Exception as exc:  # noqa: BLE001  (the starter reports this last line)
        print(f"{args.artifact}: format {args.format} could not load it: {exc}", file=sys.stderr)
        return 2
    if "torch" in sys.modules:  # torch on 2 shared cores: one thread per server
        sys.modules["torch"].set_num_threads(1)
    # the task as declared, else as the model says (an estimator knows it is a regressor)
    handler = make_handler(args.version, predictor(loaded, str(options.get("task") or "")), Fault(),
                           threading.Lock())
    handler.control_key = control_key
    handler.journal_path = os.path.join(os.path.dirname(os.path.abspath(args.ready_file)), "control.jsonl")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"pid": os.getpid(), "port": server.server_address[1], "version": args.version}, fh)
    os.replace(tmp, args.ready_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
