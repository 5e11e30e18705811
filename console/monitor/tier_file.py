"""The last monitor round's tier per model (monitor/MODEL/tier.json), stdlib only: home reads it
before its first paint without importing numpy or the monitor."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from backends.base import check_name


def tier_path(ws, model: str) -> Path:
    return Path(ws.root) / "monitor" / check_name(model, "model") / "tier.json"


def read_tier(ws, model: str) -> dict[str, Any] | None:
    try:
        data = json.loads(tier_path(ws, model).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_tier(ws, model: str, report: dict[str, Any]) -> None:
    path = tier_path(ws, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    top = (report.get("features") or [{}])[0]
    tmp = path.with_name(f".tier.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"tier": report["tier"], "at": report["window"]["end"], "window": report["window"]["name"],
                               "production": report.get("production"), "worst": top.get("name"), "psi": top.get("psi")}))
    os.replace(tmp, path)
