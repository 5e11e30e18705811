"""`mrc watch MODEL --once`: below critical it reports; past it, it trains on the newest data
(real torch), registers the candidate with lineage pointing at that data, audits
drift.critical and watch.retrain, never promotes, and never trains twice on one data version."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.cli import REPO, mrc_env, run_mrc, tree_digest
from tests.support.watch import EPOCHS, MODEL, add_dataset, audit, copy_ws, mrc_ok, run_dirs, versions


def one_object(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_undrifted_version_reports_and_trains_nothing(story):
    result = story.runs["undrifted"]
    assert result.returncode == 0, result.stderr
    run = one_object(result)
    assert run["action"] == "no-action"
    assert run["newest_data"] == "credit@v2" and run["reference_data"] == "credit@v1"
    assert run["severity"] != "critical" and run["candidate"] is None
    assert story.facts["runs_after_undrifted"] == story.facts["runs_before"]  # no training run started
    assert [v["version"] for v in story.facts["versions_after_undrifted"]] == ["1"]
    assert not [e for e in story.facts["audit_after_undrifted"] if e["action"].startswith(("drift.", "watch."))]


def test_drifted_version_launches_training_and_registers_a_candidate_on_it(story):
    result = story.runs["drifted"]
    assert result.returncode == 1, result.stderr  # the contract's "drift beyond critical": a retrain launched
    run = one_object(result)
    assert run["action"] == "retrain" and run["severity"] == "critical"
    assert run["newest_data"] == "credit@v3" and run["production"] == "1"
    assert run["worst_feature"]["name"] in ("f0", "f1") and run["worst_feature"]["psi"] >= 0.25
    new_runs = sorted(set(story.facts["runs_after_drifted"]) - set(story.facts["runs_before"]))
    assert new_runs == [run["training_run"]]
    by_version = {v["version"]: v for v in story.facts["versions_after_again"]}
    candidate = by_version[run["candidate"]]
    assert candidate["lineage"]["data_version"] == "credit@v3"
    assert candidate["lineage"]["training_run"] == run["training_run"]
    assert candidate["lineage"]["parent_version"] == "1"
    datasets = mrc_ok("datasets", "--json", "--workspace", str(story.ws)).json()["datasets"]
    v3 = next(d for d in datasets if d["name"] == "credit" and d["version"] == "v3")
    assert candidate["lineage"]["data_sha256"] == v3["sha256"]
    assert "candidate" in candidate["aliases"]
    # the trainer really ran: epochs were logged and the artifact is a real file
    log = (story.ws / "runs" / run["training_run"] / "log.jsonl").read_text().splitlines()
    assert sum(json.loads(line).get("event") == "progress" for line in log) == 2


def test_production_is_never_touched(story):
    by_version = {v["version"]: v for v in story.facts["versions_after_again"]}
    assert "production" in by_version["1"]["aliases"]
    assert all("production" not in v["aliases"] for k, v in by_version.items() if k != "1")
    moves = [e for e in story.facts["audit_after_again"] if e["action"] in ("promote", "rollback")
             or e["action"].startswith("alias:production")]
    before = [e for e in story.facts["audit_after_undrifted"] if e in moves]
    assert moves == before  # the only production move is the test's own first promote


def test_audit_has_drift_critical_with_the_details_an_alert_needs(story):
    run = one_object(story.runs["drifted"])
    events = story.facts["audit_after_drifted"]
    critical = [e for e in events if e["action"] == "drift.critical"]
    assert len(critical) == 1
    event = critical[0]
    assert event["model"] == MODEL and event["version"] == "1"
    details = event["details"]
    assert details["dataset_version"] == "credit@v3" and details["reference_data"] == "credit@v1"
    assert details["feature"] == run["worst_feature"]["name"]
    assert details["psi"] >= 0.25 and details["tier"] == "critical"
    retrain = [e for e in events if e["action"] == "watch.retrain"]
    assert [(e["version"], e["details"]["dataset_version"]) for e in retrain] == [(run["candidate"], "credit@v3")]
    assert critical[0]["seq"] < retrain[0]["seq"]
    assert mrc_ok("audit", "verify", "--workspace", str(story.ws)).returncode == 0


def test_second_run_on_the_same_data_version_does_nothing(story):
    result = story.runs["again"]
    assert result.returncode == 0, result.stderr
    run = one_object(result)
    assert run["action"] == "already-handled"
    assert run["handled_by"]["candidate"] == one_object(story.runs["drifted"])["candidate"]
    assert story.facts["runs_after_again"] == story.facts["runs_after_drifted"]
    assert len(story.facts["audit_after_again"]) == len(story.facts["audit_after_drifted"])


def test_models_shows_the_new_candidates_drift_as_critical(story):
    models = mrc_ok("models", "--json", "--workspace", str(story.ws)).json()["models"]
    row = next(m for m in models if m["name"] == MODEL)
    assert row["candidate"] == one_object(story.runs["drifted"])["candidate"]
    assert row["drift"] == "critical"


def test_the_audit_alone_remembers_a_handled_version(story, tmp_path):
    """The state file is a convenience: without it, the audit's watch.retrain still stops a retrain."""
    ws = copy_ws(story.ws, tmp_path)
    (ws / "reports" / MODEL / "watch.json").unlink()
    before = run_dirs(ws)
    result = run_mrc("watch", MODEL, "--once", "--json", "--param", EPOCHS, "--workspace", str(ws))
    assert result.returncode == 0, result.stderr
    assert one_object(result)["action"] == "already-handled"
    assert run_dirs(ws) == before


def test_loop_mode_prints_one_object_and_one_progress_line_per_run(story, tmp_path):
    ws = copy_ws(story.ws, tmp_path)
    result = run_mrc("watch", MODEL, "--interval", "0.05", "--runs", "3", "--json", "--workspace", str(ws))
    assert result.returncode == 0, result.stderr
    runs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["action"] for r in runs] == ["already-handled"] * 3
    assert sum(line.startswith("watch credit:") for line in result.stderr.splitlines()) == 3
    human = run_mrc("watch", MODEL, "--once", "--workspace", str(ws))
    assert human.returncode == 0 and "already retrained (candidate 2)" in human.stdout


def test_two_watchers_racing_train_once(production_ws, tmp_path):
    ws = copy_ws(production_ws, tmp_path)
    add_dataset(ws, "credit@v3", seed=3, shift=2.0, parent="credit@v1")
    cmd = [sys.executable, "-m", "console.cli", "watch", MODEL, "--once", "--json", "--param", EPOCHS,
           "--workspace", str(ws)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mrc_env(),
                              cwd=str(REPO)) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    actions = sorted(json.loads(out.strip())["action"] for out, _ in outs)
    assert actions == ["already-handled", "retrain"]
    assert [v["version"] for v in versions(ws)] == ["1", "2"]
    assert sum(e["action"] == "watch.retrain" for e in audit(ws)) == 1


def test_bad_input_is_one_line_exit_2_nothing_written(production_ws, tmp_path):
    import pandas as pd

    ws = copy_ws(production_ws, tmp_path)
    unlabelled = tmp_path / "unlabelled.csv"  # drifted, but the label column is gone: not trainable
    pd.DataFrame({"f0": [5.0, 6.0, 7.0] * 400, "f1": [1.0, 2.0, 3.0] * 400}).to_csv(unlabelled, index=False)
    mrc_ok("datasets", "add", "other@v1", str(unlabelled), "--workspace", str(ws))
    before = tree_digest(ws)
    for args, needle in [
        (["watch", MODEL, "--once", "--data", "other"], "label 'y'"),
        (["watch", MODEL, "--once", "--data", "nope"], "dataset 'nope'"),
        (["watch", MODEL, "--once", "--data", "credit@v9"], "credit@v9"),
        (["watch", "../etc", "--once"], "model"),
        (["watch", MODEL, "--once", "--param", "epochs=zero"], "epochs"),
        (["watch", MODEL, "--interval", "0"], "--interval"),
        (["watch", MODEL, "--once", "--read-only"], "--read-only"),
        (["watch", "unknown-model", "--once"], "unknown-model"),
    ]:
        result = run_mrc(*args, "--workspace", str(ws))
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, result.stderr)
    assert tree_digest(ws) == before


def test_datasets_add_refuses_bad_files_and_writes_nothing(production_ws, tmp_path):
    ws = copy_ws(production_ws, tmp_path / "w")
    text = tmp_path / "text.csv"
    text.write_text("f0,f1,y\n1,a,0\n2,b,1\n")
    before = tree_digest(ws)
    for args, needle in [
        (["datasets", "add", "credit@v1", str(text)], "already exists"),
        (["datasets", "add", "credit", str(text)], "NAME@VERSION"),
        (["datasets", "add", "credit@v7", str(text), "--label", "z"], "'z'"),
        (["datasets", "add", "credit@v7", str(text)], "'f1'"),
        (["datasets", "add", "credit@v7", str(tmp_path / "missing.csv")], "missing.csv"),
    ]:
        result = run_mrc(*args, "--workspace", str(ws))
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and needle in result.stderr, (args, result.stderr)
    assert tree_digest(ws) == before


def test_undrifted_data_after_a_critical_one_resolves_the_drift_alert(story, tmp_path):
    """drift.critical fires DriftCritical (the alerts' own fold); a newer version back under the
    critical tier records drift.ok, which resolves it, once."""
    from console.notify.alerts import AlertsConfig, fold
    from console.workspace import Workspace

    ws = copy_ws(story.ws, tmp_path)

    def drift_alert():
        events = Workspace.open(ws).audit().events(model=MODEL)
        alerts = [a for a in fold(events, AlertsConfig()).values() if a.labels["alertname"] == "DriftCritical"]
        assert len(alerts) == 1
        return alerts[0]

    firing = drift_alert()
    assert firing.status == "firing" and firing.labels["severity"] == "critical"
    assert "credit@v3" in firing.annotations["summary"]
    add_dataset(ws, "credit@v4", seed=4, parent="credit@v3")  # back to the reference's distribution
    before = run_dirs(ws)
    result = run_mrc("watch", MODEL, "--once", "--json", "--param", EPOCHS, "--workspace", str(ws))
    assert result.returncode == 0, result.stderr
    run = one_object(result)
    assert run["action"] == "no-action" and run["newest_data"] == "credit@v4" and run["resolved_alert"] is True
    assert run_dirs(ws) == before
    assert drift_alert().status == "resolved"
    again = run_mrc("watch", MODEL, "--once", "--json", "--workspace", str(ws))
    assert again.returncode == 0 and "resolved_alert" not in one_object(again)
    assert sum(e["action"] == "drift.ok" for e in audit(ws)) == 1
