"""A run whose pod cannot start says why, from the real scheduler and Job controller, and stops waiting.

The reason is the cluster's newest word about the pod (the scheduler's FailedScheduling event) or,
while the Job has no pod at all, about the Job (the Job controller's FailedCreate: admission refused
the pod). `mrc train` prints it as one line per change, and after `start_timeout_s` fails with it
and deletes the Job.
"""

from __future__ import annotations

import pytest

from backends.base import TrainingSpec
from backends.k8s.training import K8sTraining
from tests.support.k8s.real_cluster import wait_for
from tests.support.k8s.real_cluster import workspace_toml

pytestmark = pytest.mark.integration


def test_mrc_train_asking_for_more_gpus_than_any_node_has_shows_the_schedulers_reason_then_fails_with_it(
        cluster, k8s_ws, mrc):
    ns = cluster.namespace(data_path=k8s_ws / "data")
    toml = workspace_toml(ns, cluster.mrc_kubeconfig, start_timeout_s=30).replace("gpus = 0", "gpus = 8")
    (k8s_ws / "mrc.toml").write_text(toml)
    result = mrc("train", "breast-cancer", "--backend", "k8s", "--gpu", "--workspace", str(k8s_ws))
    assert result.returncode == 4, result.stderr
    lines = result.stderr.splitlines()
    waiting = [line for line in lines if line.startswith("pod not started: ")]
    # the real scheduler's words (1.20: "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    assert any("0/1 nodes are available" in line and "Insufficient nvidia.com/gpu" in line for line in waiting), lines
    assert all(a != b for a, b in zip(waiting, waiting[1:])), waiting  # a new line only when the reason changes
    assert len(waiting) < 10, waiting  # not one per poll (poll_s = 0.1 over 30 s)
    (failure,) = [line for line in lines if "no pod started within 30 s" in line]
    assert "failed" in failure and "Insufficient nvidia.com/gpu" in failure
    print("\n" + "\n".join(waiting + [failure]))
    wait_for(lambda: not cluster.items("jobs", ns), "the Job deleted")  # foreground: gone once its pod is
    versions = mrc("versions", "breast-cancer", "--json", "--workspace", str(k8s_ws))
    assert versions.returncode == 2 and "unknown model" in versions.stderr  # nothing registered


def test_a_pod_the_api_server_refuses_to_create_is_explained_by_the_jobs_event_then_given_up(cluster, k8s_ws):
    ns = cluster.namespace(data_path=k8s_ws / "data")
    config = {"namespace": ns, "kubeconfig": str(cluster.mrc_kubeconfig), "poll_s": 0.2,
              "service_account": "nobody"}
    training = K8sTraining(k8s_ws, config)
    job = training.launch(TrainingSpec("breast-cancer", "breast_cancer@v1", {"epochs": 1}, gpu=True,
                                       label="malignant", code_commit="0" * 40, code_repo="test"))
    status = wait_for(lambda: (s := training.status(job.id)).state == "pending" and "FailedCreate" in s.message
                      and s, "the Job controller's FailedCreate event")
    assert 'serviceaccount "nobody" not found' in status.message and "\n" not in status.message
    assert cluster.items("pods", ns, f"mrc.dev/run={job.id}") == []  # no pod: only the Job's event could say

    impatient = K8sTraining(k8s_ws, {**config, "start_timeout_s": 1})  # same run, a shorter bound
    failed = wait_for(lambda: (s := impatient.status(job.id)).state == "failed" and s, "the run given up")
    assert failed.message.startswith("no pod started within 1 s (Job deleted): FailedCreate: ")
    assert 'serviceaccount "nobody" not found' in failed.message
    wait_for(lambda: cluster.get("job", f"mrc-train-{job.id}", ns) is None, "the Job deleted")
    assert training.status(job.id).state == "failed"  # recorded: a later look does not revive it
    training.close()
    impatient.close()
