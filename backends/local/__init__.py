"""The embedded default backend: everything on this machine, in the workspace folder."""

from __future__ import annotations

from typing import Any

from backends.base import BadInputError, check_name
from backends.local.metrics import LocalMetrics
from backends.local.registry import LocalRegistry
from backends.local.tables import create_all
from backends.local.traffic import LocalTraffic
from backends.local.training import LocalTraining
from backends.native.datasets import DatasetStore


class LocalBackend:
    """Factory for the local implementations of each role (see console/workspace.py)."""

    def __init__(self, workspace: Any):
        self.workspace = workspace

    def registry(self, config: dict[str, Any]):
        return LocalRegistry(self.workspace.root, config)

    def training(self, config: dict[str, Any]):
        return LocalTraining(self.workspace.root, config)

    def traffic(self, config: dict[str, Any]):
        return LocalTraffic(self.workspace.root, config)

    def may_serve(self, config: dict[str, Any], model: str) -> bool:
        """False when nothing of the model is served here: LocalTraffic keeps every split and
        server of a model under serving/<model>/, and get_split fails without it. Cheap (a stat,
        no import of the traffic module): a rollback on a remote registry with no local serving
        skips it."""
        try:
            return (self.workspace.root / "serving" / check_name(model, "model")).is_dir()
        except BadInputError:
            return True  # let the traffic backend say what is wrong with the name

    def metrics(self, config: dict[str, Any]):
        return LocalMetrics(self.workspace.root, config)

    def datasets(self):
        return DatasetStore(self.workspace.root)

    def create_tables(self) -> None:
        """mrc.db's tables (datasets, canary state, audit …), whatever backend holds the registry."""
        create_all(str(self.workspace.db_path))
