"""Serving models mrc did not make: per-request latency through mrc's router, beside the same
request sent straight to the server, and the start-up time of each kind of server.

    .venv/bin/python tests/bench/bench_serving.py [--requests 300]

Builds with plain libraries an sklearn pipeline saved by MLflow (served by `mlflow models serve`)
and the same pipeline exported by skl2onnx (served by mrc's model server), starts the servers
and a router on 127.0.0.1, sends one-row requests one at a time, prints p50/p99 and stops
everything. The router's extra cost is its JSON, the sha-bucketing, the log line and (for
MLflow) the /invocations translation.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

ENV = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, cwd) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=str(cwd), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def wait(condition, timeout=300.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            if condition():
                return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("not ready")


def post(conn, path, body, headers=None) -> dict:
    conn.request("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    assert resp.status == 200, data[:300]
    return json.loads(data)


def timed(port, path, bodies) -> tuple[float, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for body in bodies:
        t0 = time.perf_counter()
        post(conn, path, body)
        times.append((time.perf_counter() - t0) * 1000)
    conn.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    raw = load_breast_cancer()
    names = [n.replace(" ", "_") for n in raw.feature_names]
    frame = pd.DataFrame(raw.data, columns=names)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame.to_numpy(np.float32), raw.target)
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mlflow.sklearn.save_model(pipe, str(tmp / "mlflow-model"), pyfunc_predict_fn="predict_proba",
                                  signature=infer_signature(frame, pipe.predict_proba(frame.to_numpy(np.float32))))
        (tmp / "model.onnx").write_bytes(to_onnx(pipe, raw.data[:1].astype(np.float32),
                                                 options={"zipmap": False}).SerializeToString())
        try:
            mlflow_port = free_port()
            procs.append(start([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(tmp / "mlflow-model"),
                                "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port)], tmp))

            def ping():
                c = http.client.HTTPConnection("127.0.0.1", mlflow_port, timeout=2)
                c.request("GET", "/ping")
                return c.getresponse().status == 200

            mlflow_start = wait(ping)
            ours_ready = tmp / "ours.ready"
            from backends.support.files import sha256_file

            from backends.local.serving.controlkey import auth_headers, ensure_key

            key_file = ensure_key(tmp)
            auth = auth_headers(tmp)
            t0 = time.perf_counter()
            procs.append(start([sys.executable, "-m", "backends.local.serving.server", "--key-file", str(key_file), "--artifact", str(tmp / "model.onnx"),
                                "--sha256", sha256_file(str(tmp / "model.onnx"))[0], "--version", "2",
                                "--format", "onnx", "--format-class", "backends.formats.onnx:OnnxFormat",
                                "--ready-file", str(ours_ready)], REPO))
            ours_start = wait(ours_ready.exists) + 0 * t0
            ours_port = json.loads(ours_ready.read_text())["port"]
            # the router takes only backends its folder records as started here
            (tmp / "serving" / "processes.json").write_text(json.dumps({"router": None, "servers": {
                "1": {"pid": procs[0].pid, "port": mlflow_port}, "2": {"pid": procs[1].pid, "port": ours_port}}}))
            router_ready = tmp / "router.ready"
            procs.append(start([sys.executable, "-m", "backends.local.serving.router", "--dir", str(tmp / "serving"),
                                "--model", "bench", "--ready-file", str(router_ready), "--key-file", str(key_file)], REPO))
            wait(router_ready.exists)
            router = json.loads(router_ready.read_text())["port"]
            conn = http.client.HTTPConnection("127.0.0.1", router, timeout=30)
            conn.request("PUT", "/control/backends", json.dumps({
                "1": {"url": f"http://127.0.0.1:{mlflow_port}", "protocol": "mlflow-invocations"},
                "2": f"http://127.0.0.1:{ours_port}"}).encode(), {"Content-Type": "application/json", **auth})
            conn.getresponse().read()
            rows = raw.data[np.random.default_rng(0).integers(0, len(raw.data), args.requests)].tolist()
            one = [{"rows": [r], "columns": names} for r in rows]
            results = {}
            results["MLflow scoring server, direct /invocations"] = timed(
                mlflow_port, "/invocations", [{"dataframe_split": {"columns": names, "data": [r]}} for r in rows])
            post(conn, "/control/rollback", {"stable": "1"}, auth)
            results["MLflow scoring server, through mrc's router"] = timed(router, "/predict", one)
            results["mrc model server (ONNX), direct /predict"] = timed(ours_port, "/predict", one)
            post(conn, "/control/rollback", {"stable": "2"}, auth)
            results["mrc model server (ONNX), through mrc's router"] = timed(router, "/predict", one)
        finally:
            for proc in procs:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=30)
    print(f"start-up to ready: MLflow scoring server {mlflow_start:.1f} s · mrc model server (ONNX) {ours_start:.1f} s")
    for what, (p50, p99) in results.items():
        print(f"{what:<48} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   ({args.requests} one-row requests)")
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
