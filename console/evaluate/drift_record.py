"""Where a version's drift verdict is kept, and reading it back: stdlib only, so home's first
paint reads the drift column without importing numpy (console/evaluate/drift.py computes and records it)."""

from __future__ import annotations

import json
from pathlib import Path

from backends.base import CANDIDATE, check_name


def _reports_dir(ws, model: str) -> Path:
    return Path(ws.root) / "reports" / model


def _status_path(ws, model: str, version: str) -> Path:
    return _reports_dir(ws, model) / f"drift-{check_name(version, 'version')}.json"


def recorded_status(ws, model: str, version: str | None = None) -> str | None:
    """The last drift severity recorded for a version ("none"/"warning"/"critical"), or None;
    without a version, the candidate's."""
    if version is None:
        version = ws.registry().get_pointers(model).get(CANDIDATE)
        if not version:
            return None
    try:
        data = json.loads(_status_path(ws, model, version).read_text())
    except (OSError, ValueError):
        return None
    severity = data.get("severity") if isinstance(data, dict) else None
    return severity if severity in ("none", "warning", "critical") else None
