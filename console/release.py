"""Approvals and pointer moves: every write compare-and-swap, idempotent and audited.

Pure orchestration over the Registry protocol and the audit log; no backend is named here.
The rollback path imports nothing heavy: keep it that way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from backends.base import (
    CANDIDATE,
    PRODUCTION,
    Approval,
    BadInputError,
    ConflictError,
    PointerMove,
    check_name,
)
from console.timeutil import now_iso


class PolicyRefusal(Exception):
    """The action is refused by policy (failed gates, not approved): exit code 1."""


@dataclass
class Outcome:
    action: str
    model: str
    version: str | None
    changed: bool
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "model": self.model, "version": self.version,
                "changed": self.changed, **self.detail}


def report_digest(report: Any) -> str:
    data = report.to_dict() if hasattr(report, "to_dict") else report
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _reason(reason: str | None, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise BadInputError(f"--reason: a reason is required to {what}")
    return reason


def decide(registry, audit, model: str, version: str, *, status: str, actor: str, reason: str,
           gate_report: Any = None, override: bool = False, expected_status: str | None = None,
           gate_error: str = "", custom_policy: str | None = None) -> Outcome:
    """Approve or reject a version. Approval is refused while gates fail, while checks were not
    run (no test set) and when the gates could not be evaluated (`gate_error`), unless overridden.

    `custom_policy` (the source of a policy other than the workspace's configured one): the
    gates were judged by a policy of the caller's choosing, so an approval is an override.
    """
    check_name(model, "model")
    check_name(version, "version")
    reason = _reason(reason, "approve" if status == "approved" else "reject")
    mv = registry.get_version(model, version)
    seen = expected_status if expected_status is not None else mv.approval.status
    gate_passed = None if gate_report is None or gate_error else bool(gate_report.passed)
    not_run = [c.name for c in getattr(gate_report, "not_run", [])] if gate_report is not None else []
    if status == "approved" and not override:
        if gate_error:
            raise PolicyRefusal(f"{model} {version}: the gates could not be evaluated ({gate_error}); "
                                "approve with --override and a reason")
        if gate_passed is False:
            failed = ", ".join(c.name for c in gate_report.failed_checks)
            raise PolicyRefusal(f"{model} {version}: gates failed ({failed}); approve with --override and a reason")
        if not_run:
            raise PolicyRefusal(f"{model} {version}: {len(not_run)} checks not run ({', '.join(not_run)}): the gate "
                                "report is incomplete; approve with --override and a reason")
    digest = report_digest(gate_report) if gate_report is not None and not gate_error else ""
    if mv.approval.status == status and mv.approval.gate_report_sha256 == digest and seen == status:
        return Outcome(status, model, version, False, {"approval": mv.approval.to_dict()})
    policy_override = bool(custom_policy) and status == "approved"
    overridden = bool(override and (gate_passed is not True or not_run)) or policy_override
    approval = Approval(status, actor, now_iso(), reason, digest, overridden)
    stored = registry.set_approval(model, version, approval, expected_status=seen)
    details = {"reason": reason, "gate_report_sha256": digest, "gate_passed": gate_passed,
               "gate_complete": gate_report is not None and not gate_error and not not_run,
               "checks_not_run": not_run, "override": approval.override, "previous_status": seen}
    if gate_error:
        details["gate_error"] = gate_error
    if gate_report is not None and not gate_error:
        details["policy_sha256"] = getattr(gate_report, "policy_sha256", "")
    if policy_override:
        details["custom_policy"] = custom_policy
    audit.append(actor, "approve" if status == "approved" else "reject", model, version, details)
    return Outcome(status, model, version, True, {"approval": stored.to_dict()})


def promote(registry, audit, model: str, version: str, *, actor: str, reason: str = "",
            expected: str | None = None, expected_given: bool = False, override: bool = False) -> Outcome:
    check_name(model, "model")
    check_name(version, "version")
    mv = registry.get_version(model, version)
    if mv.approval.status != "approved":
        if not override:
            raise PolicyRefusal(f"{model} {version}: approval is {mv.approval.status!r}; approve it first "
                                "or promote with --override and a reason")
        reason = _reason(reason, "promote an unapproved version")
    verify = getattr(registry, "verify_artifact", None)
    if verify is not None:
        verify(model, version)  # never point production at bytes that no longer match their hash
    current = registry.get_pointers(model).get(PRODUCTION)
    if not expected_given:
        expected = current
    if current == version and expected == current:
        return Outcome("promote", model, version, False, {"from": current, "to": version, "note": "already production"})
    from backends.stall import stall_point

    stall_point("promote:approval-read")  # tests: a reject lands here, between the read and the move
    # the approval we judged travels with the move: the registry moves only if it is still the same
    move = registry.move_pointer(model, PRODUCTION, expected=expected, new=version, actor=actor, reason=reason,
                                 approval=mv.approval)
    audit.append(actor, "promote", model, version,
                 {"from": move.from_version, "to": move.to_version, "reason": reason, "override": override,
                  "approval": {"status": mv.approval.status, "by": mv.approval.by, "at": mv.approval.at}})
    _clear_candidate(registry, audit, model, version, actor)
    return Outcome("promote", model, version, True, {"from": move.from_version, "to": version, "move": move.to_dict()})


def _clear_candidate(registry, audit, model: str, version: str, actor: str) -> None:
    if registry.get_pointers(model).get(CANDIDATE) != version:
        return
    try:
        registry.move_pointer(model, CANDIDATE, expected=version, new=None, actor=actor, reason="promoted")
    except ConflictError:
        return  # someone named another candidate meanwhile: theirs stands
    audit.append(actor, "clear-candidate", model, version, {"reason": "promoted to production"})


def rollback_target(history: list[PointerMove], current: str | None) -> str | None:
    """Pure: the version production pointed at before it last moved to `current`."""
    for move in reversed(history):
        if move.alias == PRODUCTION and move.to_version == current and move.from_version:
            return move.from_version
    return None


def rollback(registry, audit, model: str, *, actor: str, to: str | None = None, reason: str = "",
             expected: str | None = None, expected_given: bool = False, traffic=None) -> Outcome:
    """Production back to a known-good version: one conditional write, then the audit event.

    With `traffic` (a Traffic backend with a live split) the traffic follows the pointer: the
    target version takes 100% through the backend's fast rollback path."""
    check_name(model, "model")
    if to is not None:
        check_name(to, "version")
    current = registry.get_pointers(model).get(PRODUCTION)
    if not expected_given:
        expected = current
    target = to or rollback_target(registry.pointer_history(model, PRODUCTION), current)
    if target is None:
        raise BadInputError(f"{model}: no earlier production version to roll back to (pass --to VERSION)")
    if target == current and expected == current:
        moved = _traffic_to(traffic, model, target)
        if moved is not None:
            audit.append(actor, "rollback-traffic", model, target, {"to": target, "split": moved, "reason": reason or "rollback"})
        return Outcome("rollback", model, target, moved is not None,
                       {"from": current, "to": target, "note": "already production", "traffic": moved})
    move = registry.move_pointer(model, PRODUCTION, expected=expected, new=target, actor=actor,
                                 reason=reason or "rollback")
    # the pointer moved: record it before anything else can fail
    audit.append(actor, "rollback", model, target, {"from": move.from_version, "to": target, "reason": reason or "rollback"})
    detail: dict[str, Any] = {"from": move.from_version, "to": target, "move": move.to_dict(), "traffic": None}
    try:
        moved = _traffic_to(traffic, model, target)
    except Exception as exc:  # noqa: BLE001  (the pointer is back; say loudly that traffic is not)
        detail["traffic_error"] = f"{type(exc).__name__}: {exc}"
        audit.append(actor, "rollback-traffic-failed", model, target, {"error": detail["traffic_error"]})
    else:
        detail["traffic"] = moved
        if moved is not None:
            audit.append(actor, "rollback-traffic", model, target, {"to": target, "split": moved})
    return Outcome("rollback", model, target, True, detail)


def _traffic_to(traffic, model: str, target: str) -> dict[str, int] | None:
    """Send all traffic to `target` if a live split exists and differs; the new weights, else None."""
    if traffic is None:
        return None
    split = traffic.get_split(model)
    if {v: w for v, w in split.weights.items() if w} == {target: 100}:
        return None
    # A target with no server yet still gets its split written: the rollback path never waits on
    # starting a model server (torch); the router answers 503 for it until `serve-models` runs.
    return traffic.rollback(model, target).weights


def set_alias(registry, audit, model: str, alias: str, version: str | None, *, actor: str, reason: str = "",
              expected: str | None = None, expected_given: bool = False) -> Outcome:
    check_name(model, "model")
    check_name(alias, "alias")
    current = registry.get_pointers(model).get(alias)
    if not expected_given:
        expected = current
    if version is not None:
        registry.get_version(model, version)
    if current == version and expected == current:
        return Outcome("alias", model, version, False, {"alias": alias, "from": current, "to": version})
    move = registry.move_pointer(model, alias, expected=expected, new=version, actor=actor, reason=reason)
    audit.append(actor, f"alias:{alias}", model, version or "", {"from": move.from_version, "to": version, "reason": reason})
    return Outcome("alias", model, version, True, {"alias": alias, "from": move.from_version, "to": version})
