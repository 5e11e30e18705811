"""The seed article's bucket layout on any S3 API (AWS, SeaweedFS, MinIO …).

Importing this package imports nothing heavy: boto3 is imported when the registry first talks
to the bucket, so `mrc rollback` on S3 stays light.
"""

from __future__ import annotations

from typing import Any

from backends.s3.registry import S3Registry


class S3Backend:
    """Factory for the S3 registry (see console/workspace.py)."""

    def __init__(self, workspace: Any):
        self.workspace = workspace

    def registry(self, config: dict[str, Any]):
        return S3Registry.from_config(config, where=str(self.workspace.config_path))
