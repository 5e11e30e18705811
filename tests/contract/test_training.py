"""One contract for every training backend (backends.base.Training): the local one (mrc's trainer
as a process) and Kubernetes (a Job on the API emulator the k8s tests use, whose pod runs as a
process here). A run is launched, followed through its log to a succeeded state with its
result; a run is cancelled; an unknown run is a clear error; and the optional abilities
(capabilities.ChecksParams, Closeable) behave as declared.

The data set is written by sklearn + pandas and added with `mrc datasets add` (in process).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from backends import capabilities
from backends.base import TRAINING_STATES, BadInputError, Training, TrainingJob, TrainingSpec
from tests.support.k8s.emulator import apiserver  # noqa: F401  (fixture: the Kubernetes API emulator)

pytestmark = pytest.mark.integration  # every case runs the trainer as a process
MODEL = "contract-model"
DATA = "contract@v1"

K8S_TOML = """\
[training]
backend = "k8s"
namespace = "ml"
data_claim = "mrc-data"
poll_s = 0.1
"""


@pytest.fixture(scope="module")
def workspace_template(tmp_path_factory) -> Path:
    import pandas as pd  # ~0.5 s
    from sklearn.datasets import make_classification

    from console.cli import main

    folder = tmp_path_factory.mktemp("training")
    X, y = make_classification(n_samples=160, n_features=5, n_informative=3, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame["label"] = y
    frame.to_csv(folder / "train.csv", index=False)
    root = folder / "ws"
    assert main(["init", "--workspace", str(root)]) == 0
    assert main(["datasets", "add", DATA, str(folder / "train.csv"), "--label", "label", "--workspace", str(root)]) == 0
    return root


def _workspace(template: Path, tmp_path: Path, toml: str = "") -> Path:
    import shutil

    root = tmp_path / "ws"
    shutil.copytree(template, root)
    if toml:
        (root / "mrc.toml").write_text(toml)
    return root


def _local(request, tmp_path):
    from console.workspace import Workspace

    root = _workspace(request.getfixturevalue("workspace_template"), tmp_path)
    return Workspace.open(root).training()


def _k8s(request, tmp_path):
    from console.workspace import Workspace

    server = request.getfixturevalue("apiserver")
    root = _workspace(request.getfixturevalue("workspace_template"), tmp_path, K8S_TOML)
    server.server.volumes["mrc-data"] = str(root / "data")  # the claim the pod mounts at /data
    return Workspace.open(root).training()


@pytest.fixture(params=["local", "k8s"])
def training(request, tmp_path):
    backend = {"local": _local, "k8s": _k8s}[request.param](request, tmp_path)
    yield backend
    capabilities.close(backend)


def _spec(epochs: int) -> TrainingSpec:
    return TrainingSpec(MODEL, DATA, {"epochs": epochs, "hidden": 8}, label="label", code_commit="0" * 40,
                        code_repo="contract")


def _until(training, job_id: str, states: tuple[str, ...], timeout_s: float = 120.0) -> TrainingJob:
    deadline = time.monotonic() + timeout_s
    while (job := training.status(job_id)).state not in states:
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def test_is_a_training_backend(training):
    assert isinstance(training, Training)


def test_a_run_is_launched_followed_and_succeeds_with_its_result(training):
    job = training.launch(_spec(epochs=3))
    assert isinstance(job, TrainingJob) and job.id and job.model == MODEL and job.state in TRAINING_STATES
    lines = list(training.logs(job.id, follow=True))  # ends when the run ends
    progress = [json.loads(line) for line in lines if line.lstrip().startswith("{") and '"progress"' in line]
    assert [p for p in progress if p.get("event") == "progress"], lines[-5:]
    done = _until(training, job.id, ("succeeded", "failed", "cancelled"))
    assert done.state == "succeeded", done
    assert done.progress == 1.0 and done.result_dir and Path(done.result_dir).is_dir()
    assert training.status(job.id).state == "succeeded"  # asked again: the same answer


def test_a_running_job_is_cancelled(training):
    job = training.launch(_spec(epochs=5000))
    _until(training, job.id, ("running",))
    cancelled = training.cancel(job.id)
    assert cancelled.state == "cancelled"
    assert _until(training, job.id, ("cancelled", "failed", "succeeded")).state == "cancelled"


def test_an_unknown_run_is_bad_input(training):
    with pytest.raises(BadInputError):
        training.status("no-such-run")


def test_parameters_it_checks_are_refused_before_a_launch(training):
    if not isinstance(training, capabilities.ChecksParams):
        capabilities.check_params(training, {"epochs": -1})  # the default: accepted, the run says
        return
    with pytest.raises(BadInputError) as refused:
        training.check_params({"epochs": -1})
    assert "epochs" in str(refused.value) and "\n" not in str(refused.value)
    training.check_params({"epochs": 3, "hidden": 8})
