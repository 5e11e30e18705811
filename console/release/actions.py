"""Approvals and pointer moves: every write compare-and-swap, idempotent and audited.

Pure orchestration over the Registry protocol and the audit log; no backend is named here.
The rollback path imports nothing heavy: keep it that way.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from dataclasses import dataclass
from typing import Any

from backends.base import (
    CANDIDATE,
    PRODUCTION,
    Approval,
    BackendError,
    BadInputError,
    ConflictError,
    IntegrityError,
    PointerMove,
    check_name,
)
from backends.support.stall import stall_point
from backends.support.timeutil import now_iso
from console.errors import PolicyRefusal
from console.release.audit import (
    _write_tx,
    abandon_intent,
    commit_intent,
    connect,
    crash_point,
    reconcile,
    record_intent,
    wait_point,
)
from console.release.policy import (
    PolicyViolation,
    Signature,
    approver_problem,
    check_identity,
    counts_claims,
    insert_signature,
    load_signatures,
    may_roll_back,
    normalise_name,
    read_signatures,
    registry_signatures,
    registry_stores_signatures,
    revoke_signature,
    signature_record,
    signatures_of,
    tally,
    trainer_of,
)
from console.rollout.live import live_canary


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
           gate_error: str = "", custom_policy: str | None = None, policy=None) -> Outcome:
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
    identity = None
    if policy is not None and status == "approved":
        identity = approver_allowed(policy, registry, mv, actor)
        if (mv.approval.status == "approved" and mv.approval.gate_report_sha256 == digest and seen == "approved"
                and not _same_name(mv.approval.by, actor)):
            # the same approval, by someone else: a co-signature (the two-person rule), not a rewrite
            return cosign(registry, audit, mv, policy, actor=actor, reason=reason, identity=identity)
    if (mv.approval.status == status and mv.approval.gate_report_sha256 == digest and seen == status
            and (status != "approved" or policy is None or _same_name(mv.approval.by, actor))):
        unchanged: dict[str, Any] = {"approval": mv.approval.to_dict()}
        if policy is not None and status == "approved":
            unchanged["policy"] = approval_tally(audit, policy, mv, registry).to_dict()
        return Outcome(status, model, version, False, unchanged)
    policy_override = bool(custom_policy) and status == "approved"
    overridden = bool(override and (gate_passed is not True or not_run)) or policy_override
    approval = Approval(status, actor, now_iso(), reason, digest, overridden)
    details = {"reason": reason, "gate_report_sha256": digest, "gate_passed": gate_passed,
               "gate_complete": gate_report is not None and not gate_error and not not_run,
               "checks_not_run": not_run, "override": approval.override, "previous_status": seen}
    if gate_error:
        details["gate_error"] = gate_error
    if gate_report is not None and not gate_error:
        details["policy_sha256"] = getattr(gate_report, "policy_sha256", "")
    if policy_override:
        details["custom_policy"] = custom_policy
    if identity is not None:
        details["identity"] = identity
    stored = record_approval(registry, audit, model, version, approval, expected_status=seen, actor=actor,
                             action="approve" if status == "approved" else "reject", details=details)
    detail: dict[str, Any] = {"approval": stored.to_dict()}
    if policy is not None and status == "approved":
        mv.approval = stored
        _record_primary_identity(registry, audit, mv, actor, reason, identity)
        detail["policy"] = request_if_short(audit, policy, mv, actor, registry)
    return Outcome(status, model, version, True, detail)


def promote(registry, audit, model: str, version: str, *, actor: str, reason: str = "",
            expected: str | None = None, expected_given: bool = False, override: bool = False,
            traffic=None, options: dict[str, Any] | None = None, policy=None, canary_id: str | None = None) -> Outcome:
    """Production to `version`. With `traffic` (a live split) its server is made healthy first,
    then the pointer moves, then all traffic follows. With `policy` (production's protected-alias
    rule) the approvals are counted before anything starts and again inside the move's CAS.

    A live canary has one writer, its controller: a promote from anywhere else is refused with
    the commands that end it (else the canary's stable and production disagree, and the next
    `R` sends all traffic to a version the registry no longer calls production). `canary_id`:
    the controller's own promote of that canary."""
    check_name(model, "model")
    check_name(version, "version")
    live = live_canary(getattr(audit, "db_path", None), model)
    if live is not None and live.id != canary_id:
        raise ConflictError(live.refusal(f"promote {model} {version}"), expected=None, actual=live.candidate)
    settle_intents(registry, audit)
    mv = registry.get_version(model, version)
    guard = None
    if policy is not None and registry.get_pointers(model).get(PRODUCTION) != version:
        # a protected alias: counted before anything starts; --override does not stand in for approvals
        guard = promotion_guard(registry, audit, policy, mv, actor)
        guard(None, early=True)
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
    server = serve_target(traffic, registry, model, version, options)  # before any write: nothing moves if it fails

    stall_point("promote:approval-read")  # tests: a reject lands here, between the read and the move
    # the approval we judged travels with the move: the registry moves only if it is still the same
    move = move_audited(registry, audit, model, PRODUCTION, expected=expected, new=version, actor=actor, reason=reason,
                        action="promote", version=version, approval=mv.approval, guard=guard,
                        details={"reason": reason, "override": override,
                                 "approval": {"status": mv.approval.status, "by": mv.approval.by, "at": mv.approval.at}})
    _clear_candidate(registry, audit, model, version, actor)
    detail: dict[str, Any] = {"from": move.from_version, "to": version, "move": move.to_dict()}
    _follow_with_traffic(traffic, audit, model, version, server, detail, actor, "promote-traffic")
    return Outcome("promote", model, version, True, detail)


def _clear_candidate(registry, audit, model: str, version: str, actor: str) -> None:
    if registry.get_pointers(model).get(CANDIDATE) != version:
        return
    try:
        move_audited(registry, audit, model, CANDIDATE, expected=version, new=None, actor=actor, reason="promoted",
                     action="clear-candidate", version=version, details={"reason": "promoted to production"})
    except ConflictError:
        return  # someone named another candidate meanwhile: theirs stands


# -- audited writes: the event cannot be missing ---------------------------------------------------

def move_audited(registry, audit, model: str, alias: str, *, expected: str | None, new: str | None, actor: str,
                 reason: str, action: str, version: str, details: dict[str, Any],
                 approval: Approval | None = None, guard=None) -> PointerMove:
    """A compare-and-swap pointer move and its audit event, never one without the other.
    With `approval`, the move also needs `new`'s approval to be still that one (Registry.move_pointer).
    With `guard(conn)` (a protected alias's rule): called inside the move's transaction with its
    connection when the registry shares the audit's database, else with None right before the
    registry's CAS; it raises to refuse, and returns details the audit event records.

    Local registry in the audit's own SQLite file: the event is appended inside the move's
    transaction. Any other registry: an intent is committed first, the event after the write;
    an intent left open by a crash is settled by the next run (`settle_intents`)."""
    def event_details(move: PointerMove) -> dict[str, Any]:
        return {**details, "alias": alias, "from": move.from_version, "to": move.to_version, "move_seq": move.seq}

    if _shares_transaction(registry, audit):
        def in_transaction(conn, move: PointerMove) -> None:
            checked = guard(conn) if guard is not None else {}  # raising rolls the move back
            crash_point("move:after-write")
            audit.append_in(conn, actor, action, model, version, {**event_details(move), **checked})
            crash_point("move:after-audit")

        move = registry.move_pointer(model, alias, expected=expected, new=new, actor=actor, reason=reason,
                                     audit=in_transaction, **_approval_arg(approval))
        crash_point("move:after-commit")
        return move
    if not hasattr(audit, "db_path"):  # an audit sink without intents (tests' fakes): append after
        if guard is not None:
            details = {**details, **guard(None)}  # right before the registry's CAS: refused, nothing written
        move = registry.move_pointer(model, alias, expected=expected, new=new, actor=actor, reason=reason,
                                     **_approval_arg(approval))
        audit.append(actor, action, model, version, event_details(move))
        return move

    intent = record_intent(audit, actor, action, model, version,
                           {"kind": "pointer", "alias": alias, "expected": expected, "new": new, "reason": reason},
                           details)
    crash_point("intent:after-record")
    try:
        if guard is None:
            move = registry.move_pointer(model, alias, expected=expected, new=new, actor=actor, reason=reason,
                                         **_approval_arg(approval))
        else:
            # The count and the registry's swap under mrc.db's write lock (BEGIN IMMEDIATE), which
            # `revoke` and every co-signature take too: no co-signature can be withdrawn between the
            # count and the swap. The other choice, re-reading after the swap and undoing, lets
            # production point at a short-counted version for a moment (a server may load it, an
            # alert fire) and the undo can itself lose a CAS race; the lock shows nothing wrong ever.
            # The registry approval itself is not in mrc.db: the swap carries it (`approval=`).
            # Co-signatures kept in the registry (S3) are re-read here, last; a revoke from another
            # machine's workspace can still land between that read and the swap (see README).
            with _write_lock(audit.db_path) as held:
                details = {**details, **guard(None, held=held)}

                stall_point("promote:counted")  # tests: a revoke lands here, between the count and the swap
                move = registry.move_pointer(model, alias, expected=expected, new=new, actor=actor, reason=reason,
                                             **_approval_arg(approval))
    except (ConflictError, BadInputError, PolicyRefusal) as exc:  # refused: nothing was written
        abandon_intent(audit, intent, f"{type(exc).__name__}: {exc}")
        raise
    crash_point("remote:after-write")
    commit_intent(audit, intent, actor, action, model, version, event_details(move))
    return move


class _write_lock:
    """mrc.db's write lock held (BEGIN IMMEDIATE, nothing written) while a remote swap is made."""

    def __init__(self, db_path: str):
        self.db_path = db_path

    def __enter__(self):
        self.conn = connect(self.db_path)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.conn.close()
            raise
        return self.conn

    def __exit__(self, *exc) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self.conn.close()


def _approval_arg(approval: Approval | None) -> dict[str, Any]:
    """Only when given: moves without an approval to check keep the registry call they had."""
    return {} if approval is None else {"approval": approval}


def record_approval(registry, audit, model: str, version: str, approval: Approval, *, expected_status: str | None,
                    actor: str, action: str, details: dict[str, Any]) -> Approval:
    """An approval and its audit event, never one without the other (as `move_audited`)."""
    if _shares_transaction(registry, audit):
        def in_transaction(conn, stored: Approval) -> None:
            crash_point("approval:after-write")
            audit.append_in(conn, actor, action, model, version, {**details, "approval_at": stored.at})
            crash_point("approval:after-audit")

        stored = registry.set_approval(model, version, approval, expected_status=expected_status, audit=in_transaction)
        crash_point("approval:after-commit")
        return stored
    approval = Approval(approval.status, approval.by, approval.at or now_iso(), approval.reason,
                        approval.gate_report_sha256, approval.override)
    if not hasattr(audit, "db_path"):
        stored = registry.set_approval(model, version, approval, expected_status=expected_status)
        audit.append(actor, action, model, version, {**details, "approval_at": stored.at})
        return stored

    intent = record_intent(audit, actor, action, model, version,
                           {"kind": "approval", "status": approval.status, "by": approval.by, "at": approval.at},
                           details)
    crash_point("intent:after-record")
    try:
        stored = registry.set_approval(model, version, approval, expected_status=expected_status)
    except (ConflictError, BadInputError) as exc:
        abandon_intent(audit, intent, f"{type(exc).__name__}: {exc}")
        raise
    crash_point("remote:after-write")
    commit_intent(audit, intent, actor, action, model, version, {**details, "approval_at": stored.at})
    return stored


def _shares_transaction(registry, audit) -> bool:
    shares = getattr(audit, "shares_database_with", None)
    return bool(shares and shares(registry))


def settle_intents(registry, audit) -> list[dict[str, Any]]:
    """Before a write to a remote registry: settle what a crashed run left open."""
    if _shares_transaction(registry, audit) or not hasattr(audit, "db_path"):
        return []

    return reconcile(audit, registry)


# -- rollback ---------------------------------------------------------------------------------------

ROLLBACK = "rollback"


def is_rollback(move: PointerMove) -> bool:
    """Rollbacks are recorded with a reason that starts with "rollback" (see `rollback`)."""
    return (move.reason or "").startswith(ROLLBACK)


def rollback_candidates(history: list[PointerMove], current: str | None) -> list[str]:
    """Pure: earlier production versions, the most recently in production first. Never the
    current one, and never one that production last left by a rollback (that one was bad)."""
    became: dict[str, int] = {}
    left_by_rollback: dict[str, bool] = {}
    for i, move in enumerate(history):
        if move.alias != PRODUCTION:
            continue
        if move.from_version:
            left_by_rollback[move.from_version] = is_rollback(move)
        if move.to_version:
            became[move.to_version] = i
    newest_first = sorted(became, key=lambda v: -became[v])
    return [v for v in newest_first if v != current and not left_by_rollback.get(v, False)]


def rollback_target(history: list[PointerMove], current: str | None,
                    approvals: dict[str, str] | None = None) -> str | None:
    """Pure: the version a rollback from `current` goes to — the first candidate that is
    approved, or UNREVIEWED (pending with no reviewer: it served production before, `rollback`'s
    own rule), when the approvals (version -> status) are known. The artifact check is I/O:
    `rollback` makes it."""
    for version in rollback_candidates(history, current):
        if approvals is None or approvals.get(version) in ("approved", UNREVIEWED):
            return version
    return None


def rolled_back_from(history: list[PointerMove]) -> PointerMove | None:
    """The last production move, when it was a rollback."""
    moves = [m for m in history if m.alias == PRODUCTION]
    return moves[-1] if moves and is_rollback(moves[-1]) else None


UNREVIEWED = "unreviewed"


def unfit_reason(registry, model: str, version: str, *, unreviewed_ok: bool = False) -> str | None:
    """Why a version must not take production without an override; None when it may.

    With `unreviewed_ok` (the default rollback target, which only ever considers versions that
    were production before), a version nobody approved or rejected in mrc — "pending" with no
    reviewer, as in a registry a team fills and reviews with its own tools — answers UNREVIEWED
    once its artifact verifies: it served production, so it is fit, and the caller says why."""
    mv = _version_for_check(registry, model, version)
    status = mv.approval.status
    unreviewed = unreviewed_ok and status == "pending" and not mv.approval.by
    if status != "approved" and not unreviewed:
        return status  # "rejected" or "pending"
    try:
        verify_artifact(registry, mv, just_read=True)
    except (BadInputError, OSError) as exc:
        return f"corrupt (artifact does not verify: {exc})"
    return UNREVIEWED if unreviewed else None


def verify_artifact(registry, mv, *, just_read: bool = False) -> None:
    """The registry's own check when it has one, else fetch the bytes and hash them here.

    `just_read`: `mv` was read a moment ago for this decision, so a registry that can judge the
    bytes from that same read (S3: the listing it came from) does, instead of reading again."""
    verify = getattr(registry, "verify_artifact", None)
    if verify is not None:
        if just_read and "read" in inspect.signature(verify).parameters:
            verify(mv.model, mv.version, read=mv)
        else:
            verify(mv.model, mv.version)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mrc-verify-") as tmp:
        path = registry.fetch_artifact(mv.model, mv.version, tmp)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != mv.artifact.sha256:
            raise IntegrityError(f"{mv.model} {mv.version}: artifact sha256 {digest.hexdigest()[:12]}… "
                                 f"is not the recorded {mv.artifact.sha256[:12]}…")


def rollback(registry, audit, model: str, *, actor: str, to: str | None = None, reason: str = "",
             expected: str | None = None, expected_given: bool = False, override: bool = False,
             traffic=None, options: dict[str, Any] | None = None, policy=None,
             allowed_checked: bool = False, end_canary=None) -> Outcome:
    """Production away from the version the caller saw (`expected`, else read now), to a
    known-good one: the newest earlier production version that is approved, not rejected, whose
    artifact verifies, and that production was not rolled away from. `to` names it instead
    (a rejected, pending or corrupt one needs `override` and a reason).

    Two rollbacks away from the same version move it once: the second finds the last move was a
    rollback from what it saw and reports that instead of rolling back further. With `traffic`
    (a live split) the target's server is made healthy before anything moves.

    A live canary is settled first, once the rollback is known to be allowed: `end_canary()`
    ends it through its controller (stable to 100 %) right before the move; without one, the
    rollback is refused with the command that ends it. A refused rollback has changed nothing."""
    check_name(model, "model")
    if to is not None:
        check_name(to, "version")
    if not allowed_checked:  # the CLI checked it already, before ending a live canary
        rollback_allowed(policy, registry, model, actor)
    settle_intents(registry, audit)
    history, partial, current = _production_snapshot(registry, model)
    snapshot_seq = _last_seq(history)
    seen = expected if expected_given else current
    done = _already_rolled_back(model, history, current, seen, expected_given, to)
    if done is not None:
        return done
    if seen != current:  # production moved since the caller looked, and not by a rollback from `seen`
        raise ConflictError(f"{model}: production is {current or 'nothing'} now, not {seen or 'nothing'}"
                            " (someone else moved it first)", expected=seen, actual=current)
    skipped: list[dict[str, str]] = []
    policy_detail: dict[str, Any] | None = None  # --to a never-production version under a protected alias
    taken_unreviewed = False  # a pending target that served production before anyone reviewed it in mrc
    if to is not None:
        target = to
        problem = unfit_reason(registry, model, to)
        if problem is not None:
            if not override:
                raise BadInputError(f"--to {to}: {model} {to} is {problem}; roll back to it only with --override "
                                    "--reason")
            reason = _reason(reason, f"roll back to a {problem.split(' ')[0]} version")
        short = _to_target_short(registry, audit, policy, model, to) if policy is not None else None
        if short is not None:
            # never production before: --to must not be a way around the two-person rule
            if not override:
                raise PolicyViolation(f"--to {to}: {model} {to} never served production and policy.{policy.alias}: "
                                      f"{short['summary']}; roll back to it only with --override --reason")
            reason = _reason(reason, "roll back to a version short of approvals")
            problem = problem or "short of approvals"
            policy_detail = {**short, "overridden": True}
    else:
        target = None
        tried: set[str] = set()
        wider = iter((*HISTORY_WINDOWS[1:], None))  # None: the whole history
        while True:
            for version in rollback_candidates(history, current):
                if version in tried:
                    continue
                tried.add(version)
                problem = unfit_reason(registry, model, version, unreviewed_ok=True)
                if problem == UNREVIEWED:  # it served production before anyone reviewed it in mrc: fit, said so
                    problem, taken_unreviewed = None, True
                if problem is None:
                    target = version
                    break
                skipped.append({"version": version, "why": problem})
            if target is not None or not partial:
                break
            # None of the newest fits: read further back (its candidates continue these in order).
            history, partial = _production_history(registry, model, next(wider))
            if _last_seq(history) != snapshot_seq:  # the decision must stand on one snapshot
                raise ConflictError(f"{model}: production moved while the rollback read its history; nothing moved "
                                    "(run it again to decide on what production is now)", expected=current)
        if target is None:
            why = "; ".join(f"{s['version']} is {s['why']}" for s in skipped)
            raise BadInputError(f"{model}: no earlier production version to roll back to"
                                + (f" ({why})" if why else "") + " (pass --to VERSION)")
    why = reason or "rollback"
    stored_reason = why if why.startswith(ROLLBACK) else f"{ROLLBACK}: {why}"
    if target == current:
        detail: dict[str, Any] = {"from": current, "to": target, "note": "already production", "traffic": None}
        server = serve_target(traffic, registry, model, target, options)
        _settle_canary(audit, model, end_canary, f"rollback of {model} to {target}")
        _follow_with_traffic(traffic, audit, model, target, server, detail, actor, "rollback-traffic")
        return Outcome("rollback", model, target, detail["traffic"] is not None, detail)
    server = serve_target(traffic, registry, model, target, options)  # before any write: nothing moves if it fails
    _settle_canary(audit, model, end_canary, f"rollback of {model} to {target}")

    wait_point("rollback:before-move")
    try:
        move = move_audited(registry, audit, model, PRODUCTION, expected=seen, new=target, actor=actor,
                            reason=stored_reason, action="rollback", version=target,
                            guard=_snapshot_guard(registry, audit, model, snapshot_seq),
                            details={"reason": why, "override": bool(override and to is not None and problem),
                                     "skipped": skipped, "unreviewed_target": taken_unreviewed,
                                     **({"policy": policy_detail} if policy_detail is not None else {})})
    except ConflictError:
        history, _ = _production_history(registry, model, HISTORY_WINDOW)  # only its last move counts
        done = _already_rolled_back(model, history, registry.get_pointers(model).get(PRODUCTION), seen, True, to)
        if done is not None:
            return done
        raise
    detail = {"from": move.from_version, "to": target, "move": move.to_dict(), "traffic": None, "skipped": skipped,
              "unreviewed_target": taken_unreviewed}
    _follow_with_traffic(traffic, audit, model, target, server, detail, actor, "rollback-traffic")
    if taken_unreviewed:
        detail["message"] = (detail.get("message") or f"{model}: rolled back production {move.from_version} -> "
                             f"{target}") + f" ({target} served production before; it was never reviewed in mrc)"
    return Outcome("rollback", model, target, True, detail)


def _settle_canary(audit, model: str, end_canary, what: str) -> None:
    """Every check of the rollback passed: end a live canary now (its controller's one path), or
    refuse when the caller gave no way to end it."""
    live = live_canary(getattr(audit, "db_path", None), model)
    if live is None:
        return
    if end_canary is None:
        raise ConflictError(live.refusal(what), actual=live.candidate)
    end_canary()


def _to_target_short(registry, audit, policy, model: str, to: str) -> dict[str, Any] | None:
    """The tally of a `--to` target that never served production and lacks the rule's approvals;
    None when it served production before (rollback stays one key) or its approvals are met."""
    served = any(m.to_version == to for m in registry.pointer_history(model, PRODUCTION) if m.alias == PRODUCTION)
    if served:
        return None
    counted = approval_tally(audit, policy, registry.get_version(model, to), registry)
    return None if counted.met else counted.to_dict()


# Production events a rollback reads first. Candidates from the newest events are the first
# candidates of the whole history, in the same order, so the whole is read only when none fits.
# The usual rollback (promote, then roll back to the version before) needs the newest 2 (S3: a
# GET per event); when none of their versions fits, 16, then the whole history.
HISTORY_WINDOWS = (2, 16)
HISTORY_WINDOW = HISTORY_WINDOWS[0]


SNAPSHOT_READS = 3  # history and pointer read again while a move lands between them


def _production_snapshot(registry, model: str) -> tuple[list[PointerMove], bool, str | None]:
    """(production's history, whether older moves may be missing, where production points) read
    as one snapshot: the pointer is where the history's last move put it. A move that lands
    between the two reads makes them disagree, and both are read again; a decision on a history
    older than the pointer could pick a version a later rollback already left (issue 23: 2 of 7
    racing trials put production back on the bad version)."""
    for _ in range(SNAPSHOT_READS):
        history, partial = _production_history(registry, model, HISTORY_WINDOW)
        stall_point("rollback:history-read")  # tests: other operators move production here
        current = _production_now(registry, model, history)
        moves = [m for m in history if m.alias == PRODUCTION]
        if not moves or moves[-1].to_version == current:
            return history, partial, current
    # the pointer disagrees with its own history every time: moved outside the ledger (`mrc audit
    # verify` names it); the pointer is what serves, so it is what the rollback moves away from
    return history, partial, current


def _last_seq(history: list[PointerMove]) -> int | None:
    moves = [m for m in history if m.alias == PRODUCTION]
    return moves[-1].seq if moves else None


def _snapshot_guard(registry, audit, model: str, snapshot_seq: int | None):
    """The rollback's CAS covers its snapshot, not only the pointer: inside the local move's
    transaction (mrc.db's write lock held, so nothing else commits) production's last move must
    still be the one the decision read; an A→B→A in between would pass a pointer-only CAS.
    Remote registries: their own CAS on the pointer (S3: on the history's next event)."""
    if not _shares_transaction(registry, audit):
        return None

    def guard(conn, **_) -> dict[str, Any]:
        now = _last_seq(registry.pointer_history(model, PRODUCTION))
        if now != snapshot_seq:
            raise ConflictError(f"{model}: production moved (move #{now}) after the rollback read it (#{snapshot_seq}); "
                                "nothing moved", expected=str(snapshot_seq), actual=str(now))
        return {"snapshot_seq": snapshot_seq}

    return guard


def _production_now(registry, model: str, history: list[PointerMove]) -> str | None:
    """Where production points: the last move of the history just read, where the registry says
    its history ends at the pointer (S3: no second round of pointer reads), else asked for."""
    if getattr(registry, "history_shows_pointer", False):
        moves = [m for m in history if m.alias == PRODUCTION]
        return moves[-1].to_version if moves else None
    return registry.get_pointers(model).get(PRODUCTION)


def _version_for_check(registry, model: str, version: str):
    """The version without its aliases where the registry can skip them (they are not judged)."""
    if "aliases" in inspect.signature(registry.get_version).parameters:
        return registry.get_version(model, version, aliases=False)
    return registry.get_version(model, version)


def _production_history(registry, model: str, limit: int | None = None) -> tuple[list[PointerMove], bool]:
    """(production's moves, whether older ones may be missing): the newest `limit` events only
    where the registry can read them alone (S3 GETs one object per event), else the whole history."""
    if limit is not None and "limit" in inspect.signature(registry.pointer_history).parameters:
        return registry.pointer_history(model, PRODUCTION, limit=limit), True
    return registry.pointer_history(model, PRODUCTION), False


def _already_rolled_back(model: str, history: list[PointerMove], current: str | None, seen: str | None,
                         expected_given: bool, to: str | None) -> Outcome | None:
    """An Outcome saying "already rolled back from V" when the last production move was a rollback
    away from the version the caller saw (or, with nothing stated, away from anything: a bare
    `mrc rollback` right after another one must not roll back further)."""
    last = rolled_back_from(history)
    if last is None or last.to_version != current:
        return None
    if expected_given and (seen != last.from_version or seen == current):
        return None
    if to is not None and to != current:
        return None
    note = (f"already rolled back from {last.from_version} to {current} by {last.actor} at {last.at}; "
            f"nothing moved" + ("" if expected_given else f" (to roll back further: --expect {current})"))
    return Outcome("rollback", model, current, False,
                   {"from": last.from_version, "to": current, "note": note, "already_rolled_back": True,
                    "traffic": None, "message": f"{model}: {note}"})


# -- traffic that is served ---------------------------------------------------------------------------

HEALTH_TIMEOUT_S = 60.0


def serve_target(traffic, registry, model: str, version: str, options: dict[str, Any] | None) -> dict[str, Any] | None:
    """Make sure `version` has a healthy server before traffic is sent to it; its pid/port.

    None when there is no traffic backend to serve it (the registry alone moves). Raises
    BackendError — before anything was written — when the server cannot be made healthy."""
    if traffic is None:
        return None
    served = getattr(traffic, "served_versions", None)
    if served is None:  # a backend that serves elsewhere (KServe): its controller checks health
        return {"version": version, "checked": False}
    t0 = time.perf_counter()
    server = _healthy(traffic, model, version, wait_s=0)
    if server is not None:
        return {**server, "started": False, "ready_s": round(time.perf_counter() - t0, 4), "checked": True}
    if not hasattr(traffic, "ensure_serving"):
        raise BackendError(f"{model} {version}: no healthy server and the traffic backend cannot start one; nothing moved")
    router_port = getattr(traffic, "router_port", None)
    router_before = router_port(model) if router_port is not None else None
    try:
        ensure_serving(traffic, model, version, registry=registry, options=options or {})
    except (BackendError, BadInputError, OSError) as exc:
        raise BackendError(f"{model} {version}: could not start its server ({exc}); nothing moved") from None
    server = _healthy(traffic, model, version, wait_s=HEALTH_TIMEOUT_S)
    if server is None:
        raise BackendError(f"{model} {version}: its server started but is not healthy; nothing moved")
    router_after = router_port(model) if router_port is not None else None
    started = {**server, "started": True, "ready_s": round(time.perf_counter() - t0, 3), "checked": True}
    if router_after is not None and router_after != router_before:
        # the router was stopped (serve-models --stop) and starts anew on a port of its own: said,
        # since whatever sent requests to the old address now reaches nothing
        started["router_restarted"] = {"port": router_after, "was": router_before}
    return started


def ensure_serving(traffic, model: str, version: str, *, registry, options: dict[str, Any]) -> Any:
    """Adapter: `ensure_serving(model, versions, *, registry, options)` where the backend takes
    them, the older `ensure_serving(model, versions)` otherwise."""
    import inspect

    params = inspect.signature(traffic.ensure_serving).parameters
    kwargs = {k: v for k, v in (("registry", registry), ("options", options)) if k in params}
    return traffic.ensure_serving(model, [version], **kwargs)


def _healthy(traffic, model: str, version: str, *, wait_s: float) -> dict[str, Any] | None:
    """{"pid", "port"} of the version's server once GET /health (or /ping) answers 200."""
    deadline = time.monotonic() + wait_s
    while True:
        port = traffic.served_versions(model).get(version)
        if port is not None:
            for path in ("/health", "/ping"):
                status, body = _get(port, path)
                if status == 200:
                    pid = body.get("pid") if isinstance(body, dict) else None
                    return {"version": version, "port": port, "pid": pid}
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def _get(port: int, path: str) -> tuple[int, Any]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else {}
        except ValueError:
            return resp.status, {}
    except (OSError, http.client.HTTPException):
        return 0, {}
    finally:
        conn.close()


def _follow_with_traffic(traffic, audit, model: str, target: str, server: dict[str, Any] | None,
                         detail: dict[str, Any], actor: str, action: str) -> None:
    """All traffic to `target` (whose server `serve_target` found healthy); says where traffic is."""
    moved_from = detail.get("from")
    head = f"{model}: production {moved_from or 'none'} → {target}"
    if detail.get("note") == "already production":
        head = f"{model}: production is {target} already"
    if traffic is None:
        detail["message"] = f"{head}; registry moved; traffic not served locally"
        return
    try:
        split = traffic.get_split(model)
        if {v: w for v, w in split.weights.items() if w} == {target: 100}:
            moved = None
        else:
            moved = traffic.rollback(model, target).weights
    except Exception as exc:  # noqa: BLE001  (the pointer moved; say loudly that traffic did not)
        detail["traffic_error"] = f"{type(exc).__name__}: {exc}"
        audit.append(actor, f"{action}-failed", model, target, {"error": detail["traffic_error"]})
        detail["message"] = f"{head}; TRAFFIC NOT MOVED: {detail['traffic_error']}"
        return
    detail["traffic"] = moved
    detail["server"] = server
    if moved is not None:
        audit.append(actor, action, model, target, {"to": target, "split": moved, "server": server})
    where = f"traffic 100 % to {target}"
    if server and server.get("checked"):
        # "answers /health", not "healthy": whether it is healthy is its error rate and latency
        # against the team's thresholds (console/release/health.py), judged once requests came in
        where += f" (server pid {server.get('pid')}, answers /health" + (
            f", started in {server['ready_s']:.1f} s" if server.get("started") else "") + ")"
    elif server:
        where += " (served by the traffic backend; health not checked here)"
    restarted = (server or {}).get("router_restarted")
    if restarted:
        was = f"port {restarted['was']}" if restarted.get("was") else "stopped"
        where += (f"; the router was not running ({was}): started again on 127.0.0.1:{restarted['port']} — "
                  "clients of the old address must move")
    detail["message"] = f"{head}; {where}" + ("" if moved is not None else " already")


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
    settle_intents(registry, audit)
    move = move_audited(registry, audit, model, alias, expected=expected, new=version, actor=actor, reason=reason,
                        action=f"alias:{alias}", version=version or "", details={"reason": reason})
    return Outcome("alias", model, version, True, {"alias": alias, "from": move.from_version, "to": version})


# -- protected aliases: the two-person rule (console/release/policy.py holds the rule and the tally) ----------


def approver_allowed(policy, registry, mv, actor: str) -> dict[str, Any]:
    """Refuse an approval the rule cannot count (the trainer's own, one off the allow-list, a
    backend identity that is not the claimed actor); the identity record for the audit event."""
    what = f"approving {mv.model} {mv.version}"
    identity = check_identity(policy, registry, actor, what)
    problem = approver_problem(policy, actor, trainer_of(mv), identity.get("backend"))
    if problem == "trainer":
        raise PolicyViolation(f"{mv.model} {mv.version}: {actor} trained this version and cannot approve it "
                              f"(policy.{policy.alias}.distinct_from_trainer); ask another approver")
    if problem:
        raise PolicyViolation(f"{mv.model} {mv.version}: {actor} is not on policy.{policy.alias}.approvers "
                              f"({', '.join(policy.approvers or ())}); approval refused")
    return identity


def _same_name(a: str | None, b: str | None) -> bool:
    return normalise_name(a) == normalise_name(b)


def _record_primary_identity(registry, audit, mv, actor: str, reason: str, identity: dict[str, Any] | None) -> None:
    """Beside the registry approval (which stores only its claimed `by`), the identity the backend
    verified for it: a signature row of the same epoch, where co-signatures are kept. The tally
    counts the registry approval for that identity, so a second claim from it counts once."""
    backend = (identity or {}).get("backend")
    if not backend:
        return
    row = Signature(actor, now_iso(), mv.artifact.sha256, mv.approval.gate_report_sha256, mv.approval.at,
                    reason, backend)
    if registry_stores_signatures(registry):
        registry.add_cosignature(mv.model, mv.version, signature_record(mv.model, mv.version, row))
        return
    if not hasattr(audit, "db_path"):
        return

    _write_tx(audit.db_path, lambda conn: insert_signature(conn, mv.model, mv.version, row))


def cosign(registry, audit, mv, policy, *, actor: str, reason: str, identity: dict[str, Any] | None) -> Outcome:
    """A further approver's approval of the version's approval: a co-signature row and its audit
    event in one transaction of mrc.db, bound to the artifact, the gate digest and the approval's epoch."""
    signature = Signature(actor, now_iso(), mv.artifact.sha256, mv.approval.gate_report_sha256, mv.approval.at,
                          reason, (identity or {}).get("backend"))

    if registry_stores_signatures(registry):  # in the shared registry: every approver's machine sees it
        added = registry.add_cosignature(mv.model, mv.version, signature_record(mv.model, mv.version, signature))
        counted = tally(policy, mv, registry_signatures(registry, mv.model, mv.version))
        if added:
            audit.append(actor, "approve", mv.model, mv.version,
                         {"reason": reason, "co_signature": True, "stored": "registry",
                          "gate_report_sha256": signature.gate_report_sha256,
                          "artifact_sha256": signature.artifact_sha256, "epoch": signature.epoch,
                          "identity": identity, "policy": counted.to_dict()})
            if not counted.met:
                _append_request(audit, None, actor, policy, mv, counted)
        return Outcome("approved", mv.model, mv.version, added,
                       {"approval": mv.approval.to_dict(), "co_signature": signature.to_dict(),
                        "policy": counted.to_dict()})
    if not hasattr(audit, "db_path"):
        raise PolicyRefusal(f"{mv.model} {mv.version}: a second approval needs the workspace's mrc.db")

    def write(conn) -> tuple[bool, Any]:
        signed = read_signatures(conn, mv.model, mv.version)
        if any(_same_name(s.approver, actor) and s.epoch == mv.approval.at for s in signed):
            return False, tally(policy, mv, signed)
        insert_signature(conn, mv.model, mv.version, signature)
        counted = tally(policy, mv, [*signed, signature])
        audit.append_in(conn, actor, "approve", mv.model, mv.version,
                        {"reason": reason, "co_signature": True, "gate_report_sha256": signature.gate_report_sha256,
                         "artifact_sha256": signature.artifact_sha256, "epoch": signature.epoch,
                         "identity": identity, "policy": counted.to_dict()})
        if not counted.met:
            _append_request(audit, conn, actor, policy, mv, counted)
        return True, counted

    changed, counted = _write_tx(audit.db_path, write)
    return Outcome("approved", mv.model, mv.version, changed,
                   {"approval": mv.approval.to_dict(), "co_signature": signature.to_dict(), "policy": counted.to_dict()})


def _append_request(audit, conn, actor: str, policy, mv, counted) -> None:
    """`approval.requested`: a candidate needs approvals (turned into an alert elsewhere)."""
    details = {"alias": policy.alias, "needs": counted.missing, "required": counted.required,
               "approved_by": counted.counted, "excluded": [{"name": n, "why": w} for n, w in counted.excluded()],
               "summary": counted.line(), "reason": counted.line()}  # `reason`: the alert's one line
    if conn is not None:
        audit.append_in(conn, actor, "approval.requested", mv.model, mv.version, details)
    else:
        audit.append(actor, "approval.requested", mv.model, mv.version, details)


def approval_tally(audit, policy, mv, registry=None):
    """How `mv` stands against the rule now (co-signatures from the registry where it keeps them,
    else from the workspace's mrc.db)."""
    return tally(policy, mv, signatures_of(registry, audit, mv.model, mv.version))


def request_if_short(audit, policy, mv, actor: str, registry=None) -> dict[str, Any]:
    """After an approval, or a gate pass, of a version the rule protects: say who is still needed."""
    counted = approval_tally(audit, policy, mv, registry)
    if not counted.met:
        _append_request(audit, None, actor, policy, mv, counted)
    return counted.to_dict()


def promotion_guard(registry, audit, policy, mv, actor: str):
    """The rule's check for `move_audited`: `guard(conn)` inside the local move's transaction (the
    co-signatures read on that connection, the approval re-read by the registry in it), `guard(None)`
    right before a remote registry's CAS (both read again). Raises PolicyViolation when short."""
    identity = check_identity(policy, registry, actor, f"promoting {mv.model} {mv.version}")

    def guard(conn, early: bool = False, held=None) -> dict[str, Any]:
        if conn is not None:
            current, signatures, where = mv, read_signatures(conn, mv.model, mv.version), "in the move's transaction"
        else:
            current = mv if early else registry.get_version(mv.model, mv.version)
            if not early and (current.approval.at, current.approval.status) != (mv.approval.at, mv.approval.status):
                raise ConflictError(f"{mv.model} {mv.version}: approval changed since it was read "
                                    f"({mv.approval.status} -> {current.approval.status}); the move was not made",
                                    expected=mv.approval.status, actual=current.approval.status)
            # with mrc.db's write lock held until the swap no local revoke lands in between; the
            # registry's own co-signatures are read last, right before the swap
            signatures = signatures_of(registry, audit, mv.model, mv.version, held)
            where = "before anything moved" if early else "right before the compare-and-swap"
        counted = tally(policy, current, signatures)
        if not counted.met:
            raise PolicyViolation(f"{mv.model} {mv.version}: policy.{policy.alias}: {counted.line()}; "
                                  f"{policy.alias} not moved")
        checked = {"checked": where, **({"locked_to_swap": "mrc.db"} if held is not None else {})}
        return {"policy": {**counted.to_dict(), **checked}, "identity": identity}

    return guard


def rollback_allowed(policy, registry, model: str, actor: str) -> None:
    """`rollback = [...]` names who may roll back (default anyone: one key for on-call). Only a
    restricted rule asks the backend who is calling; the open one costs nothing."""
    if policy is None or policy.rollback is None:
        return

    identity = check_identity(policy, registry, actor, f"rolling back {model}")
    if not may_roll_back(policy, actor, identity.get("backend")):
        who = actor if counts_claims(policy) or not identity.get("backend") else f"{actor} ({identity['backend']})"
        raise PolicyViolation(f"{model}: policy.{policy.alias}.rollback allows {', '.join(policy.rollback)}; "
                              f"{who} may not roll back")


def revoke(registry, audit, model: str, version: str, *, actor: str, reason: str, policy=None) -> Outcome:
    """Withdraw `actor`'s own approval: a co-signature is marked revoked; the registry approval
    (the first one) goes back to pending, which voids every co-signature of it. Under identity =
    "require" the backend must know the caller as `actor`, and under "verified" a co-signature
    recorded with a verified identity is withdrawn only by that identity (no one withdraws
    another's approval). Checked by reading first: a refused revoke writes nothing."""
    check_name(model, "model")
    check_name(version, "version")
    reason = _reason(reason, "revoke an approval")
    identity: dict[str, Any] = {}
    if policy is not None:
        identity = check_identity(policy, registry, actor, f"revoking {actor}'s approval of {model} {version}")
    mv = registry.get_version(model, version)
    if mv.approval.status == "approved" and _same_name(mv.approval.by, actor):
        pending = Approval("pending", actor, now_iso(), reason, "", False)
        stored = record_approval(registry, audit, model, version, pending, expected_status="approved", actor=actor,
                                 action="revoke-approval", details={"reason": reason, "previous_status": "approved"})
        return Outcome("revoke", model, version, True, {"approval": stored.to_dict()})

    in_registry = registry_stores_signatures(registry)
    if in_registry:
        live = registry_signatures(registry, model, version)
    elif hasattr(audit, "db_path"):
        live = load_signatures(str(audit.db_path), model, version)
    else:
        live = []
    mine = [s for s in live if _same_name(s.approver, actor)]
    if not mine:
        raise BadInputError(f"{model} {version}: {actor} has no approval of this version to revoke")
    caller = normalise_name(identity.get("backend"))
    if policy is not None and not counts_claims(policy) and caller:
        others = [s for s in mine if s.identity and normalise_name(s.identity) != caller]
        if len(others) == len(mine):
            raise PolicyViolation(f"{model} {version}: {actor}'s approval was made as {others[0].identity!r}, not "
                                  f"{identity.get('backend')!r}; only its approver may revoke it")
    stored_name = mine[0].approver
    if in_registry:
        if registry.revoke_cosignature(model, version, stored_name, now_iso()):
            audit.append(actor, "revoke-approval", model, version,
                         {"reason": reason, "co_signature": True, "stored": "registry", "epoch": mv.approval.at})
            return Outcome("revoke", model, version, True, {"co_signature": True})
        raise BadInputError(f"{model} {version}: {actor} has no approval of this version to revoke")

    def write(conn) -> int:
        count = revoke_signature(conn, model, version, stored_name, now_iso())
        if count:
            audit.append_in(conn, actor, "revoke-approval", model, version,
                            {"reason": reason, "co_signature": True, "epoch": mv.approval.at})
        return count

    if _write_tx(audit.db_path, write):
        return Outcome("revoke", model, version, True, {"co_signature": True})
    raise BadInputError(f"{model} {version}: {actor} has no approval of this version to revoke")


def request_after_gate(registry, audit, policy, model: str, version: str, gate_report: Any, *, actor: str) -> dict | None:
    """A passed gate on a version the rule protects and that lacks approvals: `approval.requested`
    once per gate report (a re-run of the same gates asks no one twice). The tally, or None."""
    if policy is None or not getattr(gate_report, "passed", False):
        return None
    mv = registry.get_version(model, version)
    counted = approval_tally(audit, policy, mv, registry)
    if counted.met or not hasattr(audit, "db_path"):
        return counted.to_dict()
    digest = report_digest(gate_report)
    asked = any(e.action == "approval.requested" and e.version == version and e.details.get("gate_report_sha256") == digest
                for e in audit.events(model=model))
    if not asked:
        audit.append(actor, "approval.requested", model, version,
                     {"alias": policy.alias, "trigger": "gate passed", "gate_report_sha256": digest,
                      "needs": counted.missing, "required": counted.required, "approved_by": counted.counted,
                      "excluded": [{"name": n, "why": w} for n, w in counted.excluded()], "summary": counted.line(),
                      "reason": f"gates passed; {counted.line()}"})
    return counted.to_dict()
