"""A shadow run's report: the router's setting and counters (through the workspace's traffic
backend) and the comparison of the answers it logged (console/shadow.py). The CLI's `mrc
shadow status` and the console's shadow screen both read it here."""

from __future__ import annotations

import json
from typing import Any

from backends.base import BadInputError


def read_records(path, version: str, since: float | None) -> list[dict[str, Any]]:
    """The shadow log's records of one run; a torn last line (the router writing) is skipped."""
    from console.shadow import select

    out = []
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        return out
    with fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return select(out, version, since)


def shadow_report(ws, model: str, *, traffic=None, **judge) -> dict[str, Any]:
    """{"model", "shadow" (the run: version, sample, started_at, stopped_at?), "active",
    "counters", "comparison"}, or BadInputError when the model never had a shadow."""
    from console.shadow import compare

    traffic = traffic if traffic is not None else ws.traffic()
    if not hasattr(traffic, "get_shadow"):
        raise BadInputError(f"{ws.config_path}: the traffic backend cannot mirror requests (local only)")
    state = traffic.get_shadow(model)
    run = state.get("shadow") or state.get("last")
    if not run:
        raise BadInputError(f"{model}: no shadow yet (run `mrc shadow start {model} VERSION`)")
    records = read_records(traffic.shadow_log_path(model), run["version"], run.get("started_at"))
    if run.get("stopped_at") is not None:
        records = [r for r in records if float(r.get("t") or 0.0) <= run["stopped_at"]]
    task = str(ws.model_config(model).get("task") or "binary")
    comparison = compare(records, task=task, **judge)
    return {"model": model, "shadow": run, "active": state.get("shadow") is not None, "live": state.get("live"),
            "counters": state.get("counters") or {}, "comparison": comparison.to_dict(), "_comparison": comparison}
