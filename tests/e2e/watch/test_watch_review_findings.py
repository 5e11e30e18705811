"""The review's findings on `mrc watch`, each driven through the real CLI (real torch training):
a data version trained on by hand, or by a watch run that crashed, is never retrained; a retrain
started on another host and not finished is left alone; a loop outlives any one run's error."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.support.cli import REPO, mrc_env, run_mrc
from tests.support.watch import EPOCHS, FEATURES, MODEL, add_dataset, audit, copy_ws, mrc_ok, run_dirs, versions

# `mrc` with one seam of the real code swapped: how a crash (os._exit, no cleanup, no except) or a
# failed training is produced at an exact point of a real run
CRASHING_MRC = """
import os, socket, sys
import console.release.audit, console.training
from console.cli import main
mode, host = os.environ["CRASH_MODE"], os.environ.get("CRASH_HOST")
if host:
    socket.gethostname = lambda: host
if mode == "before-retrain-event":  # trained and registered; dies before `watch.retrain` is written
    append = console.release.audit.AuditLog.append
    def crash_on_retrain(self, actor, action, *args, **kwargs):
        if action == "watch.retrain":
            os._exit(9)
        return append(self, actor, action, *args, **kwargs)
    console.release.audit.AuditLog.append = crash_on_retrain
elif mode == "during-training":  # dies mid-training: nothing registered
    def crash(*args, **kwargs):
        os._exit(9)
    console.training.train_and_register = crash
elif mode == "training-fails":
    def fail(*args, **kwargs):
        raise RuntimeError("trainer ran out of memory")
    console.training.train_and_register = fail
sys.exit(main(sys.argv[1:]))
"""


def run_patched(mode: str, *args: str, host: str = ""):
    env = mrc_env({"CRASH_MODE": mode, **({"CRASH_HOST": host} if host else {})})
    return subprocess.run([sys.executable, "-c", CRASHING_MRC, *args], capture_output=True, text=True, env=env,
                          cwd=str(REPO), timeout=600)


def watch_once(ws):
    result = run_mrc("watch", MODEL, "--once", "--json", "--param", EPOCHS, "--workspace", str(ws))
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, (result.returncode, result.stdout, result.stderr[-2000:])
    return result.returncode, json.loads(lines[0])


def drifted_ws(production_ws, tmp_path):
    ws = copy_ws(production_ws, tmp_path)
    add_dataset(ws, "credit@v3", seed=3, shift=2.0, parent="credit@v1")
    return ws


def actions(ws) -> list[str]:
    return [e["action"] for e in audit(ws)]


def test_a_version_trained_by_hand_is_handled(production_ws, tmp_path):
    ws = drifted_ws(production_ws, tmp_path)
    mrc_ok("train", MODEL, "--data", "credit@v3", "--param", EPOCHS, "--workspace", str(ws))
    before = run_dirs(ws)
    code, result = watch_once(ws)
    assert code == 0 and result["action"] == "already-handled", result
    assert result["handled_by"]["candidate"] == "2" and result["candidate"] is None
    assert run_dirs(ws) == before and [v["version"] for v in versions(ws)] == ["1", "2"]
    assert "watch.retrain_started" not in actions(ws)


def test_a_crash_after_registering_does_not_retrain(production_ws, tmp_path):
    ws = drifted_ws(production_ws, tmp_path)
    crashed = run_patched("before-retrain-event", "watch", MODEL, "--once", "--json", "--param", EPOCHS,
                          "--workspace", str(ws))
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    assert [v["version"] for v in versions(ws)] == ["1", "2"]
    events = actions(ws)
    # the start was recorded before training; its end never was
    assert "watch.retrain_started" in events and "watch.retrain" not in events
    assert events.index("drift.critical") < events.index("watch.retrain_started")
    before = run_dirs(ws)
    code, result = watch_once(ws)
    assert code == 0 and result["action"] == "already-handled" and result["handled_by"]["candidate"] == "2"
    assert run_dirs(ws) == before and [v["version"] for v in versions(ws)] == ["1", "2"]


def test_a_crash_mid_training_on_this_host_retrains_once(production_ws, tmp_path):
    ws = drifted_ws(production_ws, tmp_path)
    crashed = run_patched("during-training", "watch", MODEL, "--once", "--json", "--param", EPOCHS,
                          "--workspace", str(ws))
    assert crashed.returncode == 9 and [v["version"] for v in versions(ws)] == ["1"]
    code, result = watch_once(ws)
    assert code == 1 and result["action"] == "retrain" and result["candidate"] == "2", result
    assert result["interrupted_retrain"]["dataset_version"] == "credit@v3"
    assert "died before registering" in result["reason"]
    code, again = watch_once(ws)
    assert code == 0 and again["action"] == "already-handled"
    assert [v["version"] for v in versions(ws)] == ["1", "2"]
    assert actions(ws).count("watch.retrain") == 1


def test_a_retrain_started_on_another_host_is_left_alone_until_trained_by_hand(production_ws, tmp_path):
    ws = drifted_ws(production_ws, tmp_path)
    crashed = run_patched("during-training", "watch", MODEL, "--once", "--json", "--param", EPOCHS,
                          "--workspace", str(ws), host="gpu-box-7")
    assert crashed.returncode == 9
    before = run_dirs(ws)
    code, result = watch_once(ws)
    assert code == 0 and result["action"] == "retrain-in-progress", result
    assert result["handled_by"]["host"] == "gpu-box-7" and "gpu-box-7" in result["reason"]
    assert run_dirs(ws) == before and [v["version"] for v in versions(ws)] == ["1"]
    human = run_mrc("watch", MODEL, "--once", "--workspace", str(ws))
    assert human.returncode == 0 and "retrain started on host gpu-box-7" in human.stdout
    # the way out it names: a retrain by hand counts as handled
    mrc_ok("train", MODEL, "--data", "credit@v3", "--param", EPOCHS, "--workspace", str(ws))
    code, result = watch_once(ws)
    assert code == 0 and result["action"] == "already-handled" and result["handled_by"]["candidate"] == "2"


def write_unlabelled(ws, ref: str) -> None:
    import pandas as pd

    rng = np.random.default_rng(5)
    csv = ws.parent / f"{ref.replace('@', '-')}.csv"
    pd.DataFrame(rng.normal(size=(300, len(FEATURES))), columns=FEATURES).to_csv(csv, index=False)
    mrc_ok("datasets", "add", ref, str(csv), "--parent", "credit@v1", "--workspace", str(ws))


def test_the_loop_outlives_a_data_version_without_its_label(production_ws, tmp_path):
    ws = copy_ws(production_ws, tmp_path)
    write_unlabelled(ws, "credit@v9")
    once = run_mrc("watch", MODEL, "--once", "--json", "--workspace", str(ws))
    assert once.returncode == 2 and once.stdout == "" and "credit@v9" in once.stderr  # --once keeps its codes
    loop = run_mrc("watch", MODEL, "--interval", "0.05", "--runs", "3", "--json", "--workspace", str(ws))
    assert loop.returncode == 0, loop.stderr[-2000:]
    runs = [json.loads(line) for line in loop.stdout.splitlines()]
    assert len(runs) == 3
    for run in runs:
        assert run["action"] == "error" and run["error_kind"] == "bad-input" and run["model"] == MODEL
        assert "credit@v9" in run["error"] and "'y'" in run["error"] and "\n" not in run["error"]
    assert sum(line.startswith("watch credit: run failed: ") for line in loop.stderr.splitlines()) == 3
    human = run_mrc("watch", MODEL, "--interval", "0.05", "--runs", "2", "--workspace", str(ws))
    assert human.returncode == 0 and human.stdout == ""
    assert sum("run failed" in line and "credit@v9" in line for line in human.stderr.splitlines()) == 2
    assert "watch.retrain_started" not in actions(ws) and [v["version"] for v in versions(ws)] == ["1"]


def test_the_loop_outlives_a_failed_training(production_ws, tmp_path):
    ws = drifted_ws(production_ws, tmp_path)
    loop = run_patched("training-fails", "watch", MODEL, "--interval", "0.05", "--runs", "2", "--json",
                       "--param", EPOCHS, "--workspace", str(ws))
    assert loop.returncode == 0, loop.stderr[-2000:]
    runs = [json.loads(line) for line in loop.stdout.splitlines()]
    assert [r["action"] for r in runs] == ["error", "error"]
    assert all("RuntimeError: trainer ran out of memory" in r["error"] for r in runs)
    events = actions(ws)
    # each run audits its start and its failure: the failure ends the start, so the next run retries
    assert events.count("watch.retrain_started") == 2 and events.count("watch.retrain.failed") == 2
    once = run_patched("training-fails", "watch", MODEL, "--once", "--json", "--param", EPOCHS, "--workspace", str(ws))
    # --once: one line and the backend code, not a traceback's 1 (which means "retrain launched")
    assert once.returncode == 4 and once.stdout == "", once.stderr[-2000:]
    assert "Traceback" not in once.stderr and "trainer ran out of memory" in once.stderr
