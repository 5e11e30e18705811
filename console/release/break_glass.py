"""Break glass: every request to a known-good fallback now, and back to the split it replaced.

`break_glass` sends 100 % of a model's traffic to a fallback version — `to`, else the version a
rollback would pick (an earlier production version that is fit: `rollback_candidates` and
`unfit_reason`) — through the traffic backend's split compare-and-swap. The registry's pointers
do not move: break glass is the stop-gap while people find out what is wrong; a rollback or a
promotion is the decision that follows.

The split it replaced is kept in the `break_glass` audit event (weights in split order and the
revision the break set). `restore` puts that split back, compare-and-swap on that revision: when
someone changed the split since (a rollback, a canary, another break), it refuses in one line and
moves nothing — putting back an old split over a newer decision would undo that decision.

Both acts are audited (`break_glass`, `restore`) and alerted (console/notify/alerts.py:
BreakGlass fires on the break, resolves on the restore).
"""

from __future__ import annotations

from typing import Any

from backends.base import PRODUCTION, BadInputError, ConflictError, check_name
from console.release.actions import (
    UNREVIEWED,
    Outcome,
    _production_snapshot,
    rollback_candidates,
    serve_target,
    unfit_reason,
)

BREAK_GLASS, RESTORE = "break_glass", "restore"


def _reason(reason: str | None, what: str) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise BadInputError(f"{what}: a --reason is required (it goes to the audit log and the alert)")
    return text


def active_break(audit, model: str) -> Any | None:
    """The model's `break_glass` event still in effect (no `restore` after it), else None."""
    for event in reversed(audit.events(model=model)):
        if event.action == RESTORE:
            return None
        if event.action == BREAK_GLASS:
            return event
    return None


def fallback_version(registry, model: str) -> tuple[str, list[dict[str, str]]]:
    """The version a bare break glass sends traffic to: the newest earlier production version that
    is fit (approved, or served production before anyone reviewed it, with a verifying artifact) —
    what a rollback would pick — and the candidates skipped with why."""
    history, _partial, current = _production_snapshot(registry, model)
    skipped: list[dict[str, str]] = []
    for version in rollback_candidates(history, current):
        problem = unfit_reason(registry, model, version, unreviewed_ok=True)
        if problem in (None, UNREVIEWED):
            return version, skipped
        skipped.append({"version": version, "why": problem})
    why = "; ".join(f"{s['version']} is {s['why']}" for s in skipped)
    raise BadInputError(f"{model}: no earlier production version fit to take all traffic"
                        + (f" ({why})" if why else "") + " (pass --to VERSION)")


def break_glass(registry, traffic, audit, model: str, *, actor: str, reason: str, to: str | None = None,
                options: dict[str, Any] | None = None, fallback_seen: str | None = None) -> Outcome:
    """100 % of `model`'s traffic to the fallback, compare-and-swap on the split read here.
    `fallback_seen`: the fallback a confirm dialog showed; refused when the fallback is another now."""
    check_name(model, "model")
    why = _reason(reason, "break-glass")
    skipped: list[dict[str, str]] = []
    if to is not None:
        check_name(to, "--to version")
        problem = unfit_reason(registry, model, to)  # named by hand: approved and intact, as `rollback --to`
        if problem is not None:
            raise BadInputError(f"--to {to}: {model} {to} is {problem}; break glass sends traffic only to a fit version")
        target = to
    else:
        target, skipped = fallback_version(registry, model)
        if fallback_seen is not None and target != fallback_seen:
            raise ConflictError(f"{model}: the fallback is {target} now, not {fallback_seen} as shown; nothing moved",
                                expected=fallback_seen, actual=target)
    before = traffic.get_split(model)
    live = active_break(audit, model)
    if live is not None and before.revision == (live.details or {}).get("revision") and \
            {v: w for v, w in before.weights.items() if w} == {target: 100}:
        return Outcome(BREAK_GLASS, model, target, False, {
            "from": live.details.get("from_split"), "to": target, "revision": before.revision, "already": True,
            "message": f"{model}: glass already broken, 100 % to {target} (by {live.actor} at {live.at}); "
                       f"`mrc restore {model}` undoes it"})
    server = serve_target(traffic, registry, model, target, options)  # before the split moves: nothing moves if it fails
    # a second break over a live one keeps the first's saved split: restore goes back to before the incident
    saved = (live.details or {}).get("from_split") if live is not None else [[v, w] for v, w in before.weights.items()]
    after = traffic.set_split(model, {target: 100}, expected_revision=before.revision)
    details = {"reason": why, "to": target, "production": registry.get_pointers(model).get(PRODUCTION),
               "from_split": saved, "from_revision": before.revision, "revision": after.revision,
               "skipped": skipped, "server": server}
    audit.append(actor, BREAK_GLASS, model, target, details)
    was = ", ".join(f"{v} {w}%" for v, w in saved if w)
    return Outcome(BREAK_GLASS, model, target, True, {
        **details, "message": f"{model}: glass broken: 100 % of traffic to {target} (was {was}); "
                              f"`mrc restore {model} --reason …` puts it back"})


def restore(traffic, audit, model: str, *, actor: str, reason: str) -> Outcome:
    """The split the break replaced, compare-and-swap on the revision the break set."""
    check_name(model, "model")
    why = _reason(reason, "restore")
    live = active_break(audit, model)
    if live is None:
        raise BadInputError(f"{model}: no break glass in effect; nothing to restore")
    details = live.details or {}
    saved = [(str(v), int(w)) for v, w in details.get("from_split") or []]
    now = traffic.get_split(model)
    if now.revision != details.get("revision"):
        shown = ", ".join(f"{v} {w}%" for v, w in now.weights.items() if w)
        raise ConflictError(f"{model}: the split changed since the glass was broken (revision {details.get('revision')} "
                            f"-> {now.revision}, now {shown}); nothing restored",
                            expected=str(details.get("revision")), actual=str(now.revision))
    after = traffic.set_split(model, dict(saved), expected_revision=now.revision)
    event = {"reason": why, "split": [[v, w] for v, w in saved], "from": live.version,
             "break_seq": live.seq, "revision": after.revision}
    audit.append(actor, RESTORE, model, live.version, event)
    back = ", ".join(f"{v} {w}%" for v, w in saved if w)
    return Outcome(RESTORE, model, live.version, True, {**event, "message": f"{model}: split restored: {back}"})
