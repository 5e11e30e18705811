"""Kubernetes: GPU training Jobs (batch/v1) and KServe InferenceService canaries, via lightkube.

Nothing here imports lightkube at module level: `mrc` start-up and the rollback path pay for
the Kubernetes client only when a k8s role is actually used.
"""

from __future__ import annotations

from typing import Any


# Each role's module is imported when the role is asked for: a workspace that uses one role of
# the cluster (KServe traffic, say) does not load the other.
class K8sBackend:
    """Factory for the training and traffic roles (see console/workspace.py)."""

    def __init__(self, workspace: Any):
        self.workspace = workspace

    def training(self, config: dict[str, Any]):
        from backends.k8s.training import K8sTraining

        return K8sTraining.from_config(self.workspace, config)

    def traffic(self, config: dict[str, Any]):
        from backends.k8s.traffic import KServeTraffic

        return KServeTraffic.from_config(self.workspace, config)
