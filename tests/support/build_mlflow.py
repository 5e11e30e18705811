"""Fill an MLflow registry the way a team does, with the plain MLflow 3 API only (no mrc code).

    python tests/support/build_mlflow.py TRACKING_URI MODEL_NAME DATA_DIR  -> JSON on stdout

Run as its own process (by tests/support/teams.py and the gate benchmark) so that MLflow's
fluent state (tracking URI, active run) never leaks into the test process. Versions:
  1 sklearn pipeline, mlflow.sklearn.log_model (an MLflow 3 logged model, source models:/m-…)
  2 a PythonModel from code wrapping a second pipeline (pyfunc, logged model)
  3 a torch MLP, mlflow.pytorch.log_model (logged model)
  4 a pipeline trained on drifted data with shuffled labels (bad), saved as files, logged as run
    artifacts and registered the classic way: create_model_version(source="runs:/<id>/model")
Aliases: champion -> 1 (production), challenger -> 2 (the good candidate).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import teamdata  # noqa: E402


def commit_of(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def size_of(path: Path) -> int:
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def lap(what: str, started: list[float]) -> None:
    now = time.monotonic()
    print(f"build_mlflow: {what} {now - started[0]:.1f} s", file=sys.stderr)
    started[0] = now


def main() -> int:
    tracking_uri, name, data_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    os.chdir(tempfile.mkdtemp(prefix="mrc-teams-build-"))  # nothing lands in the caller's folder
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # stdout carries the JSON
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    import mlflow
    import numpy as np
    import pandas as pd
    import torch
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    mlflow.set_experiment(f"{name}-training")

    paths = {k: data_dir / v for k, v in (("train", "train.csv"), ("train_drifted", "train_drifted.csv"),
                                          ("test", "test.csv"))}
    train, drifted, test = (pd.read_csv(paths[k]) for k in ("train", "train_drifted", "test"))
    cols = teamdata.features(train)
    x_test, y_test = test[cols], test[teamdata.LABEL].to_numpy()
    out: dict = {"model": name, "versions": {}, "commits": {}, "runs": {}, "metrics": {}, "sources": {},
                 "features": cols, "data": {k: str(v) for k, v in paths.items()}}

    def log_common(kind: str, train_df, train_path: Path, params: dict, metrics: dict) -> str:
        commit = commit_of(f"{name}-{kind}")
        mlflow.set_tags({"mlflow.source.git.commit": commit, "mlflow.source.git.repoURL":
                         "git@example.invalid:ml/breast-cancer.git"})
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        training = mlflow.data.from_pandas(train_df, source=str(train_path), targets=teamdata.LABEL,
                                           name=train_path.stem)
        mlflow.log_input(training, context="training")
        testing = mlflow.data.from_pandas(test, source=str(paths["test"]), targets=teamdata.LABEL, name="test")
        mlflow.log_input(testing, context="testing")
        out["commits"][kind] = commit
        out["metrics"][kind] = metrics
        return commit

    def sk_metrics(pipe, folder: Path) -> dict:
        scores = pipe.predict_proba(x_test)[:, 1]
        one = x_test.iloc[:1]
        return teamdata.recorded_metrics(y_test, scores, lambda: pipe.predict_proba(one), size_of(folder))

    def registered(kind: str, info) -> None:
        out["versions"][kind] = str(info.registered_model_version)
        out["sources"][kind] = client.get_model_version(name, str(info.registered_model_version)).source

    work = Path(tempfile.mkdtemp(prefix="mrc-teams-models-"))
    # Requirements named up front: MLflow otherwise infers them by loading each model in a
    # subprocess, which takes most of a minute per model on a busy 2-core machine.
    from importlib.metadata import version

    sk_reqs = [f"scikit-learn=={version('scikit-learn')}", f"mlflow=={mlflow.__version__}"]
    torch_reqs = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]
    started = [time.monotonic()]

    # 1: sklearn flavour, an MLflow 3 logged model, registered on logging
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(train[cols], train[teamdata.LABEL])
    signature = infer_signature(x_test, pipe.predict_proba(x_test)[:, 1])
    with mlflow.start_run(run_name="sklearn-lr") as run:
        pickle.dump(pipe, open(work / "sk.pkl", "wb"))
        log_common("sklearn", train, paths["train"], {"C": 1.0, "model": "logreg"}, sk_metrics(pipe, work / "sk.pkl"))
        info = mlflow.sklearn.log_model(pipe, name="model", signature=signature, registered_model_name=name,
                                        pip_requirements=sk_reqs)
        out["runs"]["sklearn"] = run.info.run_id
    registered("sklearn", info)
    lap("sklearn", started)

    # 2: a PythonModel from code around another pipeline (pyfunc flavour), a logged model
    pipe2 = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000)).fit(train[cols], train[teamdata.LABEL])
    pickle.dump(pipe2, open(work / "pipeline.pkl", "wb"))
    with mlflow.start_run(run_name="pyfunc-lr") as run:
        log_common("pyfunc", train, paths["train"], {"C": 0.5, "model": "logreg-pyfunc"},
                   sk_metrics(pipe2, work / "pipeline.pkl"))
        info = mlflow.pyfunc.log_model(name="model", python_model=str(HERE / "pyfunc_scorer.py"),
                                       artifacts={"pipeline": str(work / "pipeline.pkl")}, signature=signature,
                                       registered_model_name=name, pip_requirements=sk_reqs)
        out["runs"]["pyfunc"] = run.info.run_id
    registered("pyfunc", info)
    lap("pyfunc", started)

    # 3: a torch MLP, pytorch flavour, a logged model
    net = teamdata.torch_mlp(train[cols].to_numpy(), train[teamdata.LABEL].to_numpy(), seed=3)
    with torch.no_grad():
        scores = net(torch.from_numpy(x_test.to_numpy(np.float32))).numpy().ravel()
    torch.save(net.state_dict(), work / "net.pt")
    one = torch.from_numpy(x_test.iloc[:1].to_numpy(np.float32))
    with mlflow.start_run(run_name="torch-mlp") as run:
        metrics = teamdata.recorded_metrics(y_test, scores, lambda: net(one), size_of(work / "net.pt"))
        log_common("pytorch", train, paths["train"], {"hidden": 16, "epochs": 300, "model": "mlp"}, metrics)
        # MLflow 3's default pytorch serialisation (pt2, torch.export) needs an example tensor;
        # its signature is then a float32 tensor [-1, 30], not named columns.
        info = mlflow.pytorch.log_model(net, name="model", input_example=x_test.iloc[:5].to_numpy(np.float32),
                                        registered_model_name=name, pip_requirements=torch_reqs)
        out["runs"]["pytorch"] = run.info.run_id
    registered("pytorch", info)
    lap("pytorch", started)

    # 4: bad (drifted data, shuffled labels), classic run artifacts registered by runs:/ URI
    bad = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(drifted[cols], drifted[teamdata.LABEL])
    folder = work / "bad-model"
    mlflow.sklearn.save_model(bad, str(folder), signature=signature, pip_requirements=sk_reqs)
    with mlflow.start_run(run_name="sklearn-lr-drifted") as run:
        log_common("classic", drifted, paths["train_drifted"], {"C": 1.0, "model": "logreg"}, sk_metrics(bad, folder))
        mlflow.log_artifacts(str(folder), artifact_path="model")
        run_id = run.info.run_id
    mv = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
    out["runs"]["classic"] = run_id
    out["versions"]["classic"] = str(mv.version)
    out["sources"]["classic"] = client.get_model_version(name, str(mv.version)).source

    lap("classic", started)
    client.set_registered_model_alias(name, "champion", out["versions"]["sklearn"])
    client.set_registered_model_alias(name, "challenger", out["versions"]["pyfunc"])
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
