"""Least privilege on the real API server's RBAC: the documented Role suffices, and every rule in it is needed.

mrc runs as the user `mrc`, bound only to the Role block of docs/kubernetes.md. The whole flow
(launch, status, log, cancel, why a pod cannot start; read and patch an InferenceService) passes with it; with any one
rule removed, the flow fails at the step that needs it with one line naming the verb and the
resource (the API server's own words).
"""

from __future__ import annotations

import pytest

from backends.base import BackendError, TrainingSpec
from backends.k8s.traffic import KServeTraffic
from backends.k8s.training import K8sTraining
from tests.support.k8s.real_cluster import MODEL, STORAGE, documented_role, isvc, wait_for
from tests.support.k8s.real_cluster import workspace_toml

pytestmark = pytest.mark.integration


def flow(cluster, ws, ns: str) -> None:
    """Every Kubernetes call mrc makes, in order; raises at the first the Role does not allow."""
    config = {"namespace": ns, "kubeconfig": str(cluster.mrc_kubeconfig), "poll_s": 0.2}
    training = K8sTraining(ws, config)
    traffic = KServeTraffic({**config, "storage_uri": STORAGE})
    try:
        job = training.launch(TrainingSpec(MODEL, "breast_cancer@v1", {"epochs": 100000}, gpu=True,
                                           label="malignant", code_commit="0" * 40, code_repo="test"))
        wait_for(lambda: training.status(job.id).state == "running", "the pod running")
        for line in training.logs(job.id, follow=True):
            if "data verified" in line:
                break
        assert training.cancel(job.id).state == "cancelled"
        # a pod that cannot start (GPU taint not tolerated): why comes from the events about it
        stuck = K8sTraining(ws, {**config, "tolerations": []})
        try:
            held = stuck.launch(TrainingSpec(MODEL, "breast_cancer@v1", {"epochs": 1}, gpu=True, label="malignant",
                                             code_commit="0" * 40, code_repo="test"))
            wait_for(lambda: "taint" in stuck.status(held.id).message, "the scheduler's reason")
            assert stuck.cancel(held.id).state == "cancelled"
        finally:
            stuck.close()
        split = traffic.get_split(MODEL)
        traffic.set_split(MODEL, {"2": 90, "5": 10}, expected_revision=split.revision)
    finally:
        training.close()
        traffic.close()


def rule_id(rule: dict) -> str:
    return f"{rule['verbs'][0]} {rule['resources'][0]}.{rule['apiGroups'][0] or 'core'}"


RULES = documented_role()["rules"]


def _namespace(cluster, ws, rules):
    ns = cluster.namespace(rules=rules, data_path=ws / "data")
    cluster.apply(isvc(ns, "Serverless", "2"))
    return ns


def test_the_documented_role_is_enough(cluster, crd, k8s_ws):
    assert all(len(r["verbs"]) == 1 and len(r["resources"]) == 1 for r in RULES)
    ns = _namespace(cluster, k8s_ws, RULES)
    flow(cluster, k8s_ws, ns)
    assert cluster.get("inferenceservice", MODEL, ns)["spec"]["predictor"]["canaryTrafficPercent"] == 10
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.parametrize("missing", RULES, ids=rule_id)
def test_each_rule_is_needed_and_its_absence_is_one_line(cluster, crd, k8s_ws, missing):
    ns = _namespace(cluster, k8s_ws, [r for r in RULES if r is not missing])
    with pytest.raises(BackendError) as raised:
        flow(cluster, k8s_ws, ns)
    message = str(raised.value)
    verb, resource = missing["verbs"][0], missing["resources"][0]
    assert "\n" not in message
    assert f'cannot {verb} resource "{resource}"' in message, message
    assert ns in message
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_mrc_train_without_create_on_jobs_says_so_in_one_line(cluster, k8s_ws, mrc):
    rules = [r for r in RULES if not (r["resources"] == ["jobs"] and r["verbs"] == ["create"])]
    ns = cluster.namespace(rules=rules, data_path=k8s_ws / "data")
    (k8s_ws / "mrc.toml").write_text(workspace_toml(ns, cluster.mrc_kubeconfig))
    result = mrc("train", "breast-cancer", "--backend", "k8s", "--gpu", "--workspace", str(k8s_ws))
    assert result.returncode == 4, result.stderr
    (line,) = [l for l in result.stderr.splitlines() if "forbidden" in l]
    assert 'cannot create resource "jobs" in API group "batch"' in line and ns in line
    assert cluster.items("jobs", ns) == []
