"""Real torch training in a subprocess, registered with its lineage."""

from __future__ import annotations

import json

from backends.local.training import LocalTraining


def test_mrc_train_registers_a_candidate_with_full_lineage(demo_ws, mrc):
    result = mrc("train", "breast-cancer", "--param", "epochs=3", "--param", "hidden=8", "--param", "seed=7",
                 "--workspace", str(demo_ws), "--json")
    assert result.returncode == 0, result.stderr
    version = result.json()
    assert version["version"] == "6" and version["aliases"] == ["candidate"]
    lineage = version["lineage"]
    assert lineage["params"]["epochs"] == 3 and lineage["params"]["hidden"] == 8 and lineage["params"]["seed"] == 7
    assert lineage["data_version"] == "breast_cancer@v2" and lineage["parent_version"] == "2"
    assert lineage["training_run"] and lineage["code_commit"]
    datasets = mrc("datasets", "--json", "--workspace", str(demo_ws)).json()["datasets"]
    v2 = next(d for d in datasets if d["name"] == "breast_cancer" and d["version"] == "v2")
    assert lineage["data_sha256"] == v2["sha256"]
    # progress was streamed while it ran: one progress event per epoch in the run's log
    run_dir = demo_ws / "runs" / lineage["training_run"]
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "progress"] == [1, 2, 3]
    audit = mrc("audit", "--json", "--workspace", str(demo_ws)).json()["events"]
    assert [e["action"] for e in audit[-2:]] == ["register", "alias:candidate"]


def test_human_progress_goes_to_stderr(demo_ws, mrc):
    result = mrc("train", "breast-cancer", "--param", "epochs=2", "--workspace", str(demo_ws), "--no-candidate")
    assert result.returncode == 0, result.stderr
    assert "epoch 2/2" in result.stderr and "registered version" in result.stdout


def test_a_cancelled_job_reports_cancelled(demo_ws):
    from backends.base import TrainingSpec

    training = LocalTraining(demo_ws)
    job = training.launch(TrainingSpec("breast-cancer", "breast_cancer@v2", {"epochs": 100000}, label="malignant"))
    assert training.status(job.id).state == "running"
    assert training.cancel(job.id).state == "cancelled"


def test_a_dataset_changed_on_disk_is_refused(demo_ws, mrc):
    path = demo_ws / "data" / "breast_cancer" / "v2.csv"
    path.write_text(path.read_text().replace("1", "2", 1))
    result = mrc("train", "breast-cancer", "--workspace", str(demo_ws))
    assert result.returncode == 2 and "v2.csv" in result.stderr and "sha256" in result.stderr


import pytest  # noqa: E402


@pytest.mark.parametrize("param,needle", [("epochs=ten", "epochs"), ("hidden=0", "hidden"), ("lr=-1", "lr"),
                                          ("colour=blue", "unknown")])
def test_bad_params_are_refused_before_any_run_starts(demo_ws, mrc, param, needle):
    from tests.support.cli import tree_digest

    before = tree_digest(demo_ws)
    result = mrc("train", "breast-cancer", "--param", param, "--workspace", str(demo_ws))
    assert result.returncode == 2 and needle in result.stderr and result.stderr.count("\n") == 1
    assert tree_digest(demo_ws) == before
