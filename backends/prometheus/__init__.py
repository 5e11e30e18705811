"""Prometheus: canary health windows from PromQL over the HTTP API (httpx, no client library)."""

from __future__ import annotations

from typing import Any

from backends.prometheus.metrics import PrometheusMetrics


class PrometheusBackend:
    """Factory for the metrics role (see console/workspace.py)."""

    def __init__(self, workspace: Any):
        self.workspace = workspace

    def metrics(self, config: dict[str, Any]):
        return PrometheusMetrics.from_config(config, where=str(getattr(self.workspace, "config_path", "mrc.toml")))
