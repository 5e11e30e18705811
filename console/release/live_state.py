"""Does the live state agree with itself? Registry pointers against the audit log, and the
router's split against the registry and the canary state: for `mrc audit verify`, `mrc models`
and the console's home, which say so when they do not.

Reads only (the registry, mrc.db, the router's control endpoint); the judgement is the pure
functions of console/release/audit_checks.py.
"""

from __future__ import annotations

from typing import Any

from console.release.audit_checks import pointer_problems, split_problem
from console.rollout.controller import _pid_alive, current_states


def router_split(ws, model: str) -> dict[str, int] | None:
    """The live split of a model that is served, None when nothing serves it (or it cannot be read)."""
    try:
        if not ws.may_serve(model):
            return None
        return dict(ws.traffic().get_split(model).weights)
    except Exception:  # noqa: BLE001  (not served, or a backend not installed: nothing to compare)
        return None


def split_problems(ws, summaries: list[Any]) -> list[str]:
    """One line per served model whose router disagrees with its production pointer or live canary."""
    canaries = current_states(ws)
    problems = []
    for summary in summaries:
        split = router_split(ws, summary.name)
        if split is None:
            continue
        canary = canaries.get(summary.name)
        pending_live = bool(canary and canary.pending and _pid_alive(int(canary.pending.get("pid", 0)), controller=False))
        problem = split_problem(summary.name, split, summary.pointers.get("production"), canary, pending_live)
        if problem:
            problems.append(problem)
    return problems


def disagreements(ws, registry, audit, summaries: list[Any]) -> dict[str, list[str]]:
    """model -> what disagrees (pointers vs their last audited move, router vs registry and canary)."""
    out: dict[str, list[str]] = {}
    for summary in summaries:
        lines = pointer_problems(summary.name, summary.pointers, audit.events(model=summary.name))
        lines += split_problems(ws, [summary])
        if lines:
            out[summary.name] = lines
    return out


class _Pointers:
    """The two fields the checks read of a ModelSummary, for one model read on its own."""

    def __init__(self, name: str, pointers: dict[str, str]):
        self.name, self.pointers = name, pointers


def model_disagreements(ws, registry, audit, model: str) -> list[str]:
    """What disagrees for one model (the console asks for the model it shows)."""
    return disagreements(ws, registry, audit, [_Pointers(model, registry.get_pointers(model))]).get(model, [])
