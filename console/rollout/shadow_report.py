"""A shadow run's report: the router's setting and counters (through the workspace's traffic
backend) and the comparison of the answers it logged (console/rollout/shadow.py). The CLI's `mrc
shadow status` and the console's shadow screen both read it here."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from backends.base import BadInputError
from backends.capabilities import Shadows
from console.release.serving import ensure_served
from console.rollout.shadow import compare, select


def _open_generations(path) -> list:
    """The shadow log and its rotated generations (<path>.1 newest … <path>.N), open, oldest
    first, each file once. The live file is opened first: a rotation while this runs moves it
    to <path>.1, which is then the same file (same inode) and read once; so a window spanning
    a rotation is complete up to the moment the live file was opened."""
    path = Path(path)
    handles = []
    try:
        handles.append(open(path, encoding="utf-8"))
    except FileNotFoundError:
        pass
    numbers = [int(p.name.rsplit(".", 1)[1]) for p in path.parent.glob(f"{path.name}.*")
               if p.name.rsplit(".", 1)[1].isdigit()]
    for number in range(1, max(numbers, default=0) + 2):  # +1: a rotation during the scan shifts them up
        try:
            handles.insert(0, open(path.with_name(f"{path.name}.{number}"), encoding="utf-8"))
        except FileNotFoundError:
            continue
    seen, out = set(), []
    for fh in handles:
        st = os.fstat(fh.fileno())
        if (st.st_dev, st.st_ino) in seen:
            fh.close()
        else:
            seen.add((st.st_dev, st.st_ino))
            out.append(fh)
    return out


def read_records(path, version: str, since: float | None) -> list[dict[str, Any]]:
    """The shadow log's records of one run, its rotated generations included; a torn last
    line (the router writing) is skipped."""
    out = []
    for fh in _open_generations(path):
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
    traffic = traffic if traffic is not None else ws.traffic()
    if not isinstance(traffic, Shadows):
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


SHADOW_STEP = "shadow"


def split_shadow_step(plan_text: str) -> tuple[bool, str]:
    """"shadow,5,25,50,100" -> (True, "5,25,50,100"): a canary plan whose first step mirrors
    traffic to the candidate (0 % of users) until the judge passes it."""
    parts = [p.strip() for p in (plan_text or "").split(",")]
    if parts and parts[0].lower() == SHADOW_STEP:
        if any(p.lower() == SHADOW_STEP for p in parts[1:]):
            raise BadInputError(f"--plan {plan_text!r}: `shadow` can only be the first step")
        return True, ",".join(parts[1:])
    if any(p.lower() == SHADOW_STEP for p in parts):
        raise BadInputError(f"--plan {plan_text!r}: `shadow` can only be the first step")
    return False, plan_text


def shadow_step(ws, model: str, stable: str, candidate: str, *, actor: str, registry, traffic=None,
                sample: float = 1.0, min_s: float, timeout_s: float, poll_s: float,
                progress=None, clock=None, sleep=None, **judge) -> dict[str, Any]:
    """The shadow first step of a canary: mirror to the candidate (users stay on stable) until
    the judge passes it (not before min_s), fails it, or timeout_s passes (fails closed).
    Mirroring stops in every case; start and stop are audited. The last report, with
    "outcome": "pass" | "fail" | "timeout"."""
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    traffic = traffic if traffic is not None else ws.traffic()
    if not isinstance(traffic, Shadows):
        raise BadInputError(f"{ws.config_path}: the traffic backend cannot mirror requests (local only): "
                            "drop `shadow` from --plan")
    ensure_served(ws, model, [stable, candidate], traffic=traffic, registry=registry)  # stable first: it serves
    before = traffic.get_shadow(model)
    started = traffic.set_shadow(model, candidate, sample=sample, expected_revision=int(before.get("revision", 0)))
    audit = ws.audit()
    audit.append(actor, "shadow-start", model, candidate, {"sample": sample, "revision": started.get("revision"),
                                                            "canary_step": True, "stable": stable})
    began = clock()
    outcome, report = "timeout", None
    try:
        while True:
            sleep(poll_s)
            report = shadow_report(ws, model, traffic=traffic, **judge)
            verdict = report["comparison"]["verdict"]
            elapsed = clock() - began
            if progress is not None:
                c = report["comparison"]
                progress(f"shadow {candidate}: {c['requests']} mirrored requests, verdict {verdict} ({elapsed:.0f} s)")
            if verdict == "fail":
                outcome = "fail"
                break
            if verdict == "pass" and elapsed >= min_s:
                outcome = "pass"
                break
            if elapsed >= timeout_s:
                break
    finally:
        now = traffic.get_shadow(model)
        if (now.get("shadow") or {}).get("version") == candidate:
            traffic.set_shadow(model, None, expected_revision=int(now.get("revision", 0)))
        comparison = (report or {}).get("comparison") or {}
        audit.append(actor, "shadow-stop", model, candidate, {
            "canary_step": True, "outcome": outcome, "counters": now.get("counters", {}),
            "verdict": comparison.get("verdict"), "reason": comparison.get("reason", "")[:500]})
    report = dict(report or {})
    report.pop("_comparison", None)
    report["outcome"] = outcome
    return report
