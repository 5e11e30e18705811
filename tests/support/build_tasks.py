"""Fill an MLflow registry with a team's regression, 3-class and mixed-type models, using plain
scikit-learn, LightGBM, XGBoost and the MLflow client only (no mrc code).

    python tests/support/build_tasks.py TRACKING_URI PREFIX DATA_DIR  -> JSON on stdout

Run as its own process so MLflow's fluent state never leaks into the test process. Models
(names PREFIX-demand, PREFIX-triage, PREFIX-tickets):
  demand   regression: 1 sklearn Ridge pipeline (champion), 2 LightGBM (challenger), 3 LightGBM
           trained on shuffled targets (bad); metrics logged under MLflow evaluate's names
  triage   3 classes 0/1/2: 1 sklearn logistic regression (champion), 2 XGBoost (challenger)
  tickets  3 text classes from mixed-type features (text with missing values and a category
           unseen in training, an int, a bool, a float with missing values) through a
           Pipeline with a ColumnTransformer: 1 (champion), 2 (challenger)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path


def demand_frames(rng, n):
    import numpy as np
    import pandas as pd

    x = rng.normal(0, 1, (n, 4))
    y = 50 + 8 * x[:, 0] - 5 * x[:, 1] + 6 * np.maximum(x[:, 2], 0) * x[:, 3] + rng.normal(0, 2, n)
    df = pd.DataFrame(x, columns=["price", "promo", "season", "stock"])
    df["units"] = y
    return df


def triage_frames(rng, n):
    import numpy as np
    import pandas as pd

    x = rng.normal(0, 1, (n, 5))
    logits = np.column_stack([x[:, 0] + x[:, 1], -x[:, 0] + 0.5 * x[:, 2] ** 2, x[:, 3] - x[:, 4]]) * 1.5
    y = np.array([rng.choice(3, p=np.exp(l) / np.exp(l).sum()) for l in logits])
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    df["queue"] = y
    return df


def tickets_frames(rng, n, unseen: bool = False):
    import numpy as np
    import pandas as pd

    channels = ["web", "phone", "email"] + (["fax"] if unseen else [])
    channel = rng.choice(channels, n).astype(object)
    channel[rng.random(n) < 0.08] = None
    plan = rng.choice(["free", "pro", "team"], n)
    n_calls = rng.poisson(2, n)
    premium = rng.random(n) < 0.3
    amount = rng.lognormal(3, 1, n)
    amount[rng.random(n) < 0.05] = np.nan
    score = np.column_stack([(plan == "free") * 1.5 + (channel == "email") * 1.0,
                             (np.nan_to_num(amount, nan=20) > 40) * 2.0 + premium * 0.5,
                             n_calls * 0.6 + (channel == "phone") * 1.0])
    y = np.array(["billing", "fraud", "tech"])[np.argmax(score + rng.gumbel(0, 1, score.shape), axis=1)]
    return pd.DataFrame({"channel": channel, "plan": plan, "n_calls": n_calls, "premium": premium,
                         "amount": amount, "category": y})


def main() -> int:
    tracking_uri, prefix, data_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    os.chdir(tempfile.mkdtemp(prefix="mrc-tasks-build-"))
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from importlib.metadata import version

    import lightgbm as lgb
    import mlflow
    import numpy as np
    import xgboost as xgb
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn import metrics as skm
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    mlflow.set_experiment(f"{prefix}-tasks")
    rng = np.random.default_rng(7)
    base_reqs = [f"scikit-learn=={version('scikit-learn')}", f"mlflow=={mlflow.__version__}"]
    out: dict = {"models": {}, "data": {}}

    def write(name, train, test):
        paths = {"train": data_dir / f"{name}-train.csv", "test": data_dir / f"{name}-test.csv"}
        train.to_csv(paths["train"], index=False)
        test.to_csv(paths["test"], index=False)
        out["data"][name] = {k: str(v) for k, v in paths.items()}

    def log(model_name, kind, flavor, estimator, x_train, metrics, reqs, **extra):
        with mlflow.start_run(run_name=f"{kind}"):
            mlflow.log_metrics(metrics)
            signature = infer_signature(x_train.iloc[:50])
            info = flavor.log_model(estimator, name="model", signature=signature, registered_model_name=model_name,
                                    pip_requirements=reqs, **extra)
        v = str(info.registered_model_version)
        out["models"].setdefault(model_name, {"versions": {}, "metrics": {}})
        out["models"][model_name]["versions"][kind] = v
        out["models"][model_name]["metrics"][kind] = metrics
        return v

    # demand: regression, metrics under mlflow.evaluate's names
    name = f"{prefix}-demand"
    train, test = demand_frames(rng, 1500), demand_frames(rng, 600)
    write("demand", train, test)
    cols = ["price", "promo", "season", "stock"]

    def reg_metrics(pred):
        y = test["units"]
        return {"root_mean_squared_error": skm.root_mean_squared_error(y, pred), "r2_score": skm.r2_score(y, pred),
                "mean_absolute_error": skm.mean_absolute_error(y, pred), "max_error": skm.max_error(y, pred)}

    ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(train[cols], train["units"])
    log(name, "sklearn", mlflow.sklearn, ridge, train[cols], reg_metrics(ridge.predict(test[cols])), base_reqs)
    lgb_reqs = base_reqs + [f"lightgbm=={version('lightgbm')}"]
    good = lgb.LGBMRegressor(n_estimators=200, learning_rate=0.05, num_leaves=15, verbose=-1, random_state=0)
    good.fit(train[cols], train["units"])
    log(name, "lightgbm", mlflow.lightgbm, good, train[cols], reg_metrics(good.predict(test[cols])), lgb_reqs)
    bad = lgb.LGBMRegressor(n_estimators=50, verbose=-1, random_state=0)
    bad.fit(train[cols], rng.permutation(train["units"].to_numpy()))
    log(name, "bad", mlflow.lightgbm, bad, train[cols], reg_metrics(bad.predict(test[cols])), lgb_reqs)
    client.set_registered_model_alias(name, "champion", out["models"][name]["versions"]["sklearn"])
    client.set_registered_model_alias(name, "challenger", out["models"][name]["versions"]["lightgbm"])

    # triage: 3 classes, sklearn then XGBoost
    name = f"{prefix}-triage"
    train, test = triage_frames(rng, 1500), triage_frames(rng, 600)
    write("triage", train, test)
    cols = [f"f{i}" for i in range(5)]

    def mc_metrics(est):
        y, pred = test["queue"], est.predict(test[cols])
        return {"accuracy_score": skm.accuracy_score(y, pred), "f1_score": skm.f1_score(y, pred, average="weighted"),
                "log_loss": skm.log_loss(y, est.predict_proba(test[cols]))}

    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train[cols], train["queue"])
    log(name, "sklearn", mlflow.sklearn, lr, train[cols], mc_metrics(lr), base_reqs)
    booster = xgb.XGBClassifier(n_estimators=150, max_depth=3, learning_rate=0.1, random_state=0)
    booster.fit(train[cols], train["queue"])
    log(name, "xgboost", mlflow.xgboost, booster, train[cols], mc_metrics(booster),
        base_reqs + [f"xgboost=={version('xgboost')}"])
    client.set_registered_model_alias(name, "champion", out["models"][name]["versions"]["sklearn"])
    client.set_registered_model_alias(name, "challenger", out["models"][name]["versions"]["xgboost"])

    # tickets: mixed-type features through a ColumnTransformer, text classes
    name = f"{prefix}-tickets"
    train, test = tickets_frames(rng, 1500), tickets_frames(rng, 600, unseen=True)
    write("tickets", train, test)
    cols = ["channel", "plan", "n_calls", "premium", "amount"]

    def pipeline(c):
        numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        text = make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                             OneHotEncoder(handle_unknown="ignore"))
        prep = ColumnTransformer([("num", numeric, ["n_calls", "amount", "premium"]), ("cat", text, ["channel", "plan"])])
        return Pipeline([("prep", prep), ("clf", LogisticRegression(C=c, max_iter=2000))]).fit(train[cols], train["category"])

    for kind, c in (("v1", 1.0), ("v2", 0.3)):
        est = pipeline(c)
        pred = est.predict(test[cols])
        log(name, kind, mlflow.sklearn, est, train[cols],
            {"accuracy_score": skm.accuracy_score(test["category"], pred),
             "f1_score": skm.f1_score(test["category"], pred, average="weighted")}, base_reqs,
            # MLflow 3's default (skops) refuses the encoders' numpy dtypes: teams pick cloudpickle
            serialization_format="cloudpickle")
    client.set_registered_model_alias(name, "champion", out["models"][name]["versions"]["v1"])
    client.set_registered_model_alias(name, "challenger", out["models"][name]["versions"]["v2"])
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
