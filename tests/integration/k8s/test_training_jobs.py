"""Training Jobs on the emulator: the manifest, the GPU, the streamed log, the candidate with lineage."""

from __future__ import annotations

import json
import time

import pytest

from backends.base import Training, TrainingSpec
from backends.k8s.training import K8sTraining
from tests.support.k8s.apiserver import JOBS, PODS
from tests.support.k8s.emulator import validate_k8s

pytestmark = pytest.mark.integration
NS = "ml"


def test_mrc_train_on_kubernetes_registers_a_candidate_with_lineage(apiserver, k8s_ws, mrc):
    apiserver.server.volumes["mrc-data"] = str(k8s_ws / "data")  # the PVC the pod mounts at /data
    before: set[str] = set()
    result = mrc("train", "breast-cancer", "--backend", "k8s", "--param", "epochs=5", "--workspace", str(k8s_ws),
                 env={"KUBECONFIG": str(apiserver.kubeconfig)})
    assert result.returncode == 0, result.stderr
    assert "epoch 5/5" in result.stderr  # the pod log streamed live into the progress output

    (job,) = apiserver.server.items(JOBS, NS)
    manifest = {k: job[k] for k in ("apiVersion", "kind", "spec")} | {
        "metadata": {k: job["metadata"][k] for k in ("name", "namespace", "labels", "annotations")}}
    validate_k8s(manifest)
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod_spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert job["spec"]["backoffLimit"] == 1 and job["spec"]["activeDeadlineSeconds"] == 21600
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    annotations = job["metadata"]["annotations"]
    assert annotations["mrc.dev/data-version"] == "breast_cancer@v2"
    assert json.loads(annotations["mrc.dev/params"]) == {"epochs": 5}
    assert len(annotations["mrc.dev/code-commit"]) >= 40
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])

    versions = mrc("versions", "breast-cancer", "--json", "--workspace", str(k8s_ws)).json()["versions"]
    (new,) = [v for v in versions if v["version"] not in before]
    lineage = new["lineage"]
    assert lineage["training_run"] and job["metadata"]["name"] == f"mrc-train-{lineage['training_run']}"
    assert lineage["data_version"] == annotations["mrc.dev/data-version"]
    assert lineage["data_sha256"] == annotations["mrc.dev/data-sha256"]
    assert lineage["code_commit"] == annotations["mrc.dev/code-commit"]
    assert lineage["params"]["epochs"] == 5 and lineage["environment"]["frameworks"]["torch"]
    assert "candidate" in new["aliases"] and new["metrics"]["auc_roc"] > 0.5
    run_dir = k8s_ws / "runs" / lineage["training_run"]
    assert json.loads((run_dir / "job.json").read_text())["state"] == "succeeded"
    assert '"model_b64"' not in (run_dir / "log.jsonl").read_text()  # the artifact is not kept in the log


def _spec(ws) -> TrainingSpec:
    return TrainingSpec("breast-cancer", "breast_cancer@v1", {"epochs": 200}, gpu=True, label="malignant",
                        code_commit="0" * 40, code_repo="test")


def _wait(training, job_id, states, timeout=30):
    deadline = time.monotonic() + timeout
    while (status := training.status(job_id)).state not in states:
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    return status


def test_without_the_gpu_toleration_the_pod_stays_pending_and_says_why(apiserver, k8s_ws):
    training = K8sTraining(k8s_ws, {"namespace": NS, "tolerations": [], "poll_s": 0.1})
    assert isinstance(training, Training)
    job = training.launch(_spec(k8s_ws))
    status = _wait(training, job.id, ("pending",))
    deadline = time.monotonic() + 10
    while "untolerated taint" not in status.message:
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
        status = training.status(job.id)
    assert "tolerations" not in apiserver.server.items(JOBS, NS)[0]["spec"]["template"]["spec"]
    cancelled = training.cancel(job.id)  # cancel deletes the Job and its pods
    assert cancelled.state == "cancelled"
    assert apiserver.server.items(JOBS, NS) == [] and apiserver.server.items(PODS, NS) == []
    training.close()


def test_cancel_kills_a_running_job_and_a_failing_pod_is_retried_then_failed(apiserver, k8s_ws):
    apiserver.server.volumes["mrc-data"] = str(k8s_ws / "data")
    training = K8sTraining(k8s_ws, {"namespace": NS, "poll_s": 0.1})
    job = training.launch(_spec(k8s_ws))
    _wait(training, job.id, ("running",))
    assert training.cancel(job.id).state == "cancelled"
    assert apiserver.server.items(JOBS, NS) == []

    # data that is not the recorded bytes: the pod refuses it, the Job retries once (backoffLimit 1), then fails
    apiserver.server.volumes["mrc-data"] = str(k8s_ws / "runs")  # the wrong volume
    bad = training.launch(_spec(k8s_ws))
    lines = list(training.logs(bad.id, follow=True))
    status = _wait(training, bad.id, ("failed",))
    assert "BackoffLimitExceeded" in status.message
    assert len([p for p in apiserver.server.items(PODS, NS) if p["metadata"]["labels"]["mrc.dev/run"] == bad.id]) == 2
    assert any('"state": "failed"' in line for line in lines)
    training.close()


def test_a_job_that_finished_unwatched_is_collected_by_status_and_registers(apiserver, k8s_ws):
    from console.training import register_result
    from console.workspace import Workspace

    apiserver.server.volumes["mrc-data"] = str(k8s_ws / "data")
    ws = Workspace.open(k8s_ws)
    training = ws.training()
    assert isinstance(training, K8sTraining)
    spec = TrainingSpec("breast-cancer", "breast_cancer@v1", {"epochs": 3}, label="malignant")
    job = training.launch(spec)
    status = _wait(training, job.id, ("succeeded", "failed"), timeout=60)  # nobody followed the log
    assert status.state == "succeeded" and status.progress == 1.0, status
    version = register_result(ws.registry(), ws.audit(), training, job.id, spec, actor="tester")
    assert version.lineage.training_run == job.id and version.lineage.is_complete()
    assert version.lineage.code_commit == spec.code_commit  # recorded at launch, annotated on the Job
    assert version.artifact.sha256 == json.loads((k8s_ws / "runs" / job.id / "result.json").read_text())["model_sha256"]
    assert "candidate" in version.aliases
    training.close()
