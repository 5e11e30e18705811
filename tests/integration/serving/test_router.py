"""The router in front of servers that are not ours: MLflow's /invocations protocol, faults
applied at the router, and 503s / upstream failures in the request log (counted as errors)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from backends.local.serving.router import predictions_from_mlflow
from tests.support.serving import PYTHON, http_json, wait_for

MODEL = "plain"


@pytest.mark.parametrize("reply,expected", [
    ({"predictions": [0.25, 1, 0]}, [0.25, 1.0, 0.0]),  # a regressor or a label predictor
    ({"predictions": [[0.9, 0.1], [0.2, 0.8]]}, [0.1, 0.8]),  # predict_proba: P(1)
    ({"predictions": [[0.7], [0.3]]}, [0.7, 0.3]),  # one column
    ({"predictions": [{"0": 0.6, "1": 0.4}, {"0": 0.1, "1": 0.9}]}, [0.4, 0.9]),  # a DataFrame's rows
    ({"predictions": [{"score": 0.3, "label": 0}]}, [0.3]),
    ({"predictions": {"p": {"0": 0.2, "1": 0.5}}}, [0.2, 0.5]),  # a DataFrame in columns orient
    ([0.5, 0.75], [0.5, 0.75]),  # servers before MLflow 2 answer a bare list
])
def test_mlflow_answers_become_one_number_per_row(reply, expected):
    assert predictions_from_mlflow(reply) == expected


@pytest.mark.parametrize("reply", [{"error": "x"}, {"predictions": [[0.1, 0.2, 0.7]]}, {"predictions": ["yes"]}])
def test_unreadable_mlflow_answers_are_refused(reply):
    with pytest.raises(ValueError):
        predictions_from_mlflow(reply)


def start_router(spawn, folder, servers: dict[str, int]):
    """The router of a workspace whose serving folder records these servers (version -> port):
    the only backends it accepts. Control calls carry the workspace's key (AUTH)."""
    from backends.local.serving.controlkey import auth_headers, ensure_key

    root = folder.parent.parent
    (folder / "processes.json").write_text(json.dumps(
        {"router": None, "servers": {v: {"pid": 0, "port": p} for v, p in servers.items()}}))
    key_file = ensure_key(root)
    AUTH.clear()
    AUTH.update(auth_headers(root))
    ready = folder / "router.ready"
    proc = spawn([PYTHON, "-m", "backends.local.serving.router", "--dir", str(folder), "--model", MODEL,
                  "--ready-file", str(ready), "--key-file", str(key_file)])
    wait_for(ready.exists, "router ready", proc=proc)
    return json.loads(ready.read_text())["port"]


AUTH: dict[str, str] = {}


def health(ws, version):
    from backends.local.metrics import LocalMetrics

    return LocalMetrics(ws).health(MODEL, version, 0, time.time() + 60)


@pytest.mark.integration
def test_a_503_is_logged_and_counted_as_an_error(tmp_path, spawn):
    folder = tmp_path / "serving" / MODEL
    folder.mkdir(parents=True)
    port = start_router(spawn, folder, {"7": 9})
    assert http_json(port, "POST", "/control/rollback", {"stable": "7"}, headers=AUTH)[0] == 200  # 7 has no server
    status, body = http_json(port, "POST", "/predict", {"rows": [[1.0, 2.0]], "key": "u1"})
    assert (status, body["error"]) == (503, "no backend for 7")
    window = health(tmp_path, "7")
    assert (window.requests, window.errors) == (1, 1)
    # a backend whose server is gone: 502, logged too
    assert http_json(port, "PUT", "/control/backends", {"7": "http://127.0.0.1:9"}, headers=AUTH)[0] == 200
    assert http_json(port, "POST", "/predict", {"rows": [[1.0, 2.0]], "key": "u1"})[0] == 502
    window = health(tmp_path, "7")
    assert (window.requests, window.errors) == (2, 2)


@pytest.mark.integration
@pytest.mark.slow
def test_router_speaks_mlflow_invocations_and_applies_faults(tmp_path, spawn, cancer):
    """An sklearn pipeline saved by plain MLflow, served by `mlflow models serve` itself."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tests.support.servers import free_ports

    names, X, y = cancer
    frame = pd.DataFrame(X, columns=names)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame, y)
    model_dir = tmp_path / "model"
    mlflow.sklearn.save_model(pipe, str(model_dir), signature=infer_signature(frame, pipe.predict_proba(frame)),
                              pyfunc_predict_fn="predict_proba")
    (mlflow_port,) = free_ports(1)
    server = spawn([PYTHON, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                    "-h", "127.0.0.1", "-p", str(mlflow_port)], cwd=tmp_path, log=tmp_path / "mlflow.log")

    def ping():
        try:
            return http_json(mlflow_port, "GET", "/ping", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(ping, "MLflow scoring server", proc=server)
    folder = tmp_path / "serving" / MODEL
    folder.mkdir(parents=True)
    port = start_router(spawn, folder, {"1": mlflow_port})
    backend = {"url": f"http://127.0.0.1:{mlflow_port}", "protocol": "mlflow-invocations"}
    assert http_json(port, "PUT", "/control/backends", {"1": backend}, headers=AUTH)[0] == 200
    assert http_json(port, "POST", "/control/rollback", {"stable": "1"}, headers=AUTH)[0] == 200

    rows = X[:20]
    # columns in another order than the signature's: MLflow picks them by name
    order = list(reversed(range(len(names))))
    status, body = http_json(port, "POST", "/predict", {"rows": rows[:, order].tolist(),
                                                         "columns": [names[i] for i in order]})
    assert status == 200, body
    expected = pipe.predict_proba(pd.DataFrame(rows, columns=names))[:, 1]
    assert body["version"] == "1"
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6, atol=1e-9)

    # a fault at the router: every request fails, and the log counts them
    status, body = http_json(port, "POST", "/control/fault", {"version": "1", "error_rate": 1.0}, headers=AUTH)
    assert (status, body["at"]) == (200, "router")
    codes = [http_json(port, "POST", "/predict", {"rows": rows[:1].tolist(), "columns": names, "key": f"k{i}"})[0]
             for i in range(5)]
    assert codes == [500] * 5
    # shifted predictions, clipped to [0, 1]; faults add to each other (#23), so the error rate is
    # turned off by name, and the shift kept from this call on
    http_json(port, "POST", "/control/fault", {"version": "1", "error_rate": 0.0, "shift": 0.3}, headers=AUTH)
    status, body = http_json(port, "POST", "/predict", {"rows": rows[:5].tolist(), "columns": names})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], np.clip(expected[:5] + 0.3, 0, 1), rtol=1e-6, atol=1e-9)
    # a batch MLflow refuses (a missing column) is its 4xx, passed on, not a server error
    status, body = http_json(port, "POST", "/predict", {"rows": rows[:1, :3].tolist(), "columns": names[:3]})
    assert 400 <= status < 500 and body["error"]
    window = health(tmp_path, "1")
    assert (window.requests, window.errors) == (8, 5)
