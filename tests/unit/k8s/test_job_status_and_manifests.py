"""The pure parts of the k8s backends: Job/pod status reading, mode detection, the patches, the manifest."""

from __future__ import annotations

import pytest

from backends.base import BadInputError, TrainingSpec
from backends.k8s.training import K8sTraining, job_state, pod_message, waiting_reason
from backends.k8s.traffic import KServeTraffic, detect_mode
from tests.support.k8s.emulator import validate_isvc, validate_k8s


def test_job_and_pod_status_are_read_as_kubernetes_writes_them():
    assert job_state({"status": {}}) == ("pending", "waiting for a pod")
    assert job_state({"status": {"active": 1}})[0] == "running"
    assert job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})[0] == "succeeded"
    state, message = job_state({"status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too long"}]}})
    assert (state, message) == ("failed", "DeadlineExceeded: too long")
    assert job_state({"status": {"conditions": [{"type": "Complete", "status": "False"}]}})[0] == "pending"
    pulling = {"status": {"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]}}
    assert pod_message(pulling) == "ImagePullBackOff: no such image"
    assert pod_message({"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}]}}) \
        == "Unschedulable: 0/3 nodes"


def test_why_no_pod_runs_is_the_clusters_newest_word():
    unschedulable = {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}]}}
    assert waiting_reason(None, []) == "no pod created yet"
    assert waiting_reason(unschedulable, []) == "Unschedulable: 0/1 nodes"
    # the Job controller could not create the pod: only the Job's events say why
    failed_create = {"type": "Warning", "reason": "FailedCreate", "count": 3,
                     "lastTimestamp": "2026-12-01T20:00:05Z",
                     "message": 'Error creating: pods "p" is forbidden: serviceaccount "nobody" not found'}
    assert waiting_reason(None, [failed_create]) == \
        'FailedCreate: Error creating: pods "p" is forbidden: serviceaccount "nobody" not found'
    # the newest event wins, whichever API wrote it: eventTime (events.k8s.io, microseconds) or lastTimestamp;
    # a multi-line message is one line
    scheduled_late = {"type": "Normal", "reason": "Scheduled", "eventTime": "2026-12-01T20:00:05.500000Z",
                      "message": "Successfully assigned\nns/p to gpu-node-1"}
    assert waiting_reason(unschedulable, [failed_create, scheduled_late]) == \
        "Scheduled: Successfully assigned ns/p to gpu-node-1"
    repeated = {"type": "Warning", "reason": "FailedScheduling", "eventTime": "2026-12-01T19:59:00.000000Z",
                "series": {"count": 4, "lastObservedTime": "2026-12-01T20:00:06.000000Z"}, "message": "0/1 nodes"}
    assert waiting_reason(unschedulable, [scheduled_late, repeated]) == "FailedScheduling: 0/1 nodes"
    # a container held waiting is the pod's current trouble, whatever the events said before
    pulling = {"status": {"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied"}}}]}}
    assert waiting_reason(pulling, [repeated]) == "ErrImagePull: pull access denied"


def isvc(mode: str | None, uri: str = "s3://m/x/2", **predictor) -> dict:
    meta = {"name": "x", "namespace": "s", "resourceVersion": "7"}
    if mode:
        meta["annotations"] = {"serving.kserve.io/deploymentMode": mode}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": meta,
            "spec": {"predictor": {"model": {"modelFormat": {"name": "pytorch"}, "storageUri": uri}, **predictor}}}


def test_mode_is_detected_or_refused_never_guessed():
    assert detect_mode(isvc("Serverless")) == "serverless"
    assert detect_mode(isvc("RawDeployment")) == "standard"
    assert detect_mode(isvc("Standard")) == "standard"
    assert detect_mode(isvc(None)) is None
    bare = isvc(None)
    bare["status"] = {"components": {"predictor": {"traffic": [{"percent": 100}]}}}
    assert detect_mode(bare) == "serverless"
    traffic = KServeTraffic({"storage_uri": "s3://m/$model/$version"})
    with pytest.raises(BadInputError, match="set mode"):
        traffic.patch_for("x", isvc(None), {"2": 90, "3": 10})
    forced = KServeTraffic({"storage_uri": "s3://m/$model/$version", "mode": "serverless"})
    with pytest.raises(BadInputError, match="runs in standard mode"):
        forced.patch_for("x", isvc("RawDeployment"), {"2": 90, "3": 10})


@pytest.mark.parametrize("weights", [{"2": 90, "3": 20}, {"2": 50, "3": 25, "4": 25}, {"2": 100.0}, {"2": -1, "3": 101},
                                     {"../2": 90, "3": 10}])
def test_bad_weights_are_refused_before_any_write(weights):
    traffic = KServeTraffic({"storage_uri": "s3://m/$model/$version"})
    with pytest.raises(BadInputError):
        traffic.patch_for("x", isvc("Serverless"), weights)


def test_serverless_patches_and_the_rollback_restores_the_model():
    from tests.support.k8s.apiserver import merge_patch

    traffic = KServeTraffic({"storage_uri": "s3://m/$model/$version"})
    start = traffic.patch_for("x", isvc("Serverless"), {"2": 95, "3": 5})
    assert start["spec"]["predictor"] == {"canaryTrafficPercent": 5, "model": {"storageUri": "s3://m/x/3"}}
    during = merge_patch(isvc("Serverless"), start)
    validate_isvc(during)
    assert traffic.split_of("x", during, from_status=False).weights == {"2": 95, "3": 5}
    rollback = merge_patch(during, traffic.patch_for("x", during, {"2": 100}))
    assert rollback["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert rollback["spec"]["predictor"]["model"]["storageUri"] == "s3://m/x/2"
    promote = merge_patch(during, traffic.patch_for("x", during, {"3": 100}))
    assert "canaryTrafficPercent" not in promote["spec"]["predictor"]
    assert promote["spec"]["predictor"]["model"]["storageUri"] == "s3://m/x/3"
    for obj in (rollback, promote):
        validate_isvc(obj)


def test_job_manifest_is_valid_kubernetes_with_and_without_gpus(tmp_path):
    spec = TrainingSpec("m", "d@v1", {"epochs": 3}, code_commit="a" * 40, code_repo="repo")
    trainer_spec = {"run_id": "r1", "label": "y", "params": {}, "gpu": True,
                    "train_data": {"ref": "d@v1", "path": "d/v1.csv", "sha256": "0" * 64}}
    gpu = K8sTraining(tmp_path, {"cpu": "2", "memory": "4Gi", "service_account": "trainer"}).manifest("r1", spec, trainer_spec)
    validate_k8s(gpu)
    pod = gpu["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"},
                                                 "requests": {"cpu": "2", "memory": "4Gi"}}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu" and pod["serviceAccountName"] == "trainer"
    cpu = K8sTraining(tmp_path, {"gpus": 0}).manifest("r1", spec, trainer_spec)
    validate_k8s(cpu)
    assert "tolerations" not in cpu["spec"]["template"]["spec"]
    assert cpu["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {}}
    with pytest.raises(BadInputError, match="backoff_limit must be an integer"):
        K8sTraining(tmp_path, {"backoff_limit": "2"})
    with pytest.raises(BadInputError, match="tolerations must be a list"):
        K8sTraining(tmp_path, {"tolerations": {"key": "x"}})
