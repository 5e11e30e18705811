"""MLflow as the registry: registered models, versions, aliases, tags, runs and dataset inputs.

Importing this package imports nothing heavy: mlflow is imported when the registry is first used.
"""

from __future__ import annotations

from typing import Any

from backends.mlflow.registry import MlflowRegistry


class MlflowBackend:
    """Factory for the MLflow registry (see console/workspace.py)."""

    def __init__(self, workspace: Any):
        self.workspace = workspace

    def registry(self, config: dict[str, Any]):
        return MlflowRegistry.from_config(config, where=str(self.workspace.config_path))
