"""Data as teams have it (text with missing values, categories, ints, booleans, floats with
missing values) through `mrc validate` and `mrc drift`, in process."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from console.cli import main


def frame(seed: int, n: int, channels: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice(channels, n).astype(object)
    channel[rng.random(n) < 0.05] = None
    amount = rng.lognormal(3, 1, n)
    amount[rng.random(n) < 0.03] = np.nan
    return pd.DataFrame({"channel": channel, "plan": rng.choice(["free", "pro"], n), "n_calls": rng.poisson(2, n),
                         "premium": rng.random(n) < 0.3, "amount": amount})


def test_validate_and_drift_take_mixed_types_and_unseen_categories(tmp_path, capsys):
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    frame(0, 800, ["web", "phone"]).to_csv(ref, index=False)
    frame(1, 800, ["web", "phone", "fax"]).to_csv(cur, index=False)  # fax: never seen in the reference
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"required_columns": ["channel", "plan", "n_calls", "premium", "amount"],
                                  "numeric_columns": ["n_calls", "amount"],
                                  "categorical_columns": ["channel", "plan", "premium"], "max_null_fraction": 0.1}))
    assert main(["validate", str(cur), "--schema", str(schema), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    code = main(["drift", "--reference", str(ref), "--current", str(cur), "--schema", str(schema), "--json"])
    assert code in (0, 1)
    features = {f["name"]: f for f in json.loads(capsys.readouterr().out)["features"]}
    assert features["channel"]["method"] == "chi2" and features["channel"]["extra"]["unseen_categories"] == ["fax"]
    assert features["channel"]["severity"] != "none"  # a third of the traffic on a channel never seen
    assert features["premium"]["kind"] == "categorical" and features["premium"]["severity"] == "none"
    assert features["amount"]["kind"] == "numeric"
