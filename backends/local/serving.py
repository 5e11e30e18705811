"""A model server for one registered version: `python -m backends.local.serving ...`.

Loads the torch artifact after checking its sha256, answers POST /predict {"rows": [[...]]}
with {"version", "predictions"} on 127.0.0.1, and takes faults for rehearsals on
POST /control/fault {"error_rate", "latency_ms", "shift"} (all 0 = healthy again).
Writes {"pid", "port"} to --ready-file once it listens, so its starter needs no port guessing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from backends.local.artifacts import sha256_file
from backends.local.jsonhttp import JsonHandler


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


def make_handler(version: str, model, predict_proba, fault: Fault, lock: threading.Lock):
    class Handler(JsonHandler):

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self):
            if self.path == "/health":
                self._reply(200, {"version": version, "fault": fault.to_dict(), "pid": os.getpid()})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_POST(self):
            try:
                body = self._body()
            except (ValueError, json.JSONDecodeError) as exc:
                self._reply(400, {"error": f"bad JSON: {exc}"})
                return
            if self.path == "/control/fault":
                try:
                    fault.error_rate = min(1.0, max(0.0, float(body.get("error_rate", 0.0))))
                    fault.latency_ms = max(0.0, float(body.get("latency_ms", 0.0)))
                    fault.shift = float(body.get("shift", 0.0))
                except (TypeError, ValueError) as exc:
                    self._reply(400, {"error": str(exc)})
                    return
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
                    probs = predict_proba(model, rows)
            except Exception as exc:  # noqa: BLE001  (a bad row is the caller's problem: 400)
                self._reply(400, {"error": f"{type(exc).__name__}: {exc}", "version": version})
                return
            preds = [min(1.0, max(0.0, float(p) + fault.shift)) for p in probs]
            self._reply(200, {"version": version, "predictions": preds})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backends.local.serving")
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)

    actual = sha256_of(args.artifact)
    if actual != args.sha256:
        print(f"{args.artifact}: sha256 {actual} does not match the registry's {args.sha256}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    from backends.local import model as torch_model

    model = torch_model.load(args.artifact)
    server = ThreadingHTTPServer(("127.0.0.1", args.port),
                                 make_handler(args.version, model, torch_model.predict_proba, Fault(), threading.Lock()))
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
