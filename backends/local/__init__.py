"""The embedded default backend: everything on this machine, in the workspace folder."""

from __future__ import annotations

from typing import Any


# Each role's module is imported when the role is asked for: a workspace whose registry is S3 or
# MLflow still opens LocalBackend (mrc.db's tables, the dataset store) and must not pay for the
# local registry (sqlmodel: ~0.4 s), the traffic router or the trainer it does not use.
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

    def may_serve(self, config: dict[str, Any], model: str) -> bool:
        """False when nothing of the model is served here: LocalTraffic keeps every split and
        server of a model under serving/<model>/, and get_split fails without it. Cheap (a stat,
        no import of the traffic module): a rollback on a remote registry with no local serving
        skips it."""
        from backends.base import BadInputError, check_name

        try:
            return (self.workspace.root / "serving" / check_name(model, "model")).is_dir()
        except BadInputError:
            return True  # let the traffic backend say what is wrong with the name

    def metrics(self, config: dict[str, Any]):
        from backends.local.metrics import LocalMetrics

        return LocalMetrics(self.workspace.root, config)

    def datasets(self):
        from backends.native.datasets import DatasetStore

        return DatasetStore(self.workspace.root)

    def create_tables(self) -> None:
        """mrc.db's tables (datasets, canary state, audit …), whatever backend holds the registry."""
        from backends.local.tables import create_all

        create_all(str(self.workspace.db_path))
