"""A real control plane (etcd, kube-apiserver, controller-manager, scheduler: tests/support/k8s/) once per session.

The binaries come from tests/support/k8s/build.sh (tests/run.sh runs it); when they are
missing the fixture FAILS, it does not skip. The one stand-in is the node agent (a GPU node
that runs pod commands as local processes). Each test gets its own namespace bound to the
least-privilege Role documented in docs/kubernetes.md, and `mrc` talks to the API server as
the user `mrc`, who holds nothing else; kubectl (admin) only sets up and observes.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.k8s.plane import ControlPlane, MissingBinaries, binaries, write_kubeconfig
from tests.support.k8s.emulator import WORKSPACE_TOML

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs" / "kubernetes.md"
MRC_USER = "mrc"
MODEL = "breast-cancer"
STORAGE = "s3://models/$model/$version"


def documented_role() -> dict:
    """The Role block of docs/kubernetes.md: the tests bind what the docs say, nothing more."""
    import yaml

    text = DOCS.read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "kind: Role" in b]
    return yaml.safe_load(block)


@dataclass
class Cluster:
    plane: ControlPlane
    agent: object
    mrc_kubeconfig: Path
    started_s: float

    def kubectl(self, *args: str, check: bool = True, input: str | None = None):
        return self.plane.kubectl(*args, check=check, input=input)

    def get(self, kind: str, name: str, namespace: str) -> dict | None:
        result = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise RuntimeError(result.stderr)
        return json.loads(result.stdout)

    def items(self, kind: str, namespace: str, selector: str | None = None) -> list[dict]:
        args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
        return json.loads(self.kubectl(*args).stdout)["items"]

    def apply(self, *objects: dict) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": list(objects)}))

    def namespace(self, *, rules: list[dict] | None = None, data_path: Path | None = None) -> str:
        """A fresh namespace: the Role (documented rules unless given) bound to `mrc`, the default
        service account's token, and — with data_path — a hostPath PV pre-bound to the PVC `mrc-data`."""
        name = f"ml-{secrets.token_hex(3)}"
        role = documented_role()
        role["metadata"] = {"name": "mrc", "namespace": name}
        if rules is not None:
            role["rules"] = rules
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "mrc", "namespace": name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mrc"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": MRC_USER}]}
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self.apply(role, binding)
        if data_path is not None:
            self.data_volume(name, data_path)
        self.plane.wait_default_token(name)
        return name

    def data_volume(self, namespace: str, path: Path, claim: str = "mrc-data") -> None:
        pv = f"{namespace}-{claim}"
        self.apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                    "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
                             "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                             "hostPath": {"path": str(path)},
                             "claimRef": {"namespace": namespace, "name": claim}}},
                   {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim, "namespace": namespace},
                    "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                             "resources": {"requests": {"storage": "1Gi"}}}})
        wait_for(lambda: (self.get("pvc", claim, namespace) or {}).get("status", {}).get("phase") == "Bound",
                 f"PVC {claim} bound", 60)


def wait_for(condition, what: str, timeout: float = 120, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    from tests.support.k8s.node_agent import NodeAgent

    try:
        binaries()
    except MissingBinaries as exc:
        pytest.fail(str(exc), pytrace=False)
    started = time.monotonic()
    plane = ControlPlane(tmp_path_factory.mktemp("k8s-plane")).start()
    agent = None
    try:
        agent = NodeAgent(plane).start()
        mrc_cert = plane.pki.issue("mrc-user", MRC_USER)  # no groups: only what the Role grants
        kubeconfig = write_kubeconfig(plane.root / "mrc.kubeconfig", plane.server, plane.pki.ca, *mrc_cert,
                                      user=MRC_USER)
        cluster = Cluster(plane, agent, kubeconfig, 0.0)
        wait_for(lambda: _node_ready(cluster, agent.name), "the GPU node Ready", 60)
        cluster.started_s = time.monotonic() - started
        print(f"\nreal control plane: apiserver ready {plane.timings['apiserver_s']:.1f} s, "
              f"plane {plane.timings['plane_s']:.1f} s, with node {cluster.started_s:.1f} s")
        yield cluster
    finally:
        if agent is not None:
            agent.stop()
        plane.cleanup()


def _node_ready(cluster: Cluster, name: str) -> bool:
    node = cluster.get("node", name, "default") or {}
    ready = [c for c in (node.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
    taints = (node.get("spec") or {}).get("taints") or []
    # the node lifecycle controller lifts its not-ready taint once it has seen the heartbeat
    return bool(ready) and ready[0]["status"] == "True" and \
        not any(t["key"].startswith("node.kubernetes.io/") for t in taints)


@pytest.fixture(scope="session")
def crd(cluster):
    """Installs the CRD once; returns what mrc said while it was missing."""
    from backends.k8s.traffic import KServeTraffic
    from tests.support.k8s.kserve_crd import inferenceservice_crd

    ns = cluster.namespace()
    traffic = KServeTraffic({"namespace": ns, "storage_uri": STORAGE, "kubeconfig": str(cluster.mrc_kubeconfig)})
    try:
        traffic.get_split(MODEL)
        missing = None
    except Exception as exc:  # noqa: BLE001 - the test below judges it
        missing = exc
    traffic.close()
    cluster.apply(inferenceservice_crd())
    cluster.kubectl("wait", "--for", "condition=Established", "crd/inferenceservices.serving.kserve.io",
                    "--timeout", "60s")
    return missing


def isvc(namespace: str, mode: str, version: str) -> dict:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": MODEL, "namespace": namespace,
                         "annotations": {"serving.kserve.io/deploymentMode": mode}},
            "spec": {"predictor": {"minReplicas": 1, "model": {
                "modelFormat": {"name": "pytorch"}, "storageUri": f"s3://models/{MODEL}/{version}"}}}}


def workspace_toml(namespace: str, kubeconfig, **training) -> str:
    toml = WORKSPACE_TOML.replace('namespace = "ml"', f'namespace = "{namespace}"\nkubeconfig = "{kubeconfig}"')
    toml = toml.replace("gpus = 1", "gpus = 0")  # the GPU comes from --gpu
    for key, value in training.items():
        toml = toml.replace("[training]\n", f"[training]\n{key} = {json.dumps(value)}\n")
    return toml
