"""A real control plane (etcd, kube-apiserver, controller-manager, scheduler) once per session."""

from tests.support.k8s.real_cluster import cluster, crd  # noqa: F401  (fixtures)
from tests.support.k8s.emulator import apiserver, k8s_ws, k8s_ws_template  # noqa: F401  (fixtures)
from tests.support.tiers import group_folder  # noqa: E402


def pytest_collection_modifyitems(items):
    group_folder(items, __file__, "k8s-control-plane")  # one real control plane per run, not one per worker
