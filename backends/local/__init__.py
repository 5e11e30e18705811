"""The embedded default backend: everything on this machine, in the workspace folder."""

from __future__ import annotations

from typing import Any


class LocalBackend:
    """Factory for the local implementations of each role (see console/workspace.py)."""

    def __init__(self, workspace: Any):
        self.workspace = workspace

    def registry(self, config: dict[str, Any]):
        from backends.local.registry import LocalRegistry

        return LocalRegistry(self.workspace.root, config)

    def training(self, config: dict[str, Any]):
        from backends.local.training import LocalTraining

        return LocalTraining(self.workspace.root, config)

    def traffic(self, config: dict[str, Any]):
        from backends.local.traffic import LocalTraffic

        return LocalTraffic(self.workspace.root, config)

    def metrics(self, config: dict[str, Any]):
        from backends.local.metrics import LocalMetrics

        return LocalMetrics(self.workspace.root, config)

    def datasets(self):
        from backends.local.datasets import DatasetStore

        return DatasetStore(self.workspace.root)

    def create_tables(self) -> None:
        """mrc.db's tables (datasets, canary state, audit …), whatever backend holds the registry."""
        from backends.local.tables import create_all

        create_all(str(self.workspace.db_path))
