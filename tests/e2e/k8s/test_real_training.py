"""GPU training Jobs against the real API server, Job controller (+ TTL controller) and scheduler.

Only the node is a stand-in (tests/support/k8s/node_agent.py). `mrc` runs as the user `mrc`
holding the documented Role; kubectl (admin) only observes.
"""

from __future__ import annotations

import json
import time

import pytest

from backends.base import BackendError, BadInputError, TrainingSpec
from backends.k8s.training import K8sTraining
from tests.support.k8s.emulator import WORKSPACE_TOML, validate_k8s
from tests.support.k8s.real_cluster import wait_for
from tests.support.k8s.real_cluster import workspace_toml  # noqa: F401

pytestmark = pytest.mark.integration
GPU_NODE_SELECTOR = 'node_selector = { "nvidia.com/gpu.present" = "true" }'


def _spec(**params) -> TrainingSpec:
    return TrainingSpec("breast-cancer", "breast_cancer@v1", {"epochs": 3, **params}, gpu=True, label="malignant",
                        code_commit="0" * 40, code_repo="test")


def test_mrc_train_gpu_on_the_real_plane_registers_a_candidate_and_the_ttl_controller_reaps_the_job(
        cluster, k8s_ws, mrc):
    ns = cluster.namespace(data_path=k8s_ws / "data")
    (k8s_ws / "mrc.toml").write_text(workspace_toml(ns, cluster.mrc_kubeconfig, ttl_after_finished_s=5))
    started = time.monotonic()
    result = mrc("train", "breast-cancer", "--backend", "k8s", "--gpu", "--param", "epochs=5",
                 "--workspace", str(k8s_ws))
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "epoch 5/5" in result.stderr  # the pod log, streamed through the API server from the node
    print(f"\nmrc train --backend k8s --gpu on the real plane: {took:.1f} s")

    versions = mrc("versions", "breast-cancer", "--json", "--workspace", str(k8s_ws)).json()["versions"]
    (new,) = versions
    run_id = new["lineage"]["training_run"]
    job = cluster.get("job", f"mrc-train-{run_id}", ns)
    assert job is not None, "the Job should outlive mrc train by its TTL"
    manifest = {k: job[k] for k in ("apiVersion", "kind")} | {
        "metadata": {k: job["metadata"][k] for k in ("name", "namespace", "labels", "annotations")},
        "spec": {k: job["spec"][k] for k in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished",
                                             "template")}}
    validate_k8s(json.loads(json.dumps(manifest)))
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec["tolerations"]
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert job["spec"]["backoffLimit"] == 1 and job["spec"]["activeDeadlineSeconds"] == 21600
    assert job["spec"]["ttlSecondsAfterFinished"] == 5  # kept by the apiserver: the feature gate is on
    assert [c["type"] for c in job["status"]["conditions"] if c["status"] == "True"] == ["Complete"]
    (pod,) = cluster.items("pods", ns, f"mrc.dev/run={run_id}")
    assert pod["spec"]["nodeName"] == cluster.agent.name  # placed by the real scheduler on the GPU node
    assert pod["spec"]["serviceAccountName"] == "default"
    assert any("serviceaccount" in m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"])

    assert "candidate" in new["aliases"] and new["metrics"]["auc_roc"] > 0.5
    assert new["lineage"]["data_sha256"] == job["metadata"]["annotations"]["mrc.dev/data-sha256"]
    # the TTL-after-finished controller deletes the finished Job (and, through GC, its pod)
    wait_for(lambda: cluster.get("job", f"mrc-train-{run_id}", ns) is None, "the TTL controller to delete the Job")
    wait_for(lambda: not cluster.items("pods", ns, f"mrc.dev/run={run_id}"), "the GC to delete the pod")
    status = K8sTraining(k8s_ws, {"namespace": ns, "kubeconfig": str(cluster.mrc_kubeconfig)})
    assert status.status(run_id).state == "succeeded"  # a reaped Job keeps what mrc saw
    status.close()


def test_a_missing_data_claim_is_one_line_exit_2_and_no_job(cluster, k8s_ws, mrc):
    ns = cluster.namespace()  # no PV, no PVC
    (k8s_ws / "mrc.toml").write_text(workspace_toml(ns, cluster.mrc_kubeconfig))
    result = mrc("train", "breast-cancer", "--backend", "k8s", "--gpu", "--workspace", str(k8s_ws))
    assert result.returncode == 2, result.stderr
    (line,) = [l for l in result.stderr.splitlines() if "mrc-data" in l]
    assert "data_claim" in line and ns in line
    assert cluster.items("jobs", ns) == []


def test_without_the_toleration_the_real_scheduler_keeps_the_pod_pending_and_cancel_deletes_in_foreground(
        cluster, k8s_ws):
    ns = cluster.namespace(data_path=k8s_ws / "data")
    training = K8sTraining(k8s_ws, {"namespace": ns, "kubeconfig": str(cluster.mrc_kubeconfig),
                                    "tolerations": [], "poll_s": 0.2})
    job = training.launch(_spec())
    status = wait_for(lambda: (s := training.status(job.id)).state == "pending" and "taint" in s.message and s,
                      "the scheduler's verdict")
    assert "nvidia.com/gpu" in status.message  # the real scheduler's words: the untolerated taint
    assert training.cancel(job.id).state == "cancelled"
    wait_for(lambda: cluster.get("job", f"mrc-train-{job.id}", ns) is None, "the Job gone")
    assert cluster.items("pods", ns, f"mrc.dev/run={job.id}") == []
    training.close()


def test_cancel_kills_the_running_process_and_deadline_and_backoff_fail_the_job(cluster, k8s_ws, tmp_path):
    ns = cluster.namespace(data_path=k8s_ws / "data")
    training = K8sTraining(k8s_ws, {"namespace": ns, "kubeconfig": str(cluster.mrc_kubeconfig), "poll_s": 0.2})
    job = training.launch(_spec(epochs=100000))
    wait_for(lambda: training.status(job.id).state == "running", "the pod running")
    (pod,) = cluster.items("pods", ns, f"mrc.dev/run={job.id}")
    procs = [p for p in cluster.agent.procs.values() if p.poll() is None]
    assert procs, "the node runs the container's process"
    lines = []
    for line in training.logs(job.id, follow=True):  # streamed live: stop after the first progress event
        lines.append(line)
        if '"progress"' in line:
            break
    assert any("data verified" in line for line in lines)
    # foreground deletion: the Job stays until the node confirmed its pod gone (process killed)
    assert training.cancel(job.id).state == "cancelled"
    wait_for(lambda: cluster.get("job", f"mrc-train-{job.id}", ns) is None, "the Job gone after its pod")
    assert all(p.poll() is not None for p in procs)

    # activeDeadlineSeconds: the Job controller fails a run that takes too long
    short = K8sTraining(k8s_ws, {"namespace": ns, "kubeconfig": str(cluster.mrc_kubeconfig), "poll_s": 0.2,
                                 "active_deadline_s": 3})
    slow = short.launch(_spec(epochs=100000))
    status = wait_for(lambda: (s := short.status(slow.id)).state == "failed" and s, "DeadlineExceeded")
    assert "DeadlineExceeded" in status.message
    short.close()

    # backoffLimit: data that is not the recorded bytes fails the pod, the Job retries once, then fails
    wrong = tmp_path / "wrong-data"
    for csv in (k8s_ws / "data").rglob("*.csv"):
        target = wrong / csv.relative_to(k8s_ws / "data")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(csv.read_text().replace("1", "0", 1))
    ns2 = cluster.namespace(data_path=wrong)
    bad_training = K8sTraining(k8s_ws, {"namespace": ns2, "kubeconfig": str(cluster.mrc_kubeconfig), "poll_s": 0.2})
    bad = bad_training.launch(_spec())
    status = wait_for(lambda: (s := bad_training.status(bad.id)).state == "failed" and s, "BackoffLimitExceeded",
                      timeout=180)
    assert "BackoffLimitExceeded" in status.message
    pods = cluster.items("pods", ns2, f"mrc.dev/run={bad.id}")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    logged = cluster.kubectl("logs", "-n", ns2, pods[0]["metadata"]["name"]).stdout  # via the API server
    assert "is not the recorded" in logged and "sha256" in logged
    training.close()
    bad_training.close()
