"""An sklearn classifier logged to MLflow is served with the score the gates judge it on.

One registered model, four versions logged with the plain MLflow client into the real MLflow
server (no mrc helpers):
  1 (a) a pipeline, plain `mlflow.sklearn.log_model` (pyfunc answers predict()'s labels);
  2 (b) the same kind, `pyfunc_predict_fn="predict_proba"` (pyfunc answers [[P0, P1], …]);
  3 (c) a PythonModel from code answering P(y=1) (tests/support/pyfunc_scorer.py);
  4 (d) a LinearSVC: no predict_proba at all, so gates and servers both score its labels.
Each version, alone behind mrc's real router, answers the rows with what the gate path
(ModelFormat.load(...).predict on the registry's artifact) scores them with, and (a)-(c) with
the plain pipeline's own predict_proba[:, 1].
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import REPO, run_mrc
from tests.support.remote import remote_env, unique
from tests.support.serving import add_model_table, http_json, served_pids, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCORER = REPO / "tests" / "support" / "pyfunc_scorer.py"


def mrc(*args, root: Path):
    return run_mrc(*args, "--workspace", str(root), env=remote_env(), timeout=600)


def log_versions(tracking_uri: str, name: str, frame, y, work: Path) -> dict[str, object]:
    """The four versions, registered in this order (1..4); the fitted estimators by version."""
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from importlib.metadata import version
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    # named up front: MLflow otherwise infers them in a subprocess per model (slow on 2 cores)
    reqs = [f"scikit-learn=={version('scikit-learn')}", f"mlflow=={mlflow.__version__}"]
    plain = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(frame, y)
    proba = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=1000)).fit(frame, y)
    wrapped = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000)).fit(frame, y)
    svc = make_pipeline(StandardScaler(), LinearSVC(C=0.05, max_iter=5000)).fit(frame, y)
    pickle.dump(wrapped, open(work / "pipeline.pkl", "wb"))
    signature = infer_signature(frame, plain.predict(frame))
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment(unique("sklserve"))
        with mlflow.start_run():
            mlflow.sklearn.log_model(plain, name="plain", registered_model_name=name, signature=signature,
                                     pip_requirements=reqs)
            mlflow.sklearn.log_model(proba, name="proba", registered_model_name=name, pip_requirements=reqs,
                                     signature=infer_signature(frame, proba.predict_proba(frame)),
                                     pyfunc_predict_fn="predict_proba")
            mlflow.pyfunc.log_model(name="wrapped", python_model=str(SCORER), registered_model_name=name,
                                    artifacts={"pipeline": str(work / "pipeline.pkl")}, pip_requirements=reqs,
                                    signature=infer_signature(frame, wrapped.predict_proba(frame)[:, 1]))
            mlflow.sklearn.log_model(svc, name="svc", registered_model_name=name, signature=signature,
                                     pip_requirements=reqs)
    finally:
        mlflow.set_tracking_uri("")
    return {"1": plain, "2": proba, "3": wrapped, "4": svc}


def gate_scores(root: Path, model: str, version: str, rows, names, dest: Path) -> np.ndarray:
    """What the gates score these rows with: the registry's artifact through its model format."""
    from console.plugins import resolve_format
    from console.workspace import Workspace

    ws = Workspace.open(root)
    options = ws.model_config(model)
    registry = ws.registry()
    mv = registry.get_version(model, version)
    dest.mkdir(parents=True)
    path = registry.fetch_artifact(model, version, str(dest))
    fmt = resolve_format(mv.artifact.format, path, options, model=model)
    return np.asarray(fmt.load(path, options).predict(rows, list(names)), dtype=float)


def test_every_sklearn_flavour_is_served_with_its_gate_score(mlflow_server, mlflow_workspace, cancer, tmp_path,
                                                             cleanup_serving):
    import pandas as pd

    root, _ = mlflow_workspace
    cleanup_serving(root)
    names, X, y = cancer
    frame = pd.DataFrame(X, columns=names)
    name = unique("sk-scores")
    fitted = log_versions(mlflow_server.url, name, frame, y, tmp_path)
    add_model_table(root, name, label="label")

    result = mrc("serve-models", name, "--versions", "1,2,3,4", "--json", root=root)
    assert result.returncode == 0, result.stderr
    served = result.json()
    print("served formats:", served["formats"])
    # labels from MLflow's pyfunc (1, 4): mrc's own server; already P(y=1) (2, 3): MLflow's
    assert {v: f["protocol"] for v, f in served["formats"].items()} == {
        "1": "mrc", "2": "mlflow-invocations", "3": "mlflow-invocations", "4": "mrc"}
    port = int(served["router"].rsplit(":", 1)[1])

    from console.workspace import Workspace

    traffic = Workspace.open(root).traffic()
    rows = X[180:240]  # both classes, some near the boundary
    truth = {v: fitted[v].predict_proba(pd.DataFrame(rows, columns=names))[:, 1] for v in ("1", "2", "3")}
    truth["4"] = fitted["4"].predict(pd.DataFrame(rows, columns=names)).astype(float)  # labels: no proba
    answers = {}
    for version in ("1", "2", "3", "4"):
        split = traffic.get_split(name)
        traffic.set_split(name, {version: 100}, expected_revision=split.revision)
        status, body = http_json(port, "POST", "/predict", {"rows": rows.tolist(), "columns": names}, timeout=120)
        assert status == 200, body
        assert body["version"] == version
        served_scores = np.asarray(body["predictions"], dtype=float)
        gate = gate_scores(root, name, version, rows, names, tmp_path / f"gate-{version}")
        answers[version] = (served_scores, gate)
        server_port = int(served["servers"][version].rsplit(":", 1)[1])
        if served["formats"][version]["protocol"] == "mlflow-invocations":  # what MLflow itself answers
            raw = http_json(server_port, "POST", "/invocations",
                            {"dataframe_split": {"columns": names, "data": rows[:2].tolist()}}, timeout=120)
        else:
            raw = http_json(server_port, "POST", "/predict", {"rows": rows[:2].tolist(), "columns": names},
                            timeout=120)
        print(f"version {version} server answers {raw}")
        print(f"version {version} ({served['formats'][version]['protocol']}): served {served_scores[:6].round(4)} "
              f"gate {gate[:6].round(4)} max|diff| {np.max(np.abs(served_scores - gate)):.3g}")
    for version, (served_scores, gate) in answers.items():
        np.testing.assert_allclose(served_scores, gate, rtol=1e-6, atol=1e-9, err_msg=f"version {version}")
        np.testing.assert_allclose(gate, truth[version], rtol=1e-6, atol=1e-9, err_msg=f"version {version}")
    # (a)-(c) are probabilities, not labels; (d) is nothing but labels
    for version in ("1", "2", "3"):
        assert len(set(np.round(truth[version], 6)) - {0.0, 1.0}) > len(rows) // 2
    assert set(truth["4"]) == {0.0, 1.0}

    pids = served_pids(root)
    result = mrc("serve-models", name, "--stop", root=root)
    assert result.returncode == 0, result.stderr
    assert not [p for p in pids if running(p)]
