"""What the screens' workers call: backend reads shaped for one screen. Runs in threads only.

Nothing here is imported by the event loop for its side effects; the heavy engines (gates,
drift: torch, scipy) are imported inside the functions that need them, and their absence is
reported as "unavailable" rather than breaking the console.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from backends.base import NotFoundError
from backends.support.dbfile import connect_db
from console.overview import model_overviews
from console.release.actions import UNREVIEWED, approval_tally, rollback_target
from console.release.audit import verify_chain
from console.release.policy import rollback_policy, workspace_policy
from screens.presenters import HomeRow


def optional(module: str, attr: str):
    """A function from an engine that may not be installed or built yet; None when absent."""
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


@dataclass
class HomeData:
    rows: list[HomeRow]
    versions: list[Any] = field(default_factory=list)  # every ModelVersion of every model
    error: str = ""


def load_home(ws, gate_cache: dict[tuple[str, str], Any], *, with_versions: bool = True) -> HomeData:
    registry = ws.registry()
    listed: dict[str, list[Any]] | None = {} if with_versions else None  # filled by the per-model path
    try:
        overviews = model_overviews(registry, listings=listed)
    except NotFoundError:
        return HomeData([], [], "")  # an empty registry: nothing registered yet
    drift_status = optional("console.evaluate.drift_record", "recorded_status")  # stdlib only: no numpy before the first paint
    # the controller (and its statistics) is imported only when mrc.db holds a canary at all
    canaries = _canaries(ws, [o.summary.name for o in overviews]) if _has_canaries(ws.db_path) else {}
    rows: list[HomeRow] = []
    versions: list[Any] = []
    protected = _home_policy(ws)
    watched = isinstance(ws.config.get("monitor"), dict)
    read_tier = optional("console.monitor.tier_file", "read_tier") if watched else None  # nothing without [monitor]
    watched = watched and read_tier is not None
    every_version = getattr(registry, "list_all_versions", None)
    if with_versions and every_version is not None and not listed:
        listed = every_version()  # one read instead of one per model
    for overview in overviews:
        summary = overview.summary
        pointers = summary.pointers
        production, candidate = pointers.get("production"), pointers.get("candidate")
        if with_versions:
            in_listing = listed is not None and summary.name in listed
            versions.extend(listed[summary.name] if in_listing else registry.list_versions(summary.name))
        approval = None
        gate = None
        mv = overview.versions.get(candidate) if candidate else None
        if mv is not None:
            approval = mv.approval.status
            report = gate_cache.get((summary.name, candidate))
            if report is not None:
                gate = ("failed" if not report.passed else
                        "passed" if getattr(report, "complete", True) else "incomplete")
            elif mv.approval.gate_report_sha256:  # evaluated at approval: passed, or overridden on failure
                gate = "failed" if mv.approval.override else "passed"
        short = _approvals_short(ws, mv, protected) if mv is not None and approval == "approved" else None
        drift = None
        if drift_status is not None:
            try:
                drift = drift_status(ws, summary.name, candidate) if candidate else None
            except Exception:  # a broken drift record must not hide the model list
                drift = None
        monitor = None
        if production and watched:  # one small JSON file per model: the last round's tier
            monitor = (read_tier(ws, summary.name) or {}).get("tier")
        canary = canaries.get(summary.name)
        live_canary = canary is not None and bool(getattr(canary, "active", False))
        if live_canary:  # the rollback key aborts the canary: its stable version takes all traffic
            target = canary.stable
        else:
            # the CLI's rule: a version that served production and nobody reviewed in mrc may be
            # the target (a team's own registry), one rejected or touched in mrc may not
            approvals = {version: UNREVIEWED if mv.approval.status == "pending" and not mv.approval.by
                         else mv.approval.status for version, mv in overview.versions.items()}
            target = rollback_target(overview.production_history, production, approvals) if production else None
        canary_status = getattr(canary, "status", None)
        if live_canary and _unjudged(ws, canary):  # nobody judges it: red, whatever its last status said
            canary_status = "unjudged"
        rows.append(HomeRow(
            model=summary.name, production=production, candidate=candidate, candidate_approval=approval,
            gate=gate, canary_status=canary_status, canary_weight=getattr(canary, "weight", None),
            drift=drift, last_change=summary.updated_at, versions=summary.versions, rollback_to=target,
            canary_candidate=canary.candidate if live_canary else None, approvals_short=short, monitor=monitor,
        ))
    return HomeData(rows, versions)


def _unjudged(ws, canary) -> str | None:
    from console.rollout.controller import unjudged

    try:
        return unjudged(ws, canary)
    except Exception:  # a lease that cannot be read must not hide the model list
        return None


def _home_policy(ws):
    """[policy.production] for the home column, read leniently (a bad table must not hide the list)."""
    if "policy" not in (getattr(ws, "config", None) or {}):
        return None

    return rollback_policy(ws)[0]


def _approvals_short(ws, mv, policy) -> str | None:
    """"1/2" when the rule protects production and the approved candidate lacks approvals."""
    if policy is None or policy.required_approvals <= 1:
        return None

    counted = approval_tally(ws.audit(), policy, mv, ws.registry())
    return None if counted.met else f"{len(counted.counted)}/{counted.required}"


def _canaries(ws, models: list[str]) -> dict[str, Any]:
    """model -> its latest canary state, in one read; model by model when that read fails, so
    that one broken record hides only its own model's canary column."""
    states = optional("console.rollout.controller", "current_states")
    if states is None:
        return {}
    try:
        return states(ws)
    except Exception:
        pass
    one = optional("console.rollout.controller", "current_state")
    out: dict[str, Any] = {}
    for model in models:
        try:
            out[model] = one(ws, model)
        except Exception:
            continue
    return out


def _has_canaries(db_path) -> bool:
    """False only when mrc.db surely holds no canary record; any doubt says True."""
    import os
    import sqlite3

    if not os.path.exists(db_path):
        return False
    try:
        conn = connect_db(db_path, timeout=30)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'canary_states'").fetchone() is None:
                return False
            return conn.execute("SELECT 1 FROM canary_states LIMIT 1").fetchone() is not None
        finally:
            conn.close()
    except sqlite3.Error:
        return True


@dataclass
class ReviewData:
    candidate: Any
    production: Any | None
    approvals: Any = None  # console.release.policy.Tally when production is a protected alias, else None


def load_review(ws, model: str, version: str | None) -> ReviewData:
    registry = ws.registry()
    pointers = registry.get_pointers(model)
    version = version or pointers.get("candidate")
    if not version:
        raise NotFoundError(f"{model}: no candidate to review")
    candidate = registry.get_version(model, version)
    production_version = pointers.get("production")
    production = registry.get_version(model, production_version) if production_version else None
    return ReviewData(candidate, production, production_approvals(ws, candidate))


def production_approvals(ws, candidate):
    """How the candidate stands against [policy.production] ("1 of 2 approvals …"), None when unprotected."""
    policy = workspace_policy(ws)
    if policy is None:
        return None

    return approval_tally(ws.audit(), policy, candidate, ws.registry())


def evaluate_gates(ws, model: str, version: str):
    """The gate report, or None when the gate engine is not available."""
    evaluate = optional("console.evaluate.gates", "evaluate_version")
    if evaluate is None:
        return None
    return evaluate(ws, model, version)


def evaluate_gates_with_views(ws, model: str, version: str) -> tuple[Any, list[str]]:
    """(gate report or None, text views of a regression's residuals or a classifier's confusion
    matrix; empty for a binary model)."""
    evaluate = optional("console.evaluate.gates", "evaluate_version_full")
    if evaluate is None:
        return evaluate_gates(ws, model, version), []
    from console.evaluate.task_plots import text_blocks

    evaluation = evaluate(ws, model, version)
    return evaluation.report, text_blocks(evaluation)


def evaluate_drift(ws, model: str, version: str, *, record: bool = True):
    """The drift report; `record` keeps the verdict for the home screen (never in read-only)."""
    version_drift = optional("console.evaluate.drift", "version_drift")
    if version_drift is None:
        return None
    return version_drift(ws, model, version, record=record)


@dataclass
class HistoryData:
    versions: list[Any]
    pointer_moves: list[Any]
    pointers: dict[str, str]


def load_history(ws, model: str) -> HistoryData:
    registry = ws.registry()
    return HistoryData(registry.list_versions(model), registry.pointer_history(model), registry.get_pointers(model))


def load_audit(ws, limit: int | None = None):
    import sqlite3

    if not ws.db_path.exists():  # never create a database just to read it
        return [], verify_chain([])
    try:
        events = ws.audit().events()
    except sqlite3.OperationalError:  # no audit table yet: nothing was ever audited
        events = []

    return events[-limit:] if limit else events, verify_chain(events)


def live_traffic(ws, model: str):
    """The traffic backend when the model has a live split to move, else None: the pointer moves
    either way, and the traffic follows it when there is any (as `mrc rollback` does)."""
    try:
        traffic = ws.traffic()
        traffic.get_split(model)
    except Exception:  # no serving, or a backend not installed
        return None
    return traffic
