"""The monitor on the real demo: real router and model servers on 127.0.0.1, real `mrc load`.

Replayed clean the demo stays ok; replayed drifted (`mrc load --data breast_cancer@v3-drifted`,
five features ×1.6 upstream) it turns critical on exactly those features, read from the router's
capture; labels posted late to /label change the accuracy, with the coverage shown.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from tests.support.processes import kill_group, served_pids

MODEL = "breast-cancer"
# the demo's v3-drifted: every third kept feature scaled upstream (plain names, not mrc's helper)
SHIFTED = {"mean_texture", "mean_fractal_dimension", "symmetry_error", "worst_smoothness", "mean_compactness"}


@pytest.fixture
def served(demo_ws, mrc):
    """The demo with [monitor] on, its router and servers up; killed at teardown."""
    with open(demo_ws / "mrc.toml", "a") as fh:
        fh.write("\n[monitor]\nsample = 0.5\nmin_units = 30\n")
    result = mrc("serve-models", MODEL, "--workspace", str(demo_ws))
    assert result.returncode == 0, result.stderr
    yield demo_ws
    for pid in served_pids(demo_ws):
        kill_group(pid)


def router_call(ws: Path, method: str, path: str, body=None, key: bool = False):
    port = json.loads((ws / "serving" / MODEL / "processes.json").read_text())["router"]["port"]
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + (ws / "serving" / "control.key").read_text().strip()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, None if body is None else json.dumps(body).encode(), headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def monitor(mrc, ws: Path):
    result = mrc("monitor", MODEL, "--json", "--workspace", str(ws))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.json()


def summary(report: dict) -> str:
    return json.dumps({"tier": report["tier"], "detector": report.get("detector"), "records": report.get("records"),
                       "units": report.get("units"), "distinct_rows": report.get("distinct_rows"),
                       "window": report.get("window"), "source": report.get("source"),
                       "features": [(f["name"], f["tier"], f["psi"], f["psi_debiased"]) for f in report["features"]]})


def test_clean_replay_stays_ok_and_the_drifted_one_is_critical_on_the_shifted_features(served, mrc):
    ws = served
    load = mrc("load", MODEL, "--rate", "100", "--duration", "6", "--label-delay", "0.1", "--workspace", str(ws))
    assert load.returncode == 0, load.stderr
    code, clean = monitor(mrc, ws)
    status, capture = router_call(ws, "GET", "/control/capture", key=True)
    assert status == 200
    counters = capture["capture"]["counters"]
    assert counters["dropped"] == 0 and counters["offered"] >= 500
    # half the requests by id hash (a binomial margin), each read from the capture once; their
    # labels follow the same hash
    assert abs(counters["written"] - counters["offered"] / 2) < 4 * (counters["offered"] / 4) ** 0.5
    assert counters["queued"] == counters["written"] + counters["labels"]
    assert clean["records"] == counters["written"]
    assert code == 0 and clean["tier"] == "ok", summary(clean)
    assert clean["labels"]["coverage"] > 0.9 and clean["labels"]["accuracy"] > 0.85
    assert clean["source"]["bad"] == {}

    load = mrc("load", MODEL, "--rate", "100", "--duration", "6", "--label-delay", "0.1",
               "--data", "breast_cancer@v3-drifted", "--workspace", str(ws))
    assert load.returncode == 0, load.stderr
    code, drifted = monitor(mrc, ws)
    assert code == 1 and drifted["tier"] == "critical", summary(drifted)
    flagged = {f["name"] for f in drifted["features"] if f["tier"] != "ok"}
    critical = {f["name"] for f in drifted["features"] if f["tier"] == "critical"}
    assert critical and critical <= SHIFTED and flagged <= SHIFTED, drifted["features"]
    assert len(critical) >= 3  # of five: a 142-row replay leaves a small shift under its noise margin
    # the 20 % label noise of v3 shows as accuracy lost on the window that holds both replays
    assert drifted["labels"]["accuracy"] < clean["labels"]["accuracy"] - 0.03
    # the report is stable: a second look at the same data folds nothing new and says the same
    code, again = monitor(mrc, ws)
    assert code == 1 and again["source"]["read"] == 0 and again["records"] == drifted["records"]


def test_late_labels_change_the_accuracy_and_the_coverage(served, mrc):
    from sklearn.datasets import load_breast_cancer

    ws = served
    # every request captured, so the label counts are exact: the router restarts with the new sample
    text = (ws / "mrc.toml").read_text().replace("sample = 0.5", "sample = 1.0")
    (ws / "mrc.toml").write_text(text)
    assert mrc("serve-models", MODEL, "--stop", "--workspace", str(ws)).returncode == 0
    result = mrc("serve-models", MODEL, "--workspace", str(ws))
    assert result.returncode == 0, result.stderr
    raw = load_breast_cancer()
    keep = [i for i, n in enumerate(raw.feature_names)
            if any(k in n for k in ("texture", "smoothness", "symmetry", "fractal"))]
    keep += [list(raw.feature_names).index(n) for n in ("mean compactness", "radius error")]
    columns = [raw.feature_names[i].replace(" ", "_") for i in keep]
    truth = {}
    for i in range(120):
        row = raw.data[i, keep].tolist()
        status, reply = router_call(ws, "POST", "/predict", {"id": f"late-{i}", "key": f"user-{i % 40}",
                                                             "rows": [row], "columns": columns})
        assert status == 200, reply
        truth[f"late-{i}"] = int(raw.target[i] == 0)
    status, _ = router_call(ws, "POST", "/label", {"id": "never-served", "label": 1}, key=True)
    assert status == 200

    def settled(expected_records):
        code, report = monitor(mrc, ws)
        assert report["records"] == expected_records, report.get("source")
        return report

    before = settled(120)
    assert before["labels"]["coverage"] == 0 and before["labels"]["accuracy"] is None
    for rid in list(truth)[:60]:
        assert router_call(ws, "POST", "/label", {"id": rid, "label": truth[rid]}, key=True)[0] == 200
    half = settled(120)
    assert half["labels"]["labelled"] == 60 and half["labels"]["coverage"] == pytest.approx(0.5)
    good = half["labels"]["accuracy"]
    assert good > 0.8 and half["labels"]["accuracy_interval"][0] < good < half["labels"]["accuracy_interval"][1]
    for rid in list(truth)[:30]:  # relabelled later: the last label counts
        assert router_call(ws, "POST", "/label", {"id": rid, "label": 1 - truth[rid]}, key=True)[0] == 200
    worse = settled(120)
    assert worse["labels"]["labelled"] == 60 and worse["labels"]["accuracy"] < good - 0.3
    assert worse["labels"]["pending"] == 1  # the label for an id never served waits, counted
